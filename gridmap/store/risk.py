"""SQL for three-colour risk elements, their visits and the rolled-up grid colours.

The rules (visit intervals, thresholds) come from :mod:`gridmap.domain.risk`; here they only shape
SQL fragments.  The roll-up itself is computed in pandas (``domain.risk.rollup``): this module
fetches the counts and writes the result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import lazy_loader
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain import risk as domain
from ..domain.levels import ALL_LEVELS, SPECIAL
from ..domain.risk import COLOURS, KINDS, Rules
from ..errors import NotFound
from .db import copy_frame, iso

pd = lazy_loader.load("pandas")

ELEMENT_COLUMNS = ["id", "kind", "colour", "name", "reason", "marked_by", "marked_at", "geom", "micro_code", "attrs"]
VISIT_COLUMNS = ["element_id", "visited_at", "visitor", "note"]
#: Elements' own point: a polygon's representative point (GEOS point-on-surface, as shapely's).
POINT_SQL = "ST_PointOnSurface({a}.geom)"


def interval_sql(rules: Rules, alias: str = "e") -> str:
    """SQL interval allowed between visits of the element ``alias`` (by its colour)."""
    whens = " ".join(f"WHEN '{c}' THEN interval '{int(rules.visit_days[c])} days'" for c in COLOURS)
    return f"(CASE {alias}.colour {whens} END)"


def next_due_sql(rules: Rules, alias: str = "e") -> str:
    """SQL timestamptz when the element ``alias`` must next be visited."""
    return f"(coalesce({alias}.last_visit_at, {alias}.marked_at) + {interval_sql(rules, alias)})"


def overdue_sql(rules: Rules, alias: str = "e", at_param: str = ":at") -> str:
    """SQL boolean: the element ``alias`` is overdue at ``at_param`` (a bind parameter or an
    expression such as ``now()``): coalesce(last visit, marked) + interval(colour) < at."""
    return f"({next_due_sql(rules, alias)} < {at_param})"


# --- writes ------------------------------------------------------------------------


def insert_elements(conn: Connection, frame: pd.DataFrame) -> list[int]:
    """COPY checked elements (``geom`` as EWKB hex, ``marked_at`` ISO text, ``attrs`` JSON text);
    returns their new ids in frame order."""
    if not len(frame):
        return []
    ids = (
        conn.execute(sa.text("SELECT nextval('risk_element_id_seq') FROM generate_series(1, :n)"), {"n": len(frame)})
        .scalars()
        .all()
    )
    out = frame.assign(id=ids)
    out["attrs"] = out["attrs"].fillna("{}") if "attrs" in out else "{}"
    # last_visit_at only from loaders that also insert the visits (the trigger keeps it true after)
    columns = ELEMENT_COLUMNS + (["last_visit_at"] if "last_visit_at" in out else [])
    copy_frame(conn, "risk_element", columns, out[columns])
    return list(ids)


def insert_visits(conn: Connection, frame: pd.DataFrame) -> int:
    """COPY checked visits; the trigger of migration 0003 moves each element's ``last_visit_at``."""
    if len(frame):
        copy_frame(conn, "risk_visit", VISIT_COLUMNS, frame[VISIT_COLUMNS])
    return len(frame)


def element_marks(conn: Connection, ids) -> dict[int, datetime]:
    """marked_at of the elements among ``ids`` that exist."""
    rows = conn.execute(
        sa.text("SELECT id, marked_at FROM risk_element WHERE id = ANY(:ids)"), {"ids": [int(i) for i in ids]}
    )
    return {i: m for i, m in rows}


