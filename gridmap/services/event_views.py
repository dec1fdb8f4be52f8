"""Reading cases many at a time: the dispatchers' queue of a grid subtree, the assessment figures
(JSON and CSV), and the Open311 GeoReport v2 views and intake."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .. import geo
from ..domain.events import open311
from ..domain.events.intake import Report
from ..errors import InputError, NotFound
from ..store import case_views, cases
from .events import Centre, intake, offered

QUEUE_STATES = ("reported", "filed", "dispatched", "suspended", "disposed", "verified", "reopen_requested", "split_up")
STATS_COLUMNS = (
    "key",
    "cases",
    "closed",
    "open",
    "overdue",
    "on_time_rate",
    "median_hours",
    "escalations",
    "reopen_rate",
    "satisfaction",
)


def _scope(conn, grid: str | None) -> tuple[str, str | None]:
    """(level, code) of a subtree given by a grid code (all cases when None); NotFound for an unknown grid."""
    if grid is None:
        return "district", None
    level = case_views.grid_level(conn, grid)
    if level is None or level not in case_views.SCOPES:
        raise NotFound(f"no current grid {grid!r} of level district, street, community, courtyard or micro")
    return level, grid


def _local(value, tz: ZoneInfo):
    return value.astimezone(tz).isoformat(timespec="seconds") if isinstance(value, datetime) else value


def queue(
    centre: Centre,
    *,
    grid=None,
    matter=None,
    states=None,
    overdue=None,
    descending=False,
    page=1,
    size=50,
    roles=frozenset(),
):
    """A page of the open cases below ``grid``, by deadline (times in the centre's zone, stated)."""
    for s in states or ():
        if s not in QUEUE_STATES:
            raise InputError(f"state {s!r} is not an open state (choose from {', '.join(QUEUE_STATES)})")
    if matter is not None and matter not in centre.catalogue.matters:
        raise InputError(f"unknown matter {matter!r}")
    tz = ZoneInfo(centre.tz)
    with centre.engine.connect() as conn:
        level, code = _scope(conn, grid)
        rows, total = case_views.queue(
            conn,
            scope=level,
            code=code,
            now=centre.now(),
            matter=matter,
            states=list(states) if states else None,
            overdue=overdue,
            descending=descending,
            limit=size,
            offset=(page - 1) * size,
        )
    names = {c: m.name for c, m in centre.catalogue.matters.items()}
    items = [
        {
            **{k: _local(v, tz) for k, v in r.items()},
            "matter_name": names.get(r["matter_code"]),
            "actions": offered(r["state"], roles),
        }
        for r in rows
    ]
    return {
        "grid": code,
        "level": level,
        "total": total,
        "page": page,
        "page_size": size,
        "time_zone": centre.tz,
        "cases": items,
    }


def stats(centre: Centre, *, group: str = "street", grid=None, since=None, until=None) -> dict:
    """Assessment per ``group`` (a level or ``department``) within ``grid``'s subtree."""
    if since is not None and until is not None and since > until:
        raise InputError(f"since ({since.isoformat()}) is after until ({until.isoformat()}): no case can be in between")
    if group not in case_views.SCOPES:
        raise InputError(f"group {group!r} unknown (choose from {', '.join(case_views.SCOPES)})")
    with centre.engine.connect() as conn:
        level, code = _scope(conn, grid)
        rows = case_views.stats(conn, group=group, scope=level, code=code, now=centre.now(), since=since, until=until)
    return {"group": group, "grid": code, "level": level, "time_zone": centre.tz, "rows": rows}


def stats_csv(figures: dict) -> str:
    """The figures as CSV (UTF-8 with a BOM, so Excel on Chinese Windows reads it)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.DictWriter(buf, fieldnames=STATS_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(figures["rows"])
    return buf.getvalue()


def requests(centre: Centre, query: open311.Query, *, personal: bool) -> list[dict]:
    """GET requests: the filtered page as GeoReport service requests (the spec's default without ids or
    dates: the last 90 days)."""
    codes = list(query.service_codes)
    if not query.ids and query.start is None and query.end is None:
        query = replace(query, start=centre.now() - timedelta(days=90))
    with centre.engine.connect() as conn:
        rows = case_views.requests(
            conn,
            ids=list(query.ids),
            codes=codes,
            statuses=list(query.statuses),
            start=query.start,
            end=query.end,
            limit=query.page_size,
            offset=(query.page - 1) * query.page_size,
        )
    names = {c: m.name for c, m in centre.catalogue.matters.items()}
    return [open311.request({**r, "matter_name": names.get(r["matter"])}, centre.tz, personal=personal) for r in rows]


def request(centre: Centre, case_id: int, *, personal: bool) -> list[dict]:
    """GET requests/{id}: a one-item list, or 404 in the spec's shape."""
    if not 0 < case_id <= cases.MAX_ID:
        raise open311.Open311Error(404, f"service_request_id {case_id} not found")
    found = requests(centre, open311.Query(ids=(case_id,), page_size=1), personal=personal)
    if not found:
        raise open311.Open311Error(404, f"service_request_id {case_id} not found")
    return found


def create(centre: Centre, got: open311.Intake, *, actor: str) -> list[dict]:
    """POST requests: the case filed from a checked body; [{service_request_id, service_notice, account_id}]."""
    name = " ".join(p for p in (got.first_name, got.last_name) if p) or None
    contact = {
        k: v
        for k, v in (
            ("name", name),
            ("email", got.email),
            ("phone", got.phone),
            ("account_id", got.account_id),
            ("device_id", got.device_id),
        )
        if v
    }
    report = Report(
        matter=got.service_code,
        lon=got.long,
        lat=got.lat,
        crs=got.crs,
        address=got.address,
        text=got.description,
        channel="open311",
        contact=contact,
        media_urls=(got.media_url,) if got.media_url else (),
        attributes=got.attributes,
    )
    filed = intake(centre, report, actor=actor)
    notice = filed["route"]["why"] if filed["route"] else None
    # the reporter key doubles as the spec's token: GET tokens/{token} finds the request again
    return [
        {
            "service_request_id": filed["id"],
            "service_notice": notice,
            "account_id": got.account_id,
            "token": filed.get("reporter_key"),
        }
    ]


def nearest(centre: Centre, lon: float, lat: float, radius_m: float, crs: str | None = None) -> dict:
    """The open case nearest to a point of the map (``crs``: the base map's) within ``radius_m``: id and metres."""
    source = geo.parse_crs(crs)
    x, y = geo.transform_xy([lon], [lat], source)
    with centre.engine.connect() as conn:
        found = case_views.nearest_open(conn, float(x[0]), float(y[0]), radius_m)
    return {"id": found[0], "distance_m": round(found[1], 1)} if found else {"id": None}
