"""Users with a role, and their API tokens (stored as SHA-256 hashes, never in clear).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLES = "'viewer', 'dispatcher', 'planner', 'admin', 'ingest'"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE app_user (
        id bigserial CONSTRAINT pk_app_user PRIMARY KEY,
        name text NOT NULL CONSTRAINT uq_app_user_name UNIQUE
            CONSTRAINT ck_app_user_name CHECK (name <> ''),
        role text NOT NULL CONSTRAINT ck_app_user_role CHECK (role IN ({ROLES})),
        created_at timestamptz NOT NULL DEFAULT now(),
        disabled_at timestamptz
    )""")
    op.execute("""
    CREATE TABLE api_token (
        id bigserial CONSTRAINT pk_api_token PRIMARY KEY,
        user_id bigint NOT NULL CONSTRAINT fk_api_token_user_id REFERENCES app_user (id) ON DELETE CASCADE,
        token_hash text NOT NULL CONSTRAINT uq_api_token_token_hash UNIQUE,
        prefix text NOT NULL,
        label text,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        expires_at timestamptz,
        revoked_at timestamptz
    )""")
    op.execute("CREATE INDEX ix_api_token_user_id ON api_token (user_id)")
    op.execute("CREATE INDEX ix_api_token_prefix ON api_token (prefix)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_token")
    op.execute("DROP TABLE IF EXISTS app_user")
