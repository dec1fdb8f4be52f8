"""edit_log.codes: the grid codes every logged write touched, so a grid's history finds partitions,
imports and edits alike (GIN index for ``codes @> ARRAY[code]``).

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
    # edits logged before kept their codes in detail
    op.execute("""
    UPDATE edit_log SET codes = ARRAY(SELECT jsonb_array_elements_text(detail->'codes'))
    WHERE jsonb_typeof(detail->'codes') = 'array'""")
    op.execute("CREATE INDEX ix_edit_log_codes ON edit_log USING gin (codes)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_edit_log_codes")
    op.execute("ALTER TABLE edit_log DROP COLUMN codes")
