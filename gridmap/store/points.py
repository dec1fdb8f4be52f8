"""SQL for residents and reports: stored with their micro-grid, reassigned when boundaries move."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .grids import _copy

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
    _copy(conn, table, columns, frame[columns])
    return len(frame)


def reassign(conn: Connection, codes) -> dict[str, int]:
    """Give a new micro-grid to the residents, reports and risk elements that the changed micro-grids
    ``codes`` touch (held before, or covered now), on the caller's transaction.  Same rule as
    lookups: covers, lowest code wins."""
    counts = {}
    for table in TABLES:
        res = conn.execute(sa.text(f"""
            UPDATE {table} t SET micro_code = (
                SELECT g.code FROM grid g WHERE g.level = 'micro' AND g.valid_to IS NULL
                  AND ST_Covers(g.geom, t.geom) ORDER BY g.code LIMIT 1), assigned_at = now()
            WHERE t.geom IS NOT NULL AND (t.micro_code = ANY(:codes) OR EXISTS (
                SELECT 1 FROM grid c WHERE c.code = ANY(:codes) AND c.level = 'micro' AND c.valid_to IS NULL
                  AND ST_Covers(c.geom, t.geom)))"""), {"codes": list(codes)})
        counts[table] = res.rowcount
    from . import risk  # risk elements: by their representative point, no assigned_at to stamp

    counts["risk_element"] = risk.reassign(conn, codes)
    return counts


def count_by_micro(conn: Connection, table: str) -> dict[str | None, int]:
    rows = conn.execute(sa.text(f"SELECT micro_code, count(*) FROM {table} GROUP BY micro_code"))
    return {code: n for code, n in rows}
