"""What goes on each QR sticker: grids, buildings and unit entrances of communities, with the phone
of the grid worker who serves each (the leader's for courtyards and communities)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain.qr import split_unit, unit_code

LABEL_FIELDS = ("kind", "code", "name", "level", "community", "phone")

# Current grids of the communities (or all), each with its community; a micro-grid's worker phone
# (or a courtyard's / community's leader), the first post by id so a reprint gives the same label.
_GRIDS = """
WITH RECURSIVE t AS (
    SELECT code, name, level, parent_code, valid_from, code AS community FROM grid
    WHERE valid_to IS NULL AND level = 'community' {communities}
    UNION ALL
    SELECT g.code, g.name, g.level, g.parent_code, g.valid_from, t.community
    FROM grid g JOIN t ON g.parent_code = t.code
    WHERE g.valid_to IS NULL AND g.level IN ('courtyard', 'micro', 'special')
)
SELECT 'g', t.code, t.name, t.level, t.community, w.phone, t.valid_from, w.since FROM t
LEFT JOIN LATERAL (
    SELECT pe.phone, p.valid_from AS since FROM grid_post p JOIN person pe ON pe.id = p.person_id
    WHERE p.grid_code = t.code AND p.valid_to IS NULL
      AND p.role = CASE WHEN t.level IN ('micro', 'special') THEN 'grid_worker' ELSE 'grid_leader' END
    ORDER BY p.id LIMIT 1) w ON true
"""

# Current buildings of those communities, the micro-grid holding each one's point, its worker.  The
# micro-grid is looked for among the building's courtyard's own micro-grids first (two or three each,
# tested one by one behind OFFSET 0 so the planner does not probe the city-wide GiST index, which cost
# 0.2 ms a building: 22 s for the Zhengzhou-scale city against 2.5 s), then, for a building standing
# over its courtyard's edge, among all of them; units come as one array per building.
_BUILDINGS = """
WITH y AS (
    SELECT y.code, y.parent_code AS community FROM grid y
    WHERE y.valid_to IS NULL AND y.level = 'courtyard' {communities_y}
)
SELECT b.code, b.name, y.community, b.valid_from, m.code AS micro, m.valid_from AS micro_from, w.phone, w.since,
       ARRAY(SELECT u.number FROM unit u WHERE u.building_id = b.id ORDER BY u.number)
FROM building b JOIN y ON y.code = b.courtyard_code
LEFT JOIN LATERAL (
    (SELECT g.code, g.valid_from FROM (
        SELECT code, valid_from, geom FROM grid
        WHERE valid_to IS NULL AND parent_code = b.courtyard_code AND level = 'micro' OFFSET 0) g
     WHERE ST_Covers(g.geom, ST_PointOnSurface(b.geom)))
    UNION ALL
    (SELECT g.code, g.valid_from FROM grid g
     WHERE g.valid_to IS NULL AND g.level = 'micro' AND ST_Covers(g.geom, ST_PointOnSurface(b.geom)))
    LIMIT 1) m ON true
LEFT JOIN LATERAL (
    SELECT pe.phone, p.valid_from AS since FROM grid_post p JOIN person pe ON pe.id = p.person_id
    WHERE p.grid_code = m.code AND p.valid_to IS NULL AND p.role = 'grid_worker' ORDER BY p.id LIMIT 1) w ON true
WHERE b.valid_to IS NULL
"""


def _changed(since: datetime | None, *stamps) -> bool:
    return since is None or any(s is not None and s >= since for s in stamps)


def labels(conn: Connection, communities=None, *, kinds=("g", "b", "u"), since: datetime | None = None) -> list[dict]:
    """Sticker rows (``kind`` g/b/u, ``code``, ``name``, ``level``, ``community``, ``phone`` unmasked)
    of the current grids, buildings and unit entrances of ``communities`` (all when None), in
    community then code order.  With ``since``, only what changed from then: a new version of the
    grid or building, of the micro-grid a building stands in, or a new worker there."""
    params = {"codes": list(communities or [])}
    # the plans are cheap (index look-ups per row) but estimated dear: JIT compiling them cost 0.8 s
    conn.execute(sa.text("SELECT set_config('jit', 'off', true)"))
    out = []
    if "g" in kinds:
        sql = _GRIDS.format(communities="AND code = ANY(:codes)" if communities is not None else "")
        for kind, code, name, level, community, phone, valid_from, post_from in conn.execute(sa.text(sql), params):
            if _changed(since, valid_from, post_from):
                out.append(
                    {"kind": kind, "code": code, "name": name, "level": level, "community": community, "phone": phone}
                )
    if {"b", "u"} & set(kinds):
        sql = _BUILDINGS.format(communities_y="AND y.parent_code = ANY(:codes)" if communities is not None else "")
        for code, name, community, valid_from, _micro, micro_from, phone, post_from, units in conn.execute(
            sa.text(sql), params
        ):
            if not _changed(since, valid_from, micro_from, post_from):
                continue
            if "b" in kinds:
                out.append(
                    {
                        "kind": "b",
                        "code": code,
                        "name": name,
                        "level": "building",
                        "community": community,
                        "phone": phone,
                    }
                )
            if "u" in kinds and len(units) > 1:  # a one-stairwell building's code is its entrance's
                for n in units:
                    out.append(
                        {
                            "kind": "u",
                            "code": unit_code(code, n),
                            "name": f"{name}{n}单元",
                            "level": "unit",
                            "community": community,
                            "phone": phone,
                        }
                    )
    order = {"g": 0, "b": 1, "u": 2}
    out.sort(key=lambda r: (r["community"], order[r["kind"]], r["code"]))
    return out


def community_exists(conn: Connection, code: str) -> bool:
    return bool(
        conn.execute(
            sa.text("SELECT 1 FROM grid WHERE code = :c AND level = 'community' AND valid_to IS NULL"), {"c": code}
        ).first()
    )


def exists(conn: Connection, kind: str, code: str) -> bool:
    """Whether ``code`` is a current grid (kind g), building (b) or unit entrance (u, ``BUILDING-Un``)."""
    if kind == "g":
        sql, params = "SELECT 1 FROM grid WHERE code = :c AND valid_to IS NULL", {"c": code}
    elif kind == "b":
        sql, params = "SELECT 1 FROM building WHERE code = :c AND valid_to IS NULL", {"c": code}
    else:
        building, number = split_unit(code)
        sql = (
            "SELECT 1 FROM building b JOIN unit u ON u.building_id = b.id "
            "WHERE b.code = :c AND b.valid_to IS NULL AND u.number = :n"
        )
        params = {"c": building, "n": number}
    return conn.execute(sa.text(sql), params).first() is not None
