"""Which grid codes each epoch changed, so a lookup index can update only what moved.

Every statement that writes ``grid`` already bumps ``grid_epoch`` (trigger ``grid_epoch_bump``).
These triggers, named to fire after it (PostgreSQL fires same-event triggers in name order), log
the codes the statement touched under the new epoch: an index built at epoch E applies the codes of
``grid_change WHERE epoch > E``.  The epoch row's lock serialises writers, so epochs follow commit
order.  TRUNCATE logs the code ``*`` (everything changed).  Rows older than what any index could
need may be pruned; an index older than the oldest row rebuilds in full.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

EVENTS = {"insert": "NEW TABLE AS touched", "update": "NEW TABLE AS touched", "delete": "OLD TABLE AS touched"}


def upgrade() -> None:
    op.execute("""
    CREATE TABLE grid_change (
        id bigserial CONSTRAINT pk_grid_change PRIMARY KEY,
        epoch bigint NOT NULL,
        code text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX ix_grid_change_epoch ON grid_change (epoch)")
    op.execute("""
    CREATE FUNCTION grid_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO grid_change (epoch, code)
        SELECT e.epoch, t.code FROM (SELECT DISTINCT code FROM touched) t, grid_epoch e WHERE e.id = 1;
        RETURN NULL;
    END $$""")
    op.execute("""
    CREATE FUNCTION grid_log_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO grid_change (epoch, code) SELECT epoch, '*' FROM grid_epoch WHERE id = 1;
        RETURN NULL;
    END $$""")
    for event, ref in EVENTS.items():
        op.execute(f"""
        CREATE TRIGGER grid_epoch_log_{event} AFTER {event.upper()} ON grid
            REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION grid_log_change()""")
    op.execute("""
    CREATE TRIGGER grid_epoch_log_truncate AFTER TRUNCATE ON grid
        FOR EACH STATEMENT EXECUTE FUNCTION grid_log_truncate()""")


def downgrade() -> None:
    for event in (*EVENTS, "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS grid_epoch_log_{event} ON grid")
    op.execute("DROP FUNCTION IF EXISTS grid_log_change()")
    op.execute("DROP FUNCTION IF EXISTS grid_log_truncate()")
    op.execute("DROP TABLE IF EXISTS grid_change")
