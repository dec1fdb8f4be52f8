"""The event centre's loop needs three states the first design left out.

- ``assessed`` (考核): a closed case whose rating is in (or whose rating period ran out); closed for
  ``status``.
- ``reopen_requested``: a reporter rated a closed case 1 or 2; a dispatcher reopens or declines.
- ``split_up``: a 三跨 case split into child cases (``parent_id``); it closes when they all have.

And ``tick_at``: the next instant the clock's tick must look at a case (its 80 % warning, then its
deadline while it can still climb; NULL while paused, stopped or at the top), indexed where set,
so a tick over 200,000 open cases reads only the due ones and takes each with ``SKIP LOCKED``; and
an index on the hash of each case's reporter key (``attrs.reporter_key``, also its Open311 token).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OLD = (
    "'reported', 'filed', 'dispatched', 'disposing', 'disposed', 'verified', 'closed', 'suspended', "
    "'cancelled', 'merged'"
)
NEW = OLD + ", 'assessed', 'reopen_requested', 'split_up'"
CLOSED_OLD = "'closed', 'cancelled', 'merged'"
CLOSED_NEW = CLOSED_OLD + ", 'assessed'"


def _status_function(closed: str) -> str:
    return f"""
    CREATE OR REPLACE FUNCTION report_status_from_state() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- older writers (record reports, the demo) say only status: a closed report is a closed case
        IF TG_OP = 'INSERT' AND NEW.status = 'closed' AND NEW.state = 'reported' THEN
            NEW.state := 'closed';
        END IF;
        NEW.status := CASE WHEN NEW.state IN ({closed}) THEN 'closed' ELSE 'open' END;
        RETURN NEW;
    END $$"""


def upgrade() -> None:
    # Idempotent: before the merge with #15 this was revision 0012 on the events branch, so a database
    # migrated there says 0012 and has all of this already, but not 0012_user_password's column
    # (added here too when missing).
    op.execute("ALTER TABLE app_user ADD COLUMN IF NOT EXISTS password_hash text")
    op.execute("ALTER TABLE report DROP CONSTRAINT ck_report_state")
    op.execute(f"ALTER TABLE report ADD CONSTRAINT ck_report_state CHECK (state IN ({NEW}))")
    op.execute(_status_function(CLOSED_NEW))
    op.execute("ALTER TABLE report ADD COLUMN IF NOT EXISTS tick_at timestamptz")
    op.execute("CREATE INDEX IF NOT EXISTS ix_report_tick_at ON report (tick_at) WHERE tick_at IS NOT NULL")
    # a reporter key (also the Open311 token) finds its case again
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_report_reporter_key ON report ((attrs->>'reporter_key')) "
        "WHERE attrs ? 'reporter_key'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_report_tick_at")
    op.execute("DROP INDEX IF EXISTS ix_report_reporter_key")
    op.execute("ALTER TABLE report DROP COLUMN tick_at")
    op.execute("UPDATE report SET state = 'closed' WHERE state IN ('assessed', 'reopen_requested')")
    op.execute("UPDATE report SET state = 'dispatched' WHERE state IN ('split_up')")
    op.execute(_status_function(CLOSED_OLD))
    op.execute("ALTER TABLE report DROP CONSTRAINT ck_report_state")
    op.execute(f"ALTER TABLE report ADD CONSTRAINT ck_report_state CHECK (state IN ({OLD}))")
