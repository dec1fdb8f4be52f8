"""The event centre: every report is a case that runs the closed loop.

A report *is* the case (one table, so the lookup, tiles and the map keep working on it): it gains
its matter, its state in the loop, its whole grid chain (so queues and statistics by subtree are
index scans, not spatial joins), where it was routed and why, its clock (due, warning, pauses,
escalations), who disposed and verified it, its rating, and its family (split children, merged
into).  ``status`` (open/closed) stays as the coarse state older readers use; a trigger keeps it
equal to what ``state`` says, so the two can never disagree.

- ``report_log``: every transition (who, role, when, from, to, note, detail), written in the same
  transaction as the state.
- ``report_media``: photos: an uploaded file under the project's data folder (``path``) or a media
  URL (``url``), never both.
- ``report_contact``: reporters and followers (personal data: readable with a role only).
- ``department`` and ``department_member``: who handles matters at each level of the grid chain.
- Roles: ``handler``, ``verifier``, ``supervisor`` (event centre) and ``roster`` (keeps the people
  of the grids) join the roles a user may have.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATES = (
    "'reported', 'filed', 'dispatched', 'disposing', 'disposed', 'verified', 'closed', "
    "'suspended', 'cancelled', 'merged'"
)
CLOSED_STATES = "'closed', 'cancelled', 'merged'"
LEVELS = "'micro', 'courtyard', 'community', 'street', 'district', 'city'"
ROLES_OLD = "'viewer', 'dispatcher', 'planner', 'admin', 'ingest'"
ROLES = ROLES_OLD + ", 'handler', 'verifier', 'supervisor', 'roster'"


def upgrade() -> None:
    op.execute(f"""
    ALTER TABLE report
        ADD COLUMN matter_code text,
        ADD COLUMN state text NOT NULL DEFAULT 'reported' CONSTRAINT ck_report_state CHECK (state IN ({STATES})),
        ADD COLUMN courtyard_code text,
        ADD COLUMN community_code text,
        ADD COLUMN street_code text,
        ADD COLUMN district_code text,
        ADD COLUMN special_code text,
        ADD COLUMN outside boolean NOT NULL DEFAULT false,
        ADD COLUMN handling_level text CONSTRAINT ck_report_handling_level CHECK (handling_level IN ({LEVELS})),
        ADD COLUMN department_code text,
        ADD COLUMN assignee text,
        ADD COLUMN route jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        ADD COLUMN due_at timestamptz,
        ADD COLUMN warn_at timestamptz,
        ADD COLUMN warned_at timestamptz,
        ADD COLUMN paused_at timestamptz,
        ADD COLUMN paused_seconds bigint NOT NULL DEFAULT 0,
        ADD COLUMN escalations smallint NOT NULL DEFAULT 0,
        ADD COLUMN escalated_at timestamptz,
        ADD COLUMN supervised_at timestamptz,
        ADD COLUMN disposed_by text,
        ADD COLUMN verified_by text,
        ADD COLUMN closed_at timestamptz,
        ADD COLUMN rating smallint CONSTRAINT ck_report_rating CHECK (rating BETWEEN 1 AND 5),
        ADD COLUMN rating_reasons text[],
        ADD COLUMN rated_at timestamptz,
        ADD COLUMN reopened smallint NOT NULL DEFAULT 0,
        ADD COLUMN parent_id bigint CONSTRAINT fk_report_parent_id REFERENCES report (id),
        ADD COLUMN merged_into bigint CONSTRAINT fk_report_merged_into REFERENCES report (id),
        ADD COLUMN version integer NOT NULL DEFAULT 1,
        ADD COLUMN attrs jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        ADD CONSTRAINT ck_report_verifier CHECK (verified_by IS NULL OR verified_by IS DISTINCT FROM disposed_by)""")
    op.execute("UPDATE report SET state = CASE status WHEN 'closed' THEN 'closed' ELSE 'reported' END")
    op.execute(f"""
    CREATE FUNCTION report_status_from_state() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- older writers (record reports, the demo) say only status: a closed report is a closed case
        IF TG_OP = 'INSERT' AND NEW.status = 'closed' AND NEW.state = 'reported' THEN
            NEW.state := 'closed';
        END IF;
        NEW.status := CASE WHEN NEW.state IN ({CLOSED_STATES}) THEN 'closed' ELSE 'open' END;
        RETURN NEW;
    END $$""")
    op.execute("""
    CREATE TRIGGER report_status_from_state BEFORE INSERT OR UPDATE OF state, status ON report
        FOR EACH ROW EXECUTE FUNCTION report_status_from_state()""")
    op.execute("CREATE INDEX ix_report_open_due ON report (due_at) WHERE status = 'open'")
    for column in ("street_code", "community_code", "courtyard_code", "district_code"):
        op.execute(f"CREATE INDEX ix_report_{column} ON report ({column}, state, due_at)")
    op.execute("CREATE INDEX ix_report_matter_code ON report (matter_code, received_at)")
    op.execute("CREATE INDEX ix_report_department_code ON report (department_code, state, due_at)")

    op.execute("""
    CREATE TABLE report_log (
        id bigserial CONSTRAINT pk_report_log PRIMARY KEY,
        report_id bigint NOT NULL CONSTRAINT fk_report_log_report_id REFERENCES report (id) ON DELETE CASCADE,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        role text,
        action text NOT NULL,
        from_state text,
        to_state text,
        note text,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb
    )""")
    op.execute("CREATE INDEX ix_report_log_report_id ON report_log (report_id, at)")
    op.execute("""
    CREATE TABLE report_media (
        id bigserial CONSTRAINT pk_report_media PRIMARY KEY,
        report_id bigint NOT NULL CONSTRAINT fk_report_media_report_id REFERENCES report (id) ON DELETE CASCADE,
        log_id bigint CONSTRAINT fk_report_media_log_id REFERENCES report_log (id) ON DELETE SET NULL,
        stage text NOT NULL CONSTRAINT ck_report_media_stage CHECK (stage IN ('report', 'before', 'after', 'other')),
        path text,
        url text,
        content_type text,
        bytes bigint,
        sha256 text,
        at timestamptz NOT NULL DEFAULT now(),
        added_by text,
        CONSTRAINT ck_report_media_where CHECK ((path IS NULL) <> (url IS NULL))
    )""")
    op.execute("CREATE INDEX ix_report_media_report_id ON report_media (report_id)")
    op.execute("""
    CREATE TABLE report_contact (
        id bigserial CONSTRAINT pk_report_contact PRIMARY KEY,
        report_id bigint NOT NULL CONSTRAINT fk_report_contact_report_id REFERENCES report (id) ON DELETE CASCADE,
        kind text NOT NULL CONSTRAINT ck_report_contact_kind CHECK (kind IN ('reporter', 'follower')),
        name text,
        phone text,
        email text,
        account_id text,
        device_id text,
        channel text,
        at timestamptz NOT NULL DEFAULT now()
    )""")
    op.execute("CREATE INDEX ix_report_contact_report_id ON report_contact (report_id)")

    op.execute(f"""
    CREATE TABLE department (
        id bigserial CONSTRAINT pk_department PRIMARY KEY,
        code text NOT NULL CONSTRAINT uq_department_code UNIQUE,
        name text NOT NULL,
        level text NOT NULL CONSTRAINT ck_department_level CHECK (level IN ({LEVELS})),
        grid_code text,
        categories text[] NOT NULL DEFAULT '{{}}',
        active boolean NOT NULL DEFAULT true
    )""")
    op.execute("CREATE INDEX ix_department_grid_code ON department (grid_code, level)")
    op.execute("""
    CREATE TABLE department_member (
        department_id bigint NOT NULL CONSTRAINT fk_department_member_department_id
            REFERENCES department (id) ON DELETE CASCADE,
        user_id bigint NOT NULL CONSTRAINT fk_department_member_user_id REFERENCES app_user (id) ON DELETE CASCADE,
        CONSTRAINT pk_department_member PRIMARY KEY (department_id, user_id)
    )""")
    op.execute("ALTER TABLE app_user DROP CONSTRAINT ck_app_user_role")
    op.execute(f"ALTER TABLE app_user ADD CONSTRAINT ck_app_user_role CHECK (role IN ({ROLES}))")


def downgrade() -> None:
    op.execute("ALTER TABLE app_user DROP CONSTRAINT ck_app_user_role")
    op.execute(f"ALTER TABLE app_user ADD CONSTRAINT ck_app_user_role CHECK (role IN ({ROLES_OLD}))")
    op.execute("DROP TABLE IF EXISTS department_member, department, report_contact, report_media, report_log")
    op.execute("DROP TRIGGER IF EXISTS report_status_from_state ON report")
    op.execute("DROP FUNCTION IF EXISTS report_status_from_state()")
    for index in (
        "open_due",
        "street_code",
        "community_code",
        "courtyard_code",
        "district_code",
        "matter_code",
        "department_code",
    ):
        op.execute(f"DROP INDEX IF EXISTS ix_report_{index}")
    op.execute("""
    ALTER TABLE report DROP CONSTRAINT ck_report_verifier,
        DROP COLUMN matter_code, DROP COLUMN state, DROP COLUMN courtyard_code, DROP COLUMN community_code,
        DROP COLUMN street_code, DROP COLUMN district_code, DROP COLUMN special_code, DROP COLUMN outside,
        DROP COLUMN handling_level, DROP COLUMN department_code, DROP COLUMN assignee, DROP COLUMN route,
        DROP COLUMN due_at, DROP COLUMN warn_at, DROP COLUMN warned_at, DROP COLUMN paused_at,
        DROP COLUMN paused_seconds, DROP COLUMN escalations, DROP COLUMN escalated_at, DROP COLUMN supervised_at,
        DROP COLUMN disposed_by, DROP COLUMN verified_by, DROP COLUMN closed_at, DROP COLUMN rating,
        DROP COLUMN rating_reasons, DROP COLUMN rated_at, DROP COLUMN reopened, DROP COLUMN parent_id,
        DROP COLUMN merged_into, DROP COLUMN version, DROP COLUMN attrs""")
