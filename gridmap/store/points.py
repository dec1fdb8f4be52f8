"""SQL for residents and reports (points with their micro-grid): writes, reassignment when boundaries
move, the report listings, and the points an edited area holds."""

from __future__ import annotations

import lazy_loader
import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import risk
from .db import copy_frame, iso

pd = lazy_loader.load("pandas")

TABLES = ("resident", "report")
_COLUMNS = {
    "report": ["text", "address", "source_lon", "source_lat", "source_crs", "geom", "micro_code"],
    "resident": ["name", "address", "building_code", "unit", "geom", "micro_code"],
}

#: Written when the frame has them (else the column defaults: open, now).
_OPTIONAL = {"report": ("status", "received_at")}


def insert(conn: Connection, table: str, frame: pd.DataFrame) -> int:
    """Bulk-insert rows (``geom`` as EWKB hex, or None) into ``resident`` or ``report``."""
    columns = _COLUMNS[table] + [c for c in _OPTIONAL.get(table, ()) if c in frame.columns]
    copy_frame(conn, table, columns, frame[columns])
    return len(frame)


#: What a report from a file carries; a re-run with the same (source, external_id) updates these.
INTAKE = [
    "text",
    "address",
    "source_lon",
    "source_lat",
    "source_crs",
    "geom",
    "micro_code",
    "source",
    "external_id",
    "reported_at",
    "attrs",
]


def upsert_reports(conn: Connection, frame: pd.DataFrame) -> dict[str, int]:
    """Store reports by (source, external_id): new ones are inserted, known ones updated when
    anything in ``INTAKE`` changed (a missing ``reported_at`` keeps the stored one; new reports
    without one get the time they are stored), else left alone.  Never touches the case (state).
    Counts of ``inserted``, ``updated`` and ``unchanged``."""
    conn.execute(
        sa.text("""
        CREATE TEMP TABLE _intake (text text, address text, source_lon float8, source_lat float8,
            source_crs text, geom geometry, micro_code text, source text, external_id text,
            reported_at timestamptz, attrs jsonb) ON COMMIT DROP""")
    )
    copy_frame(conn, "_intake", INTAKE, frame[INTAKE])
    counts = upsert_reports_from(conn, "_intake", len(frame))
    conn.execute(sa.text("DROP TABLE _intake"))
    return counts


def upsert_reports_from(conn: Connection, table: str, n: int, order: str | None = None) -> dict[str, int]:
    """:func:`upsert_reports` of the ``n`` rows of ``table`` (the :data:`INTAKE` columns: a temporary
    table, or a distributed run's staging table), new ones inserted in ``order`` (SQL, e.g. ``part, seq``)."""
    content = [c for c in INTAKE if c not in ("source", "external_id", "attrs", "reported_at")]
    updated = conn.execute(
        sa.text(f"""
        UPDATE report r SET {", ".join(f"{c} = i.{c}" for c in content)},
            reported_at = coalesce(i.reported_at, r.reported_at),
            attrs = (r.attrs - 'intake_error') || i.attrs, assigned_at = now()
        FROM {table} i
        WHERE r.source = i.source AND r.external_id = i.external_id
          AND ({", ".join(f"r.{c}" for c in content)}, r.reported_at, r.attrs -> 'intake_error')
              IS DISTINCT FROM ({", ".join(f"i.{c}" for c in content)}, coalesce(i.reported_at, r.reported_at),
                                i.attrs -> 'intake_error')""")
    ).rowcount
    inserted = conn.execute(
        sa.text(f"""
        INSERT INTO report ({", ".join(INTAKE)})
        SELECT {", ".join("coalesce(reported_at, now())" if c == "reported_at" else c for c in INTAKE)} FROM {table}
        {f"ORDER BY {order}" if order else ""}
        ON CONFLICT (source, external_id) DO NOTHING""")
    ).rowcount
    return {"inserted": inserted, "updated": updated, "unchanged": n - inserted - updated}


def columns(table: str) -> list[str]:
    """The columns a recorded ``resident`` row fills (``report``: :data:`INTAKE`)."""
    return list(INTAKE) if table == "report" else list(_COLUMNS[table])


def reassign(conn: Connection, codes) -> dict[str, int]:
    """Give a new micro-grid to the residents, reports and risk elements that the changed micro-grids
    ``codes`` touch (held before, or covered now), on the caller's transaction.  Same rule as
    lookups: covers, lowest code wins.  Counts the rows whose micro-grid changed (what an edit's
    preview counts), not the rows looked at."""
    counts = {}
    for table in TABLES:
        res = conn.execute(
            sa.text(f"""
            WITH fresh AS (
                SELECT t.id, (SELECT g.code FROM grid g WHERE g.level = 'micro' AND g.valid_to IS NULL
                              AND ST_Covers(g.geom, t.geom) ORDER BY g.code LIMIT 1) AS code
                FROM {table} t
                WHERE t.geom IS NOT NULL AND (t.micro_code = ANY(:codes) OR EXISTS (
                    SELECT 1 FROM grid c WHERE c.code = ANY(:codes) AND c.level = 'micro' AND c.valid_to IS NULL
                      AND ST_Covers(c.geom, t.geom))))
            UPDATE {table} t SET micro_code = f.code, assigned_at = now() FROM fresh f
            WHERE t.id = f.id AND t.micro_code IS DISTINCT FROM f.code"""),
            {"codes": list(codes)},
        )
        counts[table] = res.rowcount
    # risk elements: by their representative point, no assigned_at to stamp
    counts["risk_element"] = risk.reassign(conn, codes)
    return counts


