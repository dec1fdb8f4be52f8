"""Map sign-in with a user name and password (issue #15 item 3).

- ``app_user.password_hash``: a salted, slow hash (werkzeug.security: scrypt) of the password set by
  ``gridmap users password NAME``; NULL for users who sign in with a token only.  Signing in on the
  map page issues an ordinary API token (label ``sign-in``, expiring), so every request is still
  checked the one way tokens are.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE app_user ADD COLUMN password_hash text")


def downgrade() -> None:
    op.execute("ALTER TABLE app_user DROP COLUMN password_hash")
