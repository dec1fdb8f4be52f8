"""Grid codes are issued once and never again; reports keep where they came from.

A code, once issued at any level, is never issued again by any path (partition, split, create,
import): ``grid_code`` registers every code with its level when its first version is inserted, and
marks it retired when its last current version is closed without a successor in the same
transaction (a deferred constraint trigger, so ``import --replace`` and edits that close and reopen
a code in one transaction do not retire it).  Inserting a version of a retired code, or of a code
issued for another level, is refused by the database itself.

Reports: ``source`` (the channel or file they came from) and ``external_id`` (the id in that
source) make intake idempotent (unique together); ``reported_at`` is the report's own time, as
opposed to ``received_at`` (when gridmap stored it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE grid_code (
        code text CONSTRAINT pk_grid_code PRIMARY KEY,
        level text NOT NULL,
        issued_at timestamptz NOT NULL,
        retired_at timestamptz
    )""")
    op.execute("""
    INSERT INTO grid_code (code, level, issued_at, retired_at)
    SELECT code, min(level), min(valid_from),
           CASE WHEN bool_and(valid_to IS NOT NULL) THEN max(valid_to) END
    FROM grid GROUP BY code""")
    # statement-level with a transition table: a bulk load of 60k grids costs one join, not 60k calls
    op.execute("""
    CREATE FUNCTION grid_code_issue() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bad record;
    BEGIN
        SELECT n.code, n.level, c.level AS issued_level, c.retired_at INTO bad
        FROM changed n JOIN grid_code c USING (code)
        WHERE c.retired_at IS NOT NULL OR c.level <> n.level LIMIT 1;
        IF FOUND AND bad.retired_at IS NOT NULL THEN
            RAISE EXCEPTION 'grid code % was retired on %; a code is never issued again', bad.code, bad.retired_at
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'grid_code_retired';
        ELSIF FOUND THEN
            RAISE EXCEPTION 'grid code % was issued for level %, not %', bad.code, bad.issued_level, bad.level
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'grid_code_level';
        END IF;
        INSERT INTO grid_code (code, level, issued_at)
        SELECT DISTINCT ON (code) code, level, valid_from FROM changed ORDER BY code, valid_from
        ON CONFLICT (code) DO NOTHING;
        RETURN NULL;
    END $$""")
    op.execute("""
    CREATE TRIGGER grid_code_issue AFTER INSERT ON grid
        REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION grid_code_issue()""")
    op.execute("""
    CREATE FUNCTION grid_code_retire() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM grid WHERE code = NEW.code AND valid_to IS NULL) THEN
            UPDATE grid_code SET retired_at = NEW.valid_to WHERE code = NEW.code AND retired_at IS NULL;
        END IF;
        RETURN NULL;
    END $$""")
    op.execute("""
    CREATE CONSTRAINT TRIGGER grid_code_retire AFTER UPDATE OF valid_to ON grid
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (OLD.valid_to IS NULL AND NEW.valid_to IS NOT NULL)
        EXECUTE FUNCTION grid_code_retire()""")

    op.execute("""
    ALTER TABLE report
        ADD COLUMN source text NOT NULL DEFAULT 'api',
        ADD COLUMN external_id text,
        ADD COLUMN reported_at timestamptz""")
    op.execute("UPDATE report SET reported_at = received_at")
    op.execute("ALTER TABLE report ALTER COLUMN reported_at SET NOT NULL, ALTER COLUMN reported_at SET DEFAULT now()")
    op.execute("CREATE UNIQUE INDEX uq_report_source_external_id ON report (source, external_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS uq_report_source_external_id")
    op.execute("ALTER TABLE report DROP COLUMN source, DROP COLUMN external_id, DROP COLUMN reported_at")
    op.execute("DROP TRIGGER IF EXISTS grid_code_retire ON grid")
    op.execute("DROP TRIGGER IF EXISTS grid_code_issue ON grid")
    op.execute("DROP FUNCTION IF EXISTS grid_code_retire()")
    op.execute("DROP FUNCTION IF EXISTS grid_code_issue()")
    op.execute("DROP TABLE IF EXISTS grid_code")
