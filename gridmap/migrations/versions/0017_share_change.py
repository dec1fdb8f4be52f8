"""A count of the writes to buildings and to the shares of their floors (``share_change``).

A server holds the city's shares of buildings (which micro-grid holds which floors) and, after every
edit, asked PostgreSQL for a digest of them to learn whether to read them again: ~76 ms of the
database's time per worker per edit at Zhengzhou scale, and on a 2-core machine the largest single
share of what an edit cost the lookups beside it (issue #16: p99 9-11 ms without it, 15-26 ms
with it). With this count a server knows without that query when nothing was written to either
table; the shares in force can then have changed only through grid versions (a grid closed or opened
again), whose codes the grid change log names (``services/locator``).

Statement triggers with transition tables, as ``grid_change`` (migration 0009): a statement that
wrote no row counts nothing. The row's lock serialises writers, as the grid epoch's does.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("grid_share", "building")
EVENTS = {"insert": "NEW TABLE AS touched", "update": "NEW TABLE AS touched", "delete": "OLD TABLE AS touched"}


def upgrade() -> None:
    op.execute("""
    CREATE TABLE share_change (
        id integer CONSTRAINT pk_share_change PRIMARY KEY CONSTRAINT ck_share_change_one CHECK (id = 1),
        n bigint NOT NULL
    )""")
    op.execute("INSERT INTO share_change (id, n) VALUES (1, 0)")
    op.execute("""
    CREATE FUNCTION share_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM touched) THEN
            UPDATE share_change SET n = n + 1 WHERE id = 1;
        END IF;
        RETURN NULL;
    END $$""")
    op.execute("""
    CREATE FUNCTION share_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE share_change SET n = n + 1 WHERE id = 1;
        RETURN NULL;
    END $$""")
    for table in TABLES:
        for event, ref in EVENTS.items():
            op.execute(f"""
            CREATE TRIGGER {table}_count_{event} AFTER {event.upper()} ON {table}
                REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION share_count_change()""")
        op.execute(f"""
        CREATE TRIGGER {table}_count_truncate AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION share_count_truncate()""")


def downgrade() -> None:
    for table in TABLES:
        for event in (*EVENTS, "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS share_count_change()")
    op.execute("DROP FUNCTION IF EXISTS share_count_truncate()")
    op.execute("DROP TABLE IF EXISTS share_change")
