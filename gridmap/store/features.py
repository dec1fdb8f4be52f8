"""SQL for the OGC API – Features endpoints: per-level extents, pages of items, one item's version."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .db import iso
from .grids import as_of

#: Columns of a feature's properties, in output order.
PROPERTIES = ("code", "name", "level", "kind", "parent_code", "households", "population", "valid_from", "valid_to")
_SELECT = (
    "SELECT id, code, name, level, kind, parent_code, households, population, valid_from, valid_to, "
    "ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS geometry FROM grid"
)


def level_extents(conn: Connection) -> dict[str, dict]:
    """Per level: the bbox of its current grids (None when it has none) and the time span of all its
    versions (``start``; ``end`` None while a version is current)."""
    rows = conn.execute(
        sa.text("""
        SELECT level, ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1,
               first_from, last_to, any_current
        FROM (SELECT level, ST_Extent(geom) FILTER (WHERE valid_to IS NULL) AS e, min(valid_from) AS first_from,
                     max(valid_to) AS last_to, bool_or(valid_to IS NULL) AS any_current
              FROM grid GROUP BY level) s""")
    ).mappings()
    out = {}
    for r in rows:
        bbox = None if r["x0"] is None else (r["x0"], r["y0"], r["x1"], r["y1"])
        out[r["level"]] = {"bbox": bbox, "start": r["first_from"], "end": None if r["any_current"] else r["last_to"]}
    return out


def _when(at: datetime | None, interval: tuple[datetime | None, datetime | None] | None) -> tuple[str, dict]:
    """WHERE fragment: versions valid at the instant ``at``, or overlapping ``interval`` (open ends None),
    or the current ones when both are None."""
    if interval is None:
        return as_of(at)
    start, end = interval
    parts, params = ["TRUE"], {}
    if end is not None:
        parts.append("valid_from <= :t_end")
        params["t_end"] = end
    if start is not None:
        parts.append("(valid_to IS NULL OR valid_to > :t_start)")
        params["t_start"] = start
    return " AND ".join(parts), params


def _feature(conn: Connection, row) -> dict:
    props = {k: row[k] for k in PROPERTIES}
    props["valid_from"] = iso(conn, row["valid_from"])
    props["valid_to"] = iso(conn, row["valid_to"])
    return {"type": "Feature", "id": row["code"], "geometry": row["geometry"], "properties": props}


def items(
    conn: Connection,
    level: str,
    *,
    bbox=None,
    at: datetime | None = None,
    interval=None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict]]:
    """(number matched, one page of features) of ``level``, ordered by code then version start."""
    where, params = _when(at, interval)
    where += " AND level = :level"
    params["level"] = level
    if bbox is not None:
        where += " AND ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox)))
    matched = conn.execute(sa.text(f"SELECT count(*) FROM grid WHERE {where}"), params).scalar_one()
    rows = conn.execute(
        sa.text(f"{_SELECT} WHERE {where} ORDER BY code, valid_from LIMIT :lim OFFSET :off"),
        {**params, "lim": limit, "off": offset},
    ).mappings()
    return matched, [_feature(conn, r) for r in rows]


def item(conn: Connection, level: str, code: str, at: datetime | None = None) -> tuple[int, dict] | None:
    """(version id, feature) of grid ``code`` of ``level`` valid at ``at`` (default: current); None if none."""
    where, params = as_of(at)
    row = (
        conn.execute(
            sa.text(f"{_SELECT} WHERE code = :code AND level = :level AND {where}"),
            {**params, "code": code, "level": level},
        )
        .mappings()
        .first()
    )
    return None if row is None else (row["id"], _feature(conn, row))
