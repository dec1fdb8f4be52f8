"""Each grid epoch announced with the box of what it changed (``gridmap_grid_boxes``).

A server holding the lookup index learns of a new epoch from ``grid_bump_epoch``'s NOTIFY, and a
lookup away from the edit may answer from the index it holds while the update runs.  Until now the
server knew where the edit was only after reading the change log and the changed grids (6-20 ms
under load on 2 cores), and every lookup in that time waited for it: most of what an edit every
5 s added to the lookups' p99 (issue #16).  These statement triggers, named to fire after
``grid_epoch_bump`` (same-event triggers fire in name order), announce with the epoch the lon/lat
box of every row the statement touched, old and new versions (an UPDATE's old and new rows, an
INSERT's new ones, a DELETE's old ones), delivered at commit with the epoch itself.  The payload is
``"<epoch> <xmin> <ymin> <xmax> <ymax>"``; ``"<epoch> -"`` when the statement touched no row;
``"<epoch> *"`` when it touched a grid of a level other than micro or special (a district's or a
courtyard's change reaches every chain below it: no box says which lookups it leaves alone).  A
statement writing ``building``, ``unit`` or ``grid_share`` bumps the epoch too but changes no grid
(the index is the same; the shares of floors a server holds apart, read again after the epoch):
``"<epoch> -"``.  An
epoch with no notice (a TRUNCATE of ``grid``, a notice lost) has no box, and a server then waits for
its update as before.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

#: The channel, as ``gridmap.store.grids.BOX_CHANNEL`` names it.
CHANNEL = "gridmap_grid_boxes"

EVENTS = {
    "insert": ("NEW TABLE AS after_rows", "SELECT level, geom FROM after_rows"),
    "update": (
        "OLD TABLE AS before_rows NEW TABLE AS after_rows",
        "SELECT level, geom FROM before_rows UNION ALL SELECT level, geom FROM after_rows",
    ),
    "delete": ("OLD TABLE AS before_rows", "SELECT level, geom FROM before_rows"),
}

#: Tables whose writes bump the grid epoch without changing a grid (their epoch bump triggers,
#: ``<table>_epoch_bump``, fire before these by name).
OTHER_TABLES = ("building", "unit", "grid_share")


def upgrade() -> None:
    for event, (_, rows) in EVENTS.items():
        op.execute(f"""
        CREATE FUNCTION grid_notice_{event}() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE e bigint; n bigint; other boolean; b box2d;
        BEGIN
            SELECT epoch INTO e FROM grid_epoch WHERE id = 1;
            SELECT count(*), bool_or(level NOT IN ('micro', 'special')), ST_Extent(geom)
                INTO n, other, b FROM ({rows}) AS touched;
            PERFORM pg_notify('{CHANNEL}', e::text || CASE
                WHEN n = 0 THEN ' -'
                WHEN other OR b IS NULL THEN ' *'
                ELSE format(' %s %s %s %s', ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)) END);
            RETURN NULL;
        END $$""")
    for event, (ref, _) in EVENTS.items():
        op.execute(f"""
        CREATE TRIGGER grid_epoch_notice_{event} AFTER {event.upper()} ON grid
            REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION grid_notice_{event}()""")
    op.execute(f"""
    CREATE FUNCTION grid_notice_none() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', (SELECT epoch FROM grid_epoch WHERE id = 1)::text || ' -');
        RETURN NULL;
    END $$""")
    for table in OTHER_TABLES:
        op.execute(f"""
        CREATE TRIGGER {table}_epoch_notice AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION grid_notice_none()""")


def downgrade() -> None:
    for table in OTHER_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_epoch_notice ON {table}")
    op.execute("DROP FUNCTION IF EXISTS grid_notice_none()")
    for event in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS grid_epoch_notice_{event} ON grid")
        op.execute(f"DROP FUNCTION IF EXISTS grid_notice_{event}()")
