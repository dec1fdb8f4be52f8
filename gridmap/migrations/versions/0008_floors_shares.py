"""Households down to the floor, micro-grids that share a building, grids allowed in several parts.

- ``unit.floors`` and ``unit.floor_households`` (households on floors 1..n, summing to the unit's
  households): a unit is addressable floor by floor.
- ``grid_share``: a micro-grid version's share of the buildings in it, as floor ranges of units.
  Every floor of every current unit belongs to exactly one current micro-grid (``validate`` proves
  it); several micro-grids may share one tower's footprint, each holding its floors.  Rows hang on
  the grid *version* (``grid.id``), so they are dated exactly like the grid.
- ``grid.multipart``: a grid explicitly allowed to be in several pieces (a courtyard cut by a public
  road); every other grid must be one connected piece.
- ``resident.floor`` and ``resident.room``: a household's address down to the room.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE FUNCTION int_array_sum(integer[]) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS 'SELECT coalesce(sum(x), 0) FROM unnest($1) AS x'""")
    op.execute("""
    ALTER TABLE unit
        ADD COLUMN floors integer CONSTRAINT ck_unit_floors CHECK (floors > 0),
        ADD COLUMN floor_households integer[],
        ADD CONSTRAINT ck_unit_floor_households CHECK (
            floor_households IS NULL OR (floors IS NOT NULL AND cardinality(floor_households) = floors
                                         AND int_array_sum(floor_households) = households))""")
    op.execute("ALTER TABLE grid ADD COLUMN multipart boolean NOT NULL DEFAULT false")
    op.execute("""
    CREATE TABLE grid_share (
        grid_id bigint NOT NULL CONSTRAINT fk_grid_share_grid_id REFERENCES grid (id) ON DELETE CASCADE,
        building_code text NOT NULL,
        unit integer NOT NULL,
        floor_from integer NOT NULL,
        floor_to integer NOT NULL,
        households integer NOT NULL CONSTRAINT ck_grid_share_households CHECK (households >= 0),
        CONSTRAINT ck_grid_share_floors CHECK (floor_to >= floor_from),
        CONSTRAINT pk_grid_share PRIMARY KEY (grid_id, building_code, unit, floor_from)
    )""")
    op.execute("CREATE INDEX ix_grid_share_building_code ON grid_share (building_code, unit)")
    op.execute("""
    CREATE TRIGGER grid_share_epoch_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grid_share
        FOR EACH STATEMENT EXECUTE FUNCTION grid_bump_epoch()""")
    op.execute("ALTER TABLE resident ADD COLUMN floor integer, ADD COLUMN room text")


def downgrade() -> None:
    op.execute("ALTER TABLE resident DROP COLUMN floor, DROP COLUMN room")
    op.execute("DROP TABLE IF EXISTS grid_share")
    op.execute("ALTER TABLE grid DROP COLUMN multipart")
    op.execute(
        "ALTER TABLE unit DROP CONSTRAINT ck_unit_floor_households, DROP COLUMN floor_households, DROP COLUMN floors"
    )
    op.execute("DROP FUNCTION IF EXISTS int_array_sum(integer[])")
