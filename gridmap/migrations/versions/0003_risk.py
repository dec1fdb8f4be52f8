"""Three-colour risk elements, their visits, and the rolled-up colour of every grid.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KINDS = "'person', 'place', 'thing', 'event', 'situation', 'organisation'"
COLOURS = "'red', 'yellow', 'blue'"


def upgrade() -> None:
    op.execute(f"""
    CREATE TABLE risk_element (
        id bigserial CONSTRAINT pk_risk_element PRIMARY KEY,
        kind text NOT NULL CONSTRAINT ck_risk_element_kind CHECK (kind IN ({KINDS})),
        colour text NOT NULL CONSTRAINT ck_risk_element_colour CHECK (colour IN ({COLOURS})),
        name text NOT NULL,
        reason text,
        marked_by text NOT NULL,
        marked_at timestamptz NOT NULL DEFAULT now(),
        geom geometry(Geometry, 4326) NOT NULL
            CONSTRAINT ck_risk_element_geom_type CHECK (GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')),
        micro_code text,
        last_visit_at timestamptz,
        attrs jsonb NOT NULL DEFAULT '{{}}'::jsonb
    )""")
    op.execute("CREATE INDEX ix_risk_element_geom ON risk_element USING gist (geom)")
    op.execute("CREATE INDEX ix_risk_element_micro_code ON risk_element (micro_code)")
    op.execute("CREATE INDEX ix_risk_element_colour ON risk_element (colour)")

    op.execute("""
    CREATE TABLE risk_visit (
        id bigserial CONSTRAINT pk_risk_visit PRIMARY KEY,
        element_id bigint NOT NULL
            CONSTRAINT fk_risk_visit_element_id REFERENCES risk_element (id) ON DELETE CASCADE,
        visited_at timestamptz NOT NULL,
        visitor text NOT NULL,
        note text
    )""")
    op.execute("CREATE INDEX ix_risk_visit_element_id ON risk_visit (element_id, visited_at)")
    # last_visit_at = max(visited_at), kept by the database whoever writes visits (the store, psql,
    # another tool), in the writing statement's transaction; statement level: one UPDATE per COPY
    op.execute("""
    CREATE FUNCTION risk_visit_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            -- rows already right (a loader that wrote last_visit_at itself) are not rewritten
            UPDATE risk_element e SET last_visit_at = n.latest
            FROM (SELECT element_id, max(visited_at) AS latest FROM changed GROUP BY element_id) n
            WHERE e.id = n.element_id AND (e.last_visit_at IS NULL OR e.last_visit_at < n.latest);
        ELSIF TG_OP = 'UPDATE' THEN  -- recount the elements a visit left and joined
            UPDATE risk_element e SET last_visit_at =
                (SELECT max(v.visited_at) FROM risk_visit v WHERE v.element_id = e.id)
            WHERE e.id IN (SELECT element_id FROM changed UNION SELECT element_id FROM changed_new);
        ELSE
            UPDATE risk_element e SET last_visit_at =
                (SELECT max(v.visited_at) FROM risk_visit v WHERE v.element_id = e.id)
            WHERE e.id IN (SELECT element_id FROM changed);
        END IF;
        RETURN NULL;
    END $$""")
    op.execute("""
    CREATE TRIGGER risk_visit_sync_insert AFTER INSERT ON risk_visit
        REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION risk_visit_sync()""")
    op.execute("""
    CREATE TRIGGER risk_visit_sync_update AFTER UPDATE ON risk_visit
        REFERENCING OLD TABLE AS changed NEW TABLE AS changed_new
        FOR EACH STATEMENT EXECUTE FUNCTION risk_visit_sync()""")
    op.execute("""
    CREATE TRIGGER risk_visit_sync_delete AFTER DELETE ON risk_visit
        REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION risk_visit_sync()""")

    op.execute(f"""
    CREATE TABLE grid_risk (
        code text CONSTRAINT pk_grid_risk PRIMARY KEY,
        level text NOT NULL,
        colour text CONSTRAINT ck_grid_risk_colour CHECK (colour IN ({COLOURS})),
        red integer NOT NULL,
        yellow integer NOT NULL,
        blue integer NOT NULL,
        overdue integer NOT NULL,
        computed_at timestamptz NOT NULL
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS grid_risk, risk_visit, risk_element CASCADE")
    op.execute("DROP FUNCTION IF EXISTS risk_visit_sync()")
