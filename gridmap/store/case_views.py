"""SQL that reads many cases at once: the dispatchers' queue of a grid subtree, the assessment
figures per grid, level or department, and the Open311 request listing.

The grid chain is stored on every case (``street_code``, ``community_code``, …), so a subtree is
an equality on one indexed column, not a spatial join.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .cases import CHAIN_COLUMNS

#: What statistics and queues may be grouped or scoped by (column names from here only).
SCOPES = {c.removesuffix("_code"): c for c in CHAIN_COLUMNS} | {"department": "department_code"}

_QUEUE = """
SELECT r.id, r.state, r.matter_code, r.received_at, r.due_at, r.warn_at, r.handling_level, r.department_code,
       r.assignee, r.micro_code, r.community_code, r.street_code, r.outside, r.escalations, r.supervised_at,
       r.paused_at, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, r.due_at < :now AS overdue, count(*) OVER () AS total
FROM report r
WHERE r.status = 'open' AND r.matter_code IS NOT NULL
  AND (CAST(:code AS text) IS NULL OR r.{column} = :code)
  AND (CAST(:matter AS text) IS NULL OR r.matter_code = :matter)
  AND (CAST(:states AS text[]) IS NULL OR r.state = ANY(:states))
  AND (CAST(:overdue AS boolean) IS NULL OR (r.due_at < :now) = :overdue)
ORDER BY r.due_at {direction} NULLS LAST, r.id
LIMIT :limit OFFSET :offset
"""


def queue(
    conn: Connection,
    *,
    scope: str,
    code: str | None,
    now,
    matter: str | None = None,
    states: list[str] | None = None,
    overdue: bool | None = None,
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """Open cases of the subtree ``scope`` = ``code`` (all when code is None), by deadline; (page, total)."""
    sql = _QUEUE.format(column=SCOPES[scope], direction="DESC" if descending else "ASC")
    rows = conn.execute(
        sa.text(sql),
        {
            "code": code,
            "matter": matter,
            "states": states,
            "overdue": overdue,
            "now": now,
            "limit": limit,
            "offset": offset,
        },
    ).mappings()
    page = [dict(r) for r in rows]
    return [{k: v for k, v in r.items() if k != "total"} for r in page], (page[0]["total"] if page else 0)


_STATS = """
SELECT r.{group} AS key, count(*) AS cases, count(r.closed_at) AS closed,
       avg(CASE WHEN r.closed_at IS NOT NULL THEN (r.closed_at <= r.due_at)::int END) AS on_time_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.closed_at - r.received_at) / 3600.0)
           FILTER (WHERE r.closed_at IS NOT NULL) AS median_hours,
       sum(r.escalations) AS escalations,
       avg(CASE WHEN r.closed_at IS NOT NULL THEN (r.reopened > 0)::int END) AS reopen_rate,
       avg(r.rating) AS satisfaction,
       count(*) FILTER (WHERE r.status = 'open') AS open,
       count(*) FILTER (WHERE r.status = 'open' AND r.due_at < :now) AS overdue
FROM report r
WHERE r.matter_code IS NOT NULL AND r.state NOT IN ('merged', 'cancelled')
  AND (CAST(:code AS text) IS NULL OR r.{scope} = :code)
  AND (CAST(:since AS timestamptz) IS NULL OR r.received_at >= :since)
  AND (CAST(:until AS timestamptz) IS NULL OR r.received_at < :until)
GROUP BY 1 ORDER BY 1
"""


def stats(conn: Connection, *, group: str, scope: str, code: str | None, now, since=None, until=None) -> list[dict]:
    """Assessment figures per ``group`` value (a level or department) within ``scope`` = ``code``."""
    sql = _STATS.format(group=SCOPES[group], scope=SCOPES[scope])
    rows = conn.execute(sa.text(sql), {"code": code, "since": since, "until": until, "now": now}).mappings()
    return [
        {
            k: (float(v) if k in ("on_time_rate", "reopen_rate", "satisfaction") and v is not None else v)
            for k, v in r.items()
        }
        for r in rows
    ]


_REQUESTS = """
SELECT r.id, r.state, r.matter_code AS matter, r.text AS description, r.address, r.reported_at, r.due_at,
       r.micro_code AS grid_code, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat,
       coalesce(d.name, CASE WHEN r.assignee LIKE 'grid:%' THEN '网格员' END) AS agency,
       (SELECT max(l.at) FROM report_log l WHERE l.report_id = r.id) AS updated_at,
       (SELECT m.url FROM report_media m WHERE m.report_id = r.id AND m.url IS NOT NULL ORDER BY m.id LIMIT 1)
           AS media_url
FROM report r LEFT JOIN department d ON d.code = r.department_code
WHERE r.matter_code IS NOT NULL
  AND (CAST(:ids AS bigint[]) IS NULL OR r.id = ANY(:ids))
  AND (CAST(:codes AS text[]) IS NULL OR r.matter_code = ANY(:codes))
  AND (CAST(:statuses AS text[]) IS NULL OR r.status = ANY(:statuses))
  AND (CAST(:start AS timestamptz) IS NULL OR r.reported_at >= :start)
  AND (CAST(:end AS timestamptz) IS NULL OR r.reported_at <= :end)
ORDER BY r.reported_at DESC, r.id DESC
LIMIT :limit OFFSET :offset
"""


def requests(conn: Connection, *, ids=None, codes=None, statuses=None, start=None, end=None, limit=50, offset=0):
    """Cases as Open311 lists them, newest first."""
    rows = conn.execute(
        sa.text(_REQUESTS),
        {
            "ids": ids or None,
            "codes": codes or None,
            "statuses": statuses or None,
            "start": start,
            "end": end,
            "limit": limit,
            "offset": offset,
        },
    ).mappings()
    return [dict(r) for r in rows]


def grid_level(conn: Connection, code: str) -> str | None:
    """The level of the current grid ``code`` (None when there is none)."""
    return conn.execute(
        sa.text("SELECT level FROM grid WHERE code = :code AND valid_to IS NULL LIMIT 1"), {"code": code}
    ).scalar()


def nearest_open(conn: Connection, lon: float, lat: float, radius_m: float) -> tuple[int, float] | None:
    """(id, metres) of the open case nearest to the point within ``radius_m``, or None (the map's click)."""
    deg = radius_m / 80_000.0  # a box in degrees that holds the circle at China's latitudes (lon: 1 deg > 80 km)
    row = conn.execute(
        sa.text("""WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g)
                   SELECT r.id, ST_Distance(r.geom::geography, p.g::geography) AS d FROM report r, p
                   WHERE r.status = 'open' AND r.matter_code IS NOT NULL AND r.geom && ST_Expand(p.g, :deg)
                   ORDER BY d, r.id LIMIT 1"""),
        {"lon": lon, "lat": lat, "deg": deg},
    ).first()
    return (row[0], float(row[1])) if row is not None and row[1] <= radius_m else None
