"""The people who answer for each grid, their party organisation, and the secrets QR codes are signed with.

- ``person``: a person once, whatever posts they hold.  ID-card numbers are never stored in clear:
  ``id_card_hash`` is a keyed hash (HMAC with the ``id_card`` secret below), unique, so a person is
  found again on re-import without the number being readable.
- ``grid_post``: a person's role on a grid (grid leader, grid worker, building lead, unit lead, party
  secretary, party member, volunteer), dated like grids: a move closes one post and opens another,
  so history stays.  Building and unit leads name their building (and unit).
- ``party_org`` (committee, general branch, branch, group; a tree by ``parent_code``) and
  ``party_org_grid``: the grids an organisation covers, dated.
- ``app_secret``: keys shared by every server on this database (QR signatures, ID-card hashing),
  made once, never returned by any API.

The older ``grid_person`` table is moved into these by the people work (a later migration).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

POST_ROLES = (
    "'grid_leader', 'grid_worker', 'building_lead', 'unit_lead', 'party_secretary', 'party_member', 'volunteer'"
)
ORG_KINDS = "'committee', 'general_branch', 'branch', 'group'"


def upgrade() -> None:
    op.execute("""
    CREATE TABLE person (
        id bigserial CONSTRAINT pk_person PRIMARY KEY,
        name text NOT NULL CONSTRAINT ck_person_name CHECK (name <> ''),
        phone text,
        id_card_hash text CONSTRAINT uq_person_id_card_hash UNIQUE,
        gender text CONSTRAINT ck_person_gender CHECK (gender IN ('f', 'm')),
        party_member boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        attrs jsonb NOT NULL DEFAULT '{}'::jsonb
    )""")
    op.execute(f"""
    CREATE TABLE grid_post (
        id bigserial CONSTRAINT pk_grid_post PRIMARY KEY,
        person_id bigint NOT NULL CONSTRAINT fk_grid_post_person_id REFERENCES person (id) ON DELETE CASCADE,
        grid_code text NOT NULL,
        role text NOT NULL CONSTRAINT ck_grid_post_role CHECK (role IN ({POST_ROLES})),
        building_code text,
        unit integer,
        valid_from timestamptz NOT NULL DEFAULT now(),
        valid_to timestamptz,
        CONSTRAINT ck_grid_post_validity CHECK (valid_to IS NULL OR valid_to > valid_from),
        CONSTRAINT ck_grid_post_building
            CHECK (role NOT IN ('building_lead', 'unit_lead') OR building_code IS NOT NULL),
        CONSTRAINT ck_grid_post_unit CHECK (role <> 'unit_lead' OR unit IS NOT NULL)
    )""")
    op.execute("CREATE INDEX ix_grid_post_current_grid_code ON grid_post (grid_code, role) WHERE valid_to IS NULL")
    op.execute("CREATE INDEX ix_grid_post_person_id ON grid_post (person_id)")
    op.execute("""
    CREATE UNIQUE INDEX uq_grid_post_current ON grid_post
        (person_id, grid_code, role, coalesce(building_code, ''), coalesce(unit, 0)) WHERE valid_to IS NULL""")
    op.execute(f"""
    CREATE TABLE party_org (
        id bigserial CONSTRAINT pk_party_org PRIMARY KEY,
        code text NOT NULL CONSTRAINT uq_party_org_code UNIQUE,
        name text NOT NULL,
        kind text NOT NULL CONSTRAINT ck_party_org_kind CHECK (kind IN ({ORG_KINDS})),
        parent_code text CONSTRAINT fk_party_org_parent_code REFERENCES party_org (code),
        secretary_id bigint CONSTRAINT fk_party_org_secretary_id REFERENCES person (id) ON DELETE SET NULL,
        valid_from timestamptz NOT NULL DEFAULT now(),
        valid_to timestamptz,
        CONSTRAINT ck_party_org_validity CHECK (valid_to IS NULL OR valid_to > valid_from)
    )""")
    op.execute("""
    CREATE TABLE party_org_grid (
        org_id bigint NOT NULL CONSTRAINT fk_party_org_grid_org_id REFERENCES party_org (id) ON DELETE CASCADE,
        grid_code text NOT NULL,
        valid_from timestamptz NOT NULL DEFAULT now(),
        valid_to timestamptz,
        CONSTRAINT pk_party_org_grid PRIMARY KEY (org_id, grid_code, valid_from),
        CONSTRAINT ck_party_org_grid_validity CHECK (valid_to IS NULL OR valid_to > valid_from)
    )""")
    op.execute("CREATE INDEX ix_party_org_grid_current ON party_org_grid (grid_code) WHERE valid_to IS NULL")
    op.execute("""
    CREATE TABLE app_secret (
        name text CONSTRAINT pk_app_secret PRIMARY KEY,
        value bytea NOT NULL CONSTRAINT ck_app_secret_length CHECK (length(value) >= 32),
        created_at timestamptz NOT NULL DEFAULT now()
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS app_secret, party_org_grid, party_org, grid_post, person")
