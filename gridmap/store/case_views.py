"""SQL that reads many cases at once: the dispatchers' queue of a grid subtree, the assessment
figures per grid, level or department, and the Open311 request listing.

The grid chain is stored on every case (``street_code``, ``community_code``, …), so a subtree is
an equality on one indexed column, not a spatial join.  Among the open cases, those of a courtyard,
community, street or district are found through one GIN index of the four codes (migration 0019: four
B-trees cost every filed case four inserts); a grid code names one grid of one level, so containing
the code is the same as the level's column equalling it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .cases import CHAIN_COLUMNS

#: What statistics and queues may be grouped or scoped by (column names from here only).
SCOPES = {c.removesuffix("_code"): c for c in CHAIN_COLUMNS} | {"department": "department_code"}
#: The levels whose open cases are found through one GIN index of their codes (migration 0019).
OPEN_CHAIN_COLUMNS = ("courtyard_code", "community_code", "street_code", "district_code")


def _open_in(column: str, alias: str = "") -> str:
    """SQL: an open case is in the subtree ``column`` = ``:code``, written so that the index of open
    cases serves it (the chain's GIN index for the levels it holds, else the column's own)."""
    prefix = f"{alias}." if alias else ""
    if column in OPEN_CHAIN_COLUMNS:
        return f"ARRAY[{', '.join(prefix + c for c in OPEN_CHAIN_COLUMNS)}] @> ARRAY[CAST(:code AS text)]"
    return f"{prefix}{column} = :code"


_QUEUE = """
SELECT r.id, r.state, r.matter_code, r.received_at, r.due_at, r.warn_at, r.handling_level, r.department_code,
       r.assignee, r.micro_code, r.community_code, r.street_code, r.outside, r.escalations, r.supervised_at,
       r.paused_at, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, r.due_at < :now AS overdue, count(*) OVER () AS total
FROM report r
WHERE r.status = 'open' AND r.matter_code IS NOT NULL
  AND (CAST(:code AS text) IS NULL OR {in_scope})
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
    sql = _QUEUE.format(in_scope=_open_in(SCOPES[scope], "r"), direction="DESC" if descending else "ASC")
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


#: The columns the figures read of each case besides the scope and the group.
_FIGURE_COLUMNS = ("status", "received_at", "closed_at", "due_at", "escalations", "reopened", "rating")
#: One kind of case of the figures: the closed ones (read from the scope's wide index alone, migrations
#: 0016 and 0019) and the open ones (through the queue's index of open cases and their rows).
_STATS_PART = """
SELECT {columns} FROM report
WHERE status = '{status}' AND matter_code IS NOT NULL AND state NOT IN ('merged', 'cancelled')
  AND (CAST(:code AS text) IS NULL OR {in_scope})
  AND (CAST(:since AS timestamptz) IS NULL OR received_at >= :since)
  AND (CAST(:until AS timestamptz) IS NULL OR received_at < :until)"""
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
FROM ({closed} UNION ALL {open}) r
GROUP BY 1 ORDER BY 1
"""


def stats_sql(group: str, scope: str) -> str:
    """The figures' statement per ``group`` column within ``scope`` column (both of :data:`SCOPES`)."""
    columns = ", ".join(dict.fromkeys((group, scope, *_FIGURE_COLUMNS)))
    in_scope = {"closed": f"{scope} = :code", "open": _open_in(scope)}
    part = {s: _STATS_PART.format(columns=columns, status=s, in_scope=in_scope[s]) for s in ("closed", "open")}
    return _STATS.format(group=group, **part)


def stats(conn: Connection, *, group: str, scope: str, code: str | None, now, since=None, until=None) -> list[dict]:
    """Assessment figures per ``group`` value (a level or department) within ``scope`` = ``code``."""
    sql = stats_sql(SCOPES[group], SCOPES[scope])
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
