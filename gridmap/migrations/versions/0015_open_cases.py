"""Open cases read and written without waiting on each other.

* The layer epoch of ``report`` (and of the other drawn tables) was one row per table, bumped by a
  statement trigger: every transaction writing a case held that row's lock until it committed, so
  concurrent intakes and case actions ran one at a time (8 Open311 clients: 21 cases/s).  The bump
  now goes to one of 64 rows per table chosen by the backend's pid; the tile cache still keys on the
  sum of all rows, which grows by one at each committed bump, exactly as before.
* The dispatchers' queue reads the open cases of a grid subtree by deadline: partial indexes on
  ``(chain column, due_at)`` of the open cases only, instead of every case of the subtree filtered
  row by row (a street of a year's 11,500 cases holds about 1,000 open ones); and the open cases'
  ``(matter_code, received_at)``, which the duplicate check at every intake reads.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from alembic import op

revision = "0015"
down_revision = "0014"  # 0014_people_move
branch_labels = None
depends_on = None

#: Rows per table the layer epoch is spread over.
BUCKETS = 64
#: What the queue is scoped by (store/case_views.SCOPES).
QUEUE_COLUMNS = (
    "micro_code",
    "courtyard_code",
    "community_code",
    "street_code",
    "district_code",
    "special_code",
    "department_code",
)


def upgrade() -> None:
    op.execute(f"""
    CREATE OR REPLACE FUNCTION layer_bump_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO layer_epoch (name, epoch) VALUES (TG_TABLE_NAME || ':' || (pg_backend_pid() % {BUCKETS}), 1)
        ON CONFLICT (name) DO UPDATE SET epoch = layer_epoch.epoch + 1;
        RETURN NULL;
    END $$""")
    for column in QUEUE_COLUMNS:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_report_open_{column} ON report ({column}, due_at) "
            "WHERE status = 'open' AND matter_code IS NOT NULL"
        )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_report_open_matter ON report (matter_code, received_at) WHERE status = 'open'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_report_open_matter")
    for column in QUEUE_COLUMNS:
        op.execute(f"DROP INDEX IF EXISTS ix_report_open_{column}")
    op.execute("""
    CREATE OR REPLACE FUNCTION layer_bump_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO layer_epoch (name, epoch) VALUES (TG_TABLE_NAME, 1)
        ON CONFLICT (name) DO UPDATE SET epoch = layer_epoch.epoch + 1;
        RETURN NULL;
    END $$""")
    # one row per table again, holding the sum (the tile caches' key is unchanged by this)
    op.execute("""
    WITH gone AS (DELETE FROM layer_epoch WHERE name LIKE '%:%' RETURNING split_part(name, ':', 1) AS name, epoch)
    INSERT INTO layer_epoch (name, epoch) SELECT name, sum(epoch) FROM gone GROUP BY name
    ON CONFLICT (name) DO UPDATE SET epoch = layer_epoch.epoch + excluded.epoch""")