def reassign(conn: Connection, codes) -> int:
    """Give a new micro-grid to the elements the changed micro-grids ``codes`` touch (held before,
    or whose point they cover now); lowest code wins, as in lookups.  Counts the elements whose
    micro-grid changed."""
    point = POINT_SQL.format(a="t")
    res = conn.execute(
        sa.text(f"""
        WITH fresh AS (
            SELECT t.id, (SELECT g.code FROM grid g WHERE g.level = 'micro' AND g.valid_to IS NULL
                          AND g.geom && t.geom AND ST_Covers(g.geom, {point}) ORDER BY g.code LIMIT 1) AS code
            FROM risk_element t
            WHERE t.micro_code = ANY(:codes) OR EXISTS (
                SELECT 1 FROM grid c WHERE c.code = ANY(:codes) AND c.level = 'micro' AND c.valid_to IS NULL
                  AND c.geom && t.geom AND ST_Covers(c.geom, {point})))
        UPDATE risk_element t SET micro_code = f.code FROM fresh f
        WHERE t.id = f.id AND t.micro_code IS DISTINCT FROM f.code"""),
        {"codes": list(codes)},
    )
    return res.rowcount


# --- roll-up -------------------------------------------------------------------------


def _count_columns(rules: Rules, alias: str = "e") -> str:
    return (
        ", ".join(f"count(*) FILTER (WHERE {alias}.colour = '{c}') AS {c}" for c in COLOURS)
        + f", count(*) FILTER (WHERE {overdue_sql(rules, alias)}) AS overdue"
    )


def _frame(result, columns) -> pd.DataFrame:
    """Rows as a frame; plain tuples first (pandas inspects Row objects one by one, seconds per 100k)."""
    return pd.DataFrame([tuple(r) for r in result], columns=columns)


def refresh_rollup(conn: Connection, rules: Rules, at: datetime | None = None) -> int:
    """Recompute ``grid_risk`` for every current grid with an element below it, on the caller's
    transaction (overdue counted at ``at``, default now).  Returns the rows written."""
    at = at or datetime.now(UTC)
    # two refreshes at once would both delete and then both insert: one at a time
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('gridmap.grid_risk'))"))
    conn.execute(sa.text("DELETE FROM grid_risk"))
    cols = ["red", "yellow", "blue", "overdue"]
    counts = _frame(
        conn.execute(
            sa.text(
                f"SELECT e.micro_code, {_count_columns(rules)} FROM risk_element e "
                "WHERE e.micro_code IS NOT NULL GROUP BY e.micro_code"
            ),
            {"at": at},
        ),
        ["micro_code", *cols],
    )
    specials = _frame(
        conn.execute(
            sa.text(
                f"SELECT g.code, {_count_columns(rules)} FROM grid g JOIN risk_element e "
                f"ON e.geom && g.geom AND ST_Covers(g.geom, {POINT_SQL.format(a='e')}) "
                "WHERE g.level = 'special' AND g.valid_to IS NULL GROUP BY g.code"
            ),
            {"at": at},
        ),
        ["code", *cols],
    )
    if counts.empty and specials.empty:
        return 0
    chain = _frame(
        conn.execute(sa.text("SELECT code, level, parent_code FROM grid WHERE valid_to IS NULL")),
        ["code", "level", "parent_code"],
    )
    rolled = domain.rollup(counts, chain, rules, specials)
    rolled["computed_at"] = at.isoformat()
    copy_frame(
        conn,
        "grid_risk",
        ["code", "level", "colour", *cols, "computed_at"],
        rolled[["code", "level", "colour", *cols, "computed_at"]],
    )
    return len(rolled)


# --- reads ---------------------------------------------------------------------------


def current_grid(conn: Connection, code: str) -> tuple[str, str] | None:
    """(code, level) of the current grid ``code``, None when there is none."""
    row = conn.execute(
        sa.text("SELECT code, level FROM grid WHERE code = :code AND valid_to IS NULL"), {"code": code}
    ).first()
    return None if row is None else (row[0], row[1])


