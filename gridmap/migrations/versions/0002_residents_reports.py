"""Residents and reports keep their assigned micro-grid; building changes move the epoch too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE resident (
        id bigserial CONSTRAINT pk_resident PRIMARY KEY,
        name text,
        address text NOT NULL,
        building_code text,
        unit integer,
        geom geometry(Point, 4326),
        micro_code text,
        assigned_at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("""
    CREATE TABLE report (
        id bigserial CONSTRAINT pk_report PRIMARY KEY,
        received_at timestamptz NOT NULL DEFAULT now(),
        text text NOT NULL,
        address text,
        source_lon double precision,
        source_lat double precision,
        source_crs text,
        geom geometry(Point, 4326),
        micro_code text,
        status text NOT NULL DEFAULT 'open',
        assigned_at timestamptz NOT NULL DEFAULT now()
    )""")
    for table in ("resident", "report"):
        op.execute(f"CREATE INDEX ix_{table}_micro_code ON {table} (micro_code)")
        op.execute(f"CREATE INDEX ix_{table}_geom ON {table} USING gist (geom)")
    # the address gazetteer is built from buildings and units: their changes move the epoch too
    for table in ("building", "unit"):
        op.execute(f"""
        CREATE TRIGGER {table}_epoch_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION grid_bump_epoch()""")


def downgrade() -> None:
    for table in ("building", "unit"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_epoch_bump ON {table}")
    op.execute("DROP TABLE IF EXISTS resident, report")
