"""Audit log entries carry the grid codes they touched (placeholder; restructure branch owns this).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE edit_log ADD COLUMN codes text[] NOT NULL DEFAULT '{}'")
    op.execute("CREATE INDEX ix_edit_log_codes ON edit_log USING gin (codes)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_edit_log_codes")
    op.execute("ALTER TABLE edit_log DROP COLUMN codes")
