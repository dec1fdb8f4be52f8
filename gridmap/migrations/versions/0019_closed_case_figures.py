"""Cases filed without writing the figures' wide indexes: those hold the closed cases only.

The assessment figures' six indexes (migration 0016: a chain column or the department, state and
deadline, carrying every column the figures read) made a year's statistics an index-only scan, and
every case filed paid for them: on the bench city with 2.5 million cases they are 6.2 GB, and
inserting 100,000 cases took 9.5 s with them and 4.3 s without (psql, warm).  The figures of a year
read the closed cases (2.3 million; their handling time, rating, reopenings) from these indexes, now
partial on ``status = 'closed'``; the open ones (about 200,000, a street's thousand or so) are read
through the queue's narrow indexes of open cases and their heap rows (store/case_views._STATS).  A
case enters the wide indexes when it closes, one at a time, not when a million are filed at once.

The queue's indexes of open cases, ``(chain column, due_at)``, now hold every open report, not only
those with a matter: the map panel's open reports of a grid (plain reports have no matter) were read
through the micro-grid's wide index, which holds no open row any more.  Those of the special grid and
the department leave out the cases without one (nearly every case has no special grid, and a case in
the dispatchers' queue no department): a queue or figures scoped by either names one.

A case's log rows keep referring to a case, checked once per statement instead of once per row.  The
foreign key ``report_log.report_id`` ran PostgreSQL's check (a lookup and a lock of the case) for
each log row: an import of 1,000,000 cases writes 3,000,000 (reported, filed, dispatched), and 100,000
of them took 0.67 s with the key and 0.27 s without (psql, bench city).  Statement triggers now do
what the key did: after an INSERT or UPDATE of ``report_log`` one anti-join over the rows written
refuses any whose case does not exist (SQLSTATE 23503, as the key did), deleting cases deletes their
log (the key's ON DELETE CASCADE) and emptying ``report`` empties the log (as TRUNCATE … CASCADE
did).  What the key's lock added, a case deleted while another transaction logs an action on it,
cannot happen here: an action locks its case row first (store/cases.lock) and a new case is not
visible to others until its transaction commits; gridmap never deletes a case.

The open cases of a courtyard, community, street or district are found through one GIN index of the
four codes (``ARRAY[courtyard_code, …, district_code] @> ARRAY[code]``; codes are unique across
levels) instead of four B-trees: inserting 100,000 cases took 3.2 s with the four and 2.4 s with the
one (psql, bench city; GIN's pending list takes new entries in bulk).  The micro-grid keeps its
B-tree (the map panel joins a grid's current micro-grids to it).

The open cases' ``(matter_code, received_at)`` index (0015) is dropped: the index of every case on the
same columns (0010) serves the duplicate check (a matter's cases of the last hours, then the open
ones among them), and each filed case wrote both.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from alembic import op

revision = "0019"
down_revision = "0018"  # 0018_grid_notice
branch_labels = None
depends_on = None

#: As migration 0016: the scope column and the grouping columns its index carries besides itself.
GROUPS = {
    "micro_code": ("department_code",),
    "courtyard_code": ("micro_code", "department_code"),
    "community_code": ("courtyard_code", "department_code"),
    "street_code": ("community_code", "department_code"),
    "district_code": ("street_code", "department_code"),
    "department_code": (),
}
FIGURES = ("matter_code", "status", "received_at", "closed_at", "escalations", "reopened", "rating")
#: As migration 0015: what the queue is scoped by.
QUEUE_COLUMNS = (
    "micro_code",
    "courtyard_code",
    "community_code",
    "street_code",
    "district_code",
    "special_code",
    "department_code",
)


def _figures(where: str) -> None:
    for column, groups in GROUPS.items():
        op.execute(f"DROP INDEX IF EXISTS ix_report_{column}")
        carried = ", ".join(groups + FIGURES)
        op.execute(f"CREATE INDEX ix_report_{column} ON report ({column}, state, due_at) INCLUDE ({carried}){where}")


#: Queue columns most cases leave empty.
SPARSE = ("special_code", "department_code")


def _queue(where) -> None:
    for column in QUEUE_COLUMNS:
        op.execute(f"DROP INDEX IF EXISTS ix_report_open_{column}")
        op.execute(f"CREATE INDEX ix_report_open_{column} ON report ({column}, due_at) WHERE {where(column)}")


_LOG_REFERENCES = """
CREATE OR REPLACE FUNCTION report_log_refs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT n.report_id INTO missing FROM (SELECT DISTINCT report_id FROM written) n
    WHERE NOT EXISTS (SELECT 1 FROM report r WHERE r.id = n.report_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a log entry of case % refers to no case', missing
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (report_id)=(%s) is not present in table "report".', missing);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION report_log_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_log l USING gone g WHERE l.report_id = g.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION report_log_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_log;  -- not TRUNCATE: the statement that emptied report may be emptying it too
    RETURN NULL;
END $$;
CREATE TRIGGER report_log_refs_insert AFTER INSERT ON report_log
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION report_log_refs();
CREATE TRIGGER report_log_refs_update AFTER UPDATE ON report_log
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION report_log_refs();
CREATE TRIGGER report_log_cascade AFTER DELETE ON report
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION report_log_cascade();
CREATE TRIGGER report_log_truncate AFTER TRUNCATE ON report
    FOR EACH STATEMENT EXECUTE FUNCTION report_log_truncate();
"""


#: The open cases' levels above the micro-grid, found through one GIN index of their codes
#: (store/case_views.OPEN_CHAIN_COLUMNS).
CHAIN = ("courtyard_code", "community_code", "street_code", "district_code")


def upgrade() -> None:
    op.execute("SET LOCAL maintenance_work_mem = '512MB'")
    _figures(" WHERE status = 'closed'")
    _queue(lambda c: f"status = 'open' AND {c} IS NOT NULL" if c in SPARSE else "status = 'open'")
    for column in CHAIN:
        op.execute(f"DROP INDEX ix_report_open_{column}")
    op.execute(
        f"CREATE INDEX ix_report_open_chain ON report USING gin ((ARRAY[{', '.join(CHAIN)}])) WHERE status = 'open'"
    )
    op.execute("DROP INDEX IF EXISTS ix_report_open_matter")
    op.execute("ALTER TABLE report_log DROP CONSTRAINT fk_report_log_report_id")
    op.execute(_LOG_REFERENCES)


def downgrade() -> None:
    op.execute("SET LOCAL maintenance_work_mem = '512MB'")
    for trigger, table in (
        ("report_log_truncate", "report"),
        ("report_log_cascade", "report"),
        ("report_log_refs_update", "report_log"),
        ("report_log_refs_insert", "report_log"),
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS report_log_truncate(), report_log_cascade(), report_log_refs()")
    op.execute(
        "ALTER TABLE report_log ADD CONSTRAINT fk_report_log_report_id "
        "FOREIGN KEY (report_id) REFERENCES report (id) ON DELETE CASCADE"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_report_open_matter ON report (matter_code, received_at) WHERE status = 'open'"
    )
    op.execute("DROP INDEX IF EXISTS ix_report_open_chain")
    _queue(lambda c: "status = 'open' AND matter_code IS NOT NULL")
    _figures("")