def _below_sql(level: str, alias: str = "e") -> str:
    """SQL boolean: element ``alias`` lies below the current grid ``:grid`` of ``level``."""
    if level == SPECIAL:
        return (
            f"EXISTS (SELECT 1 FROM grid s WHERE s.code = :grid AND s.valid_to IS NULL "
            f"AND {alias}.geom && s.geom AND ST_Covers(s.geom, {POINT_SQL.format(a=alias)}))"
        )
    if level == "micro":
        return f"{alias}.micro_code = :grid"
    return f"""{alias}.micro_code IN (
        WITH RECURSIVE below AS (
            SELECT code, level FROM grid WHERE code = :grid AND valid_to IS NULL
            UNION ALL
            SELECT g.code, g.level FROM grid g JOIN below b ON g.parent_code = b.code
            WHERE g.valid_to IS NULL AND g.level <> 'special')
        SELECT code FROM below WHERE level = 'micro')"""


def _filters(
    conn: Connection, rules: Rules, *, grid=None, kind=None, colour=None, overdue=None, bbox=None, at: datetime
) -> tuple[str, dict]:
    where, params = ["TRUE"], {"at": at}
    if grid is not None:
        found = current_grid(conn, grid)
        if found is None:
            raise NotFound(f"no current grid with code {grid!r}")
        where.append(_below_sql(found[1]))
        params["grid"] = grid
    if kind is not None:
        where.append("e.kind = :kind")
        params["kind"] = kind
    if colour is not None:
        where.append("e.colour = :colour")
        params["colour"] = colour
    if overdue is not None:
        where.append(overdue_sql(rules) if overdue else f"NOT {overdue_sql(rules)}")
    if bbox is not None:
        where.append("e.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox)))
    return " AND ".join(where), params


def list_elements(
    conn: Connection,
    rules: Rules,
    *,
    grid=None,
    kind=None,
    colour=None,
    overdue=None,
    bbox=None,
    at: datetime | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> dict:
    """Elements matching the filters as an RFC 7946 FeatureCollection (ordered by id), with
    ``numberMatched`` (all matches) and ``numberReturned``.  NotFound for an unknown ``grid``."""
    at = at or datetime.now(UTC)
    where, params = _filters(conn, rules, grid=grid, kind=kind, colour=colour, overdue=overdue, bbox=bbox, at=at)
    matched = conn.execute(sa.text(f"SELECT count(*) FROM risk_element e WHERE {where}"), params).scalar_one()
    rows = (
        conn.execute(
            sa.text(f"""
        SELECT e.id, e.kind, e.colour, e.name, e.reason, e.marked_by, e.marked_at, e.last_visit_at,
               {next_due_sql(rules)} AS next_visit_due, {overdue_sql(rules)} AS overdue, e.micro_code, e.attrs,
               ST_AsGeoJSON(ST_ForcePolygonCCW(e.geom), 7) AS geometry
        FROM risk_element e WHERE {where} ORDER BY e.id LIMIT :limit OFFSET :offset"""),
            {**params, "limit": limit, "offset": offset},
        )
        .mappings()
        .all()
    )
    features = [
        {
            "type": "Feature",
            "id": r["id"],
            "geometry": json.loads(r["geometry"]),
            "properties": {
                "id": r["id"],
                "kind": r["kind"],
                "colour": r["colour"],
                "name": r["name"],
                "reason": r["reason"],
                "marked_by": r["marked_by"],
                "marked_at": iso(conn, r["marked_at"]),
                "last_visit_at": iso(conn, r["last_visit_at"]),
                "next_visit_due": iso(conn, r["next_visit_due"]),
                "overdue": r["overdue"],
                "micro_code": r["micro_code"],
                "attrs": r["attrs"],
            },
        }
        for r in rows
    ]
    return {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(features),
        "timeStamp": iso(conn, at),
        "features": features,
    }


def element(conn: Connection, rules: Rules, element_id: int, at: datetime | None = None) -> dict | None:
    """One element's properties (as in :func:`list_elements`), None when unknown."""
    at = at or datetime.now(UTC)
    row = (
        conn.execute(
            sa.text(f"""
        SELECT e.id, e.kind, e.colour, e.name, e.reason, e.marked_by, e.marked_at, e.last_visit_at,
               {next_due_sql(rules)} AS next_visit_due, {overdue_sql(rules)} AS overdue, e.micro_code
        FROM risk_element e WHERE e.id = :id"""),
            {"id": element_id, "at": at},
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return {k: (iso(conn, v) if isinstance(v, datetime) else v) for k, v in row.items()}


def grid_summary(conn: Connection, code: str, rules: Rules, at: datetime | None = None) -> dict | None:
    """Live counts of the elements below the current grid ``code``, its colour by the roll-up rule
    and counts by kind; None when there is no such grid (zeros and colour None without elements)."""
    found = current_grid(conn, code)
    if found is None:
        return None
    at = at or datetime.now(UTC)
    rows = conn.execute(
        sa.text(f"""
        SELECT e.kind, e.colour, count(*) AS n, count(*) FILTER (WHERE {overdue_sql(rules)}) AS overdue
        FROM risk_element e WHERE {_below_sql(found[1])} GROUP BY e.kind, e.colour"""),
        {"grid": code, "at": at},
    ).all()
    by_colour = {c: 0 for c in COLOURS}
    by_kind = {k: 0 for k in KINDS}
    late = 0
    for kind, colour, n, o in rows:
        by_colour[colour] += n
        by_kind[kind] += n
        late += o
    colour = domain.colour_of(by_colour["red"], by_colour["yellow"], by_colour["blue"], found[1], rules)[0]
    return {
        "code": code,
        "level": found[1],
        "colour": colour,
        **by_colour,
        "overdue": late,
        "by_kind": by_kind,
        "at": iso(conn, at),
    }


def summary(conn: Connection, rules: Rules, at: datetime | None = None) -> dict:
    """Counts by colour, by kind, overdue by colour, and rolled-up grids per colour per level."""
    at = at or datetime.now(UTC)
    rows = conn.execute(
        sa.text(f"""
        SELECT e.kind, e.colour, count(*), count(*) FILTER (WHERE {overdue_sql(rules)})
        FROM risk_element e GROUP BY e.kind, e.colour"""),
        {"at": at},
    ).all()
    by_colour = {c: 0 for c in COLOURS}
    by_kind = {k: 0 for k in KINDS}
    overdue = {c: 0 for c in COLOURS}
    kind_colour = {k: {c: 0 for c in COLOURS} for k in KINDS}
    for kind, colour, n, o in rows:
        by_colour[colour] += n
        by_kind[kind] += n
        overdue[colour] += o
        kind_colour[kind][colour] += n
    grids = {lv: {c: 0 for c in (*COLOURS, "none")} for lv in ALL_LEVELS}
    computed = None
    for level, colour, n, when in conn.execute(
        sa.text("SELECT level, colour, count(*), max(computed_at) FROM grid_risk GROUP BY level, colour")
    ):
        grids.setdefault(level, {c: 0 for c in (*COLOURS, "none")})[colour or "none"] = n
        computed = max(computed, when) if computed else when
    return {
        "elements": sum(by_colour.values()),
        "by_colour": by_colour,
        "by_kind": by_kind,
        "by_kind_colour": kind_colour,
        "overdue": {**overdue, "total": sum(overdue.values())},
        "grids": grids,
        "rollup_computed_at": iso(conn, computed),
        "at": iso(conn, at),
        "visit_days": dict(rules.visit_days),
    }


def rollup_rows(conn: Connection, level: str | None = None) -> list[dict]:
    """Rows of ``grid_risk`` (of one level), by code."""
    sql = "SELECT code, level, colour, red, yellow, blue, overdue, computed_at FROM grid_risk"
    params = {}
    if level is not None:
        sql += " WHERE level = :level"
        params["level"] = level
    return [dict(r._mapping) for r in conn.execute(sa.text(sql + " ORDER BY code"), params)]
