"""A change counter per map layer family, so cached vector tiles know when they are stale.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# tables whose changes can alter a drawn tile (grid changes move grid_epoch already)
TABLES = ("risk_element", "risk_visit", "grid_risk", "report")


def upgrade() -> None:
    op.execute("CREATE TABLE layer_epoch (name text CONSTRAINT pk_layer_epoch PRIMARY KEY, epoch bigint NOT NULL)")
    op.execute("""
    CREATE FUNCTION layer_bump_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO layer_epoch (name, epoch) VALUES (TG_TABLE_NAME, 1)
        ON CONFLICT (name) DO UPDATE SET epoch = layer_epoch.epoch + 1;
        RETURN NULL;
    END $$""")
    for table in TABLES:
        op.execute(f"""
        CREATE TRIGGER {table}_layer_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION layer_bump_epoch()""")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_layer_epoch ON {table}")
    op.execute("DROP FUNCTION IF EXISTS layer_bump_epoch()")
    op.execute("DROP TABLE IF EXISTS layer_epoch")