def count_by_micro(conn: Connection, table: str) -> dict[str | None, int]:
    rows = conn.execute(sa.text(f"SELECT micro_code, count(*) FROM {table} GROUP BY micro_code"))
    return {code: n for code, n in rows}


def points_in(conn: Connection, area) -> dict[str, tuple]:
    """Residents, reports, risk elements and buildings whose (representative) point lies in ``area``:
    per table (ids, lon, lat)."""
    queries = {
        "residents": "SELECT id, geom AS p FROM resident",
        "reports": "SELECT id, geom AS p FROM report",
        "risk_elements": "SELECT id, ST_PointOnSurface(geom) AS p FROM risk_element "
        "WHERE geom && ST_GeomFromWKB(:wkb, 4326)",
        "buildings": "SELECT code AS id, ST_PointOnSurface(geom) AS p FROM building "
        "WHERE valid_to IS NULL AND geom && ST_GeomFromWKB(:wkb, 4326)",
    }
    out = {}
    for name, sql in queries.items():
        rows = conn.execute(
            sa.text(f"""
            SELECT id, ST_X(p), ST_Y(p) FROM ({sql}) s
            WHERE p && ST_GeomFromWKB(:wkb, 4326) AND ST_Covers(ST_GeomFromWKB(:wkb, 4326), p)
            ORDER BY id"""),
            {"wkb": shapely.to_wkb(area)},
        ).all()
        out[name] = (
            np.array([r[0] for r in rows], dtype=object),
            np.array([r[1] for r in rows], dtype=float),
            np.array([r[2] for r in rows], dtype=float),
        )
    return out


def reports(conn: Connection, bbox, *, status: str | None = None, limit: int = 5000) -> dict:
    """Reports with a point in ``bbox`` as a FeatureCollection, newest first, with the total matched.
    Reports filed as event-centre cases are left out: they have their own layer (cases), which shows
    no report text to anyone without a role."""
    params = {"limit": limit}
    where = "r.geom IS NOT NULL AND r.matter_code IS NULL"
    if bbox is not None:
        where += " AND r.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox)))
    if status:
        where += " AND r.status = :status"
        params["status"] = status
    total = conn.execute(sa.text(f"SELECT count(*) FROM report r WHERE {where}"), params).scalar_one()
    rows = (
        conn.execute(
            sa.text(f"""
        SELECT r.id, r.text, r.address, r.status, r.micro_code, r.received_at,
               ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat
        FROM report r WHERE {where} ORDER BY r.received_at DESC, r.id DESC LIMIT :limit"""),
            params,
        )
        .mappings()
        .all()
    )
    features = [
        {
            "type": "Feature",
            "id": r["id"],
            "geometry": {"type": "Point", "coordinates": [round(r["lon"], 7), round(r["lat"], 7)]},
            "properties": {
                "id": r["id"],
                "text": r["text"],
                "address": r["address"],
                "status": r["status"],
                "micro_code": r["micro_code"],
                "received_at": iso(conn, r["received_at"]),
            },
        }
        for r in rows
    ]
    return {"type": "FeatureCollection", "features": features, "numberMatched": total, "numberReturned": len(features)}


def open_reports_below(conn: Connection, code: str, level: str, limit: int = 20) -> dict:
    """Open reports in the micro-grids below grid ``code`` (of ``level``): count and the newest few."""
    micro = _micro_below(level)
    params = {"code": code, "limit": limit}
    total = conn.execute(
        sa.text(f"""
        WITH RECURSIVE {micro} SELECT count(*) FROM report r JOIN below b ON b.code = r.micro_code
        WHERE r.status = 'open'"""),
        params,
    ).scalar_one()
    rows = (
        conn.execute(
            sa.text(f"""
        WITH RECURSIVE {micro} SELECT r.id, r.text, r.address, r.received_at, r.micro_code
        FROM report r JOIN below b ON b.code = r.micro_code WHERE r.status = 'open'
        ORDER BY r.received_at DESC, r.id DESC LIMIT :limit"""),
            params,
        )
        .mappings()
        .all()
    )
    return {"open": total, "latest": [{**dict(r), "received_at": iso(conn, r["received_at"])} for r in rows]}


def _micro_below(level: str) -> str:
    """A recursive CTE ``below(code)`` of the current micro-grids under ``:code`` (itself if micro)."""
    return """below(code, level) AS (
        SELECT code, level FROM grid WHERE code = :code AND valid_to IS NULL
        UNION ALL
        SELECT g.code, g.level FROM grid g JOIN below b ON g.parent_code = b.code
        WHERE g.valid_to IS NULL AND b.level <> 'micro')"""
