"""SQL for the map: Mapbox vector tiles straight from PostGIS (``ST_AsMVT``), reports in a box,
search and the grid panel's counts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain.tiling import BUFFER, EXTENT, Frame, Tile

#: Grid properties carried by every grid tile (the page styles and labels with them).
GRID_PROPS = (
    "g.code, g.name, g.level, g.kind, g.households, r.colour AS risk, coalesce(r.overdue, 0) AS overdue, "
    "g.valid_from::text AS valid_from"
)


def _geom(frame: Frame, column: str) -> str:
    merc = f"ST_Transform({column}, 3857)"
    if frame.shift is not None:
        merc = f"ST_Affine({merc}, :a, :b, :d, :e, :xoff, :yoff)"
    return f"ST_AsMVTGeom({merc}, ST_TileEnvelope(:z, :x, :y), {EXTENT}, {BUFFER}, true)"


def _params(tile: Tile, frame: Frame, name: str) -> dict:
    p = {
        "z": tile.z,
        "x": tile.x,
        "y": tile.y,
        "name": name,
        "qx0": frame.query[0],
        "qy0": frame.query[1],
        "qx1": frame.query[2],
        "qy1": frame.query[3],
    }
    if frame.shift is not None:
        p.update(zip(("a", "b", "d", "e", "xoff", "yoff"), frame.shift))
    return p


def _simplify(tile: Tile, column: str) -> str:
    """Below z14, thin vertices closer than a quarter pixel before projecting (cheaper; invisible)."""
    if tile.z >= 14:
        return column
    tol_deg = 360.0 / (256 << tile.z) / 4
    return f"ST_Simplify({column}, {tol_deg!r}, true)"


def grid_tile(
    conn: Connection, tile: Tile, frame: Frame, name: str, *, level: str, risk_only: bool = False, at=None
) -> bytes:
    """Grids of ``level`` in ``tile`` as one MVT layer ``name`` (with each grid's rolled-up risk
    colour): the current ones, or those valid at ``at``; ``risk_only`` keeps the grids that have a colour."""
    join = "JOIN" if risk_only else "LEFT JOIN"
    when = "g.valid_to IS NULL" if at is None else "g.valid_from <= :at AND (g.valid_to IS NULL OR g.valid_to > :at)"
    sql = f"""
    SELECT ST_AsMVT(t, :name, {EXTENT}, 'geom') FROM (
        SELECT {GRID_PROPS}, {_geom(frame, _simplify(tile, "g.geom"))} AS geom
        FROM grid g {join} grid_risk r ON r.code = g.code
        WHERE {when} AND g.level = :level
          AND g.geom && ST_MakeEnvelope(:qx0, :qy0, :qx1, :qy1, 4326)
          {"AND r.colour IS NOT NULL" if risk_only else ""}
    ) t WHERE t.geom IS NOT NULL"""
    params = {**_params(tile, frame, name), "level": level, **({"at": at} if at is not None else {})}
    return bytes(conn.execute(sa.text(sql), params).scalar_one() or b"")


def risk_tile(
    conn: Connection,
    tile: Tile,
    frame: Frame,
    name: str,
    *,
    overdue_sql: str,
    colour: str | None = None,
    kind: str | None = None,
    personal: bool = True,
) -> bytes:
    """Risk elements (points and polygons) in ``tile``, optionally of one colour and kind, with their
    overdue state (``overdue_sql``: a boolean SQL expression over alias ``e`` and ``:at``).  Without
    ``personal``: no names, and no elements of kind person (where a person lives is personal data)."""
    where = "" if personal else " AND e.kind <> 'person'"
    params = {}
    if colour:
        where += " AND e.colour = :colour"
        params["colour"] = colour
    if kind:
        where += " AND e.kind = :kind"
        params["kind"] = kind
    sql = f"""
    SELECT ST_AsMVT(t, :name, {EXTENT}, 'geom') FROM (
        SELECT e.id, e.kind, e.colour, {"e.name," if personal else ""} e.micro_code, ({overdue_sql}) AS overdue,
               {_geom(frame, "e.geom")} AS geom
        FROM risk_element e
        WHERE e.geom && ST_MakeEnvelope(:qx0, :qy0, :qx1, :qy1, 4326) {where}
    ) t WHERE t.geom IS NOT NULL"""
    return bytes(conn.execute(sa.text(sql), {**_params(tile, frame, name), **params}).scalar_one() or b"")


def building_tile(conn: Connection, tile: Tile, frame: Frame, name: str) -> bytes:
    """Current building footprints in ``tile`` (the map's own context where no base map is drawn)."""
    sql = f"""
    SELECT ST_AsMVT(t, :name, {EXTENT}, 'geom') FROM (
        SELECT b.code, b.name, b.number, b.floors, b.households,
               (SELECT count(DISTINCT g.code) FROM grid_share s JOIN grid g ON g.id = s.grid_id
                WHERE s.building_code = b.code AND g.valid_to IS NULL) AS grids,
               {_geom(frame, "b.geom")} AS geom
        FROM building b
        WHERE b.valid_to IS NULL AND b.geom && ST_MakeEnvelope(:qx0, :qy0, :qx1, :qy1, 4326)
    ) t WHERE t.geom IS NOT NULL"""
    return bytes(conn.execute(sa.text(sql), _params(tile, frame, name)).scalar_one() or b"")


def data_epochs(conn: Connection) -> tuple[int, int]:
    """(grid epoch, layer epoch): a cached tile is fresh while both are unchanged."""
    row = conn.execute(
        sa.text("SELECT (SELECT epoch FROM grid_epoch WHERE id = 1), (SELECT coalesce(sum(epoch), 0) FROM layer_epoch)")
    ).first()
    return int(row[0] or 0), int(row[1] or 0)
