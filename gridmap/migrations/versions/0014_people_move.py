"""Move the old ``grid_person`` rows into ``person`` and ``grid_post`` and drop ``grid_person``;
posts and party coverage move the layer epoch, so the coverage map layer's cached tiles refresh.

Each distinct (name, phone) becomes one person; each row one current post from the moment of the
upgrade.  Roles map as named (``grid_worker``, ``grid_leader``, …); the old ``secretary`` becomes
``party_secretary``; any other old role becomes ``volunteer`` and is kept in the person's
``attrs.old_roles`` so nothing is lost.

Self-contained: it reads and writes only ``grid_person`` (0001), ``person``, ``grid_post`` and
``party_org_grid`` (0011) and ``layer_bump_epoch()`` (0004), so it may follow any later revision;
putting it after another is a change of ``down_revision`` alone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from alembic import op

revision = "0014"
down_revision = "0013"  # 0013_event_states
branch_labels = None
depends_on = None

POST_ROLES = (
    "'grid_leader', 'grid_worker', 'building_lead', 'unit_lead', 'party_secretary', 'party_member', 'volunteer'"
)
EPOCH_TABLES = ("grid_post", "party_org_grid")


def upgrade() -> None:
    op.execute("""
    INSERT INTO person (name, phone, attrs)
    SELECT name, phone, jsonb_build_object('moved_from', 'grid_person', 'old_roles', jsonb_agg(DISTINCT role))
    FROM grid_person WHERE name <> '' GROUP BY name, phone""")
    op.execute(f"""
    INSERT INTO grid_post (person_id, grid_code, role)
    SELECT DISTINCT p.id, gp.grid_code,
           CASE WHEN gp.role IN ({POST_ROLES}) THEN gp.role WHEN gp.role = 'secretary' THEN 'party_secretary'
                ELSE 'volunteer' END
    FROM grid_person gp JOIN person p ON p.name = gp.name AND p.phone IS NOT DISTINCT FROM gp.phone
         AND p.attrs->>'moved_from' = 'grid_person'""")
    op.execute(
        "UPDATE person SET party_member = true WHERE id IN (SELECT person_id FROM grid_post "
        "WHERE role IN ('party_secretary', 'party_member'))"
    )
    op.execute("DROP TABLE grid_person")
    for table in EPOCH_TABLES:
        op.execute(f"""
        CREATE TRIGGER {table}_layer_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION layer_bump_epoch()""")


def downgrade() -> None:
    for table in EPOCH_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_layer_epoch ON {table}")
    op.execute("""
    CREATE TABLE grid_person (
        id bigserial CONSTRAINT pk_grid_person PRIMARY KEY,
        grid_code text NOT NULL,
        name text NOT NULL,
        role text NOT NULL,
        phone text
    )""")
    op.execute("CREATE INDEX ix_grid_person_grid_code ON grid_person (grid_code)")
    op.execute("""
    INSERT INTO grid_person (grid_code, name, role, phone)
    SELECT p.grid_code, pe.name, p.role, pe.phone FROM grid_post p JOIN person pe ON pe.id = p.person_id
    WHERE p.valid_to IS NULL ORDER BY p.id""")
