"""The event centre's intake: a report from any channel located on the grid, checked for
duplicates, filed, routed (automatically or to the dispatchers' queue) and committed with its log,
in one transaction.  Also routing without filing, and the case as its readers may see it.

:class:`Centre` carries what every event service needs: the engine, the catalogue and calendar in
force, the locator, the time zone and where photos are kept.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine

from ..domain.events import clock, duplicates, routing
from ..domain.events.catalogue import LEVELS_UP, Catalogue, Matter
from ..domain.events.intake import Report
from ..domain.events.loop import LOOP, Context
from ..errors import Conflict, GridmapError, InputError, NotFound
from ..store import cases, departments, users
from . import matters

SYSTEM = "system"
#: Filing and automatic dispatch as the loop allows them to the system (fired once here, at start:
#: the same two steps for every report, so intake does not build a state machine per request).
_INTAKE = Context(roles=frozenset({SYSTEM}), matter_known=True, assignee="department")
INTAKE_STEPS = (LOOP.fire("reported", "file", _INTAKE), LOOP.fire("filed", "dispatch", _INTAKE))


def offered(state: str, roles) -> list[str]:
    """The actions a person of ``roles`` (the loop's) may take on a case in ``state``.  The steps only the
    server takes (the tick, a split's last child) are never offered, by step: ``close`` is the
    server's from ``split_up`` and a dispatcher's from ``verified`` (filtering by action name hid the
    dispatcher's own close of every verified case)."""
    return LOOP.actions(state, frozenset(roles) - {SYSTEM})


@dataclass(frozen=True)
class Centre:
    """What the event services work with."""

    engine: Engine
    catalogue: Catalogue
    cal: clock.WorkCalendar
    locator: object  # services.locator.Locator: lookup(lon, lat, crs=) and lookup_address(text)
    tz: str = "Asia/Shanghai"
    media_dir: Path | None = None

    def now(self) -> datetime:
        return datetime.now(ZoneInfo(self.tz))


def iso(value, tz: str):
    """An aware datetime as ISO 8601 in ``tz`` (with its offset); anything else unchanged."""
    return value.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds") if isinstance(value, datetime) else value


def chain_of(answer: dict) -> dict[str, str]:
    """Level → code from a lookup answer (empty outside every grid)."""
    return {c["level"]: c["code"] for c in answer.get("chain", []) if c["level"] in LEVELS_UP}


def locate(centre: Centre, report: Report) -> dict:
    """Where a report is: ``lon``/``lat`` (storage CRS, None for an address not found), ``chain``,
    ``inside``, ``special``.  A point outside every grid is kept; bad coordinates are an InputError."""
    if report.lon is not None:
        answer = centre.locator.lookup(report.lon, report.lat, crs=report.crs)
    else:
        try:
            answer = centre.locator.lookup_address(report.address)
        except GridmapError:  # an address not in the gazetteer: the case is kept, flagged outside
            return {"lon": None, "lat": None, "chain": {}, "inside": False, "special": None}
    specials = answer.get("specials") or []
    return {
        "lon": answer["lon"],
        "lat": answer["lat"],
        "chain": chain_of(answer),
        "inside": bool(answer.get("inside")),
        "special": specials[0]["code"] if specials else None,
    }


def route(conn: Connection, centre: Centre, matter: Matter, chain: dict[str, str]) -> routing.Route:
    """Where a case of ``matter`` with ``chain`` would go now."""
    codes = list(chain.values())
    return routing.route(
        centre.catalogue, matter, chain, departments.for_grids(conn, codes), departments.workers_for(conn, codes)
    )


def can_climb(matter: Matter, level: str | None, chain: dict[str, str]) -> bool:
    """Whether a case handled at ``level`` has a level above it in its chain to escalate to."""
    start = level if level in LEVELS_UP else matter.level
    return any(chain.get(lv) for lv in matter.levels_above(start))


def route_json(r: routing.Route) -> dict:
    return {
        "level": r.level,
        "grid": r.grid,
        "kind": r.kind,
        "department": r.department,
        "workers": len(r.workers),
        "queue": r.queue,
        "why": r.why,
    }


def simulate(centre: Centre, matter_code: str, report: Report) -> dict:
    """Routing of a report without filing it: the location, the route and why."""
    matter = centre.catalogue.matter(matter_code)
    place = locate(centre, report)
    with centre.engine.connect() as conn:
        r = route(conn, centre, matter, place["chain"])
    return {
        "matter": matter.code,
        "name": matter.name,
        "auto": matter.auto,
        "inside": place["inside"],
        "chain": place["chain"],
        "route": route_json(r),
    }


def clock_columns(centre: Centre, matter: Matter, start: datetime, level: str | None, chain: dict) -> dict:
    """Deadline, warning and next tick of a clock started at ``start``."""
    run = clock.start(matter.deadline, start, centre.cal)
    due = clock.when_used(run, 1.0, centre.cal)
    warn = clock.when_used(run, centre.catalogue.defaults.warn_ratio, centre.cal)
    return {
        "due_at": due,
        "warn_at": warn,
        "warned_at": None,
        "tick_at": clock.next_tick(warn, None, due, can_climb(matter, level, chain)),
    }


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def intake(centre: Centre, report: Report, *, actor: str) -> dict:
    """File a report as a case: located, duplicate-checked, routed and logged in one transaction.

    InputError for bad coordinates; an ``external_id`` already received from the same channel
    returns that case (``existing`` true) instead of a second one.
    """
    matter = centre.catalogue.matter(report.matter)
    place = locate(centre, report)
    with centre.engine.begin() as conn:
        if report.external_id is not None:
            found = cases.by_external_id(conn, report.channel, report.external_id)
            if found is not None:
                return {"id": found, "existing": True}
        return file_case(conn, centre, report, matter, place, actor=actor)


def file_case(
    conn: Connection,
    centre: Centre,
    report: Report,
    matter: Matter | None,
    place: dict,
    *,
    actor: str,
    attrs: dict | None = None,
    now: datetime | None = None,
) -> dict:
    """Insert a located report as a case in the caller's transaction: filed and routed when its
    ``matter`` is known (dispatched at once when the route finds a handler), else left ``reported``
    for a dispatcher to give it one; its log; the reporter's contact.  ``attrs`` are kept with the
    case beside the reporter key.  The answer as :func:`intake` gives it."""
    now = now or centre.now()
    chain = place["chain"]
    key = secrets.token_urlsafe(18)
    if matter is not None:
        r = route(conn, centre, matter, chain)
        level = r.level or next((lv for lv in LEVELS_UP[LEVELS_UP.index(matter.level) :] if chain.get(lv)), None)
        steps = INTAKE_STEPS[: 2 if r.assigned else 1]
        routed = {
            "matter_code": matter.code,
            "handling_level": level or "city",
            "department_code": r.department,
            "assignee": f"grid:{r.grid}" if r.workers else None,
            "route": route_json(r),
            **clock_columns(centre, matter, now, level, chain),
        }
    else:
        r, steps, routed = None, (), {}
    values = {
        "received_at": now,
        "reported_at": report.reported_at or now,
        "source": report.channel,
        "external_id": report.external_id,
        "text": report.text,
        "address": report.address,
        "source_lon": report.lon,
        "source_lat": report.lat,
        "source_crs": report.crs,
        "lon": place["lon"],
        "lat": place["lat"],
        "outside": not place["inside"],
        "special_code": place["special"],
        **{f"{lv}_code": chain.get(lv) for lv in LEVELS_UP},
        "state": steps[-1].target if steps else "reported",
        **routed,
        "attrs": {**(attrs or {}), "reporter_key": _key_hash(key), "attributes": report.attributes},
    }
    case_id = cases.insert(conn, values)
    entries = [
        {
            "report_id": case_id,
            "at": now,
            "actor": actor,
            "role": "reporter",
            "action": "report",
            "from_state": None,
            "to_state": "reported",
            "note": None,
            "detail": {"channel": report.channel},
        }
    ]
    for step in steps:
        entries.append(
            {
                "report_id": case_id,
                "at": now,
                "actor": SYSTEM,
                "role": SYSTEM,
                "action": step.action,
                "from_state": step.state,
                "to_state": step.target,
                "note": None,
                "detail": {"why": r.why} if step.action == "dispatch" or not r.assigned else {},
            }
        )
    log_ids = cases.log(conn, entries)
    if report.contact:
        cases.add_contact(conn, case_id, "reporter", {**report.contact, "channel": report.channel})
    for url in report.media_urls:
        cases.add_media(conn, case_id, log_ids[0], "report", {"url": url}, actor)
    dups = suggest_duplicates(conn, centre, matter, place, now, exclude=case_id) if matter else []
    return {
        "id": case_id,
        "existing": False,
        "state": values["state"],
        "matter": matter.code if matter else None,
        "inside": place["inside"],
        "chain": chain,
        "route": route_json(r) if r else None,
        "due_at": iso(values.get("due_at"), centre.tz),
        "warn_at": iso(values.get("warn_at"), centre.tz),
        "time_zone": centre.tz,
        "duplicates": [d.__dict__ for d in dups],
        "reporter_key": key,
    }


def suggest_duplicates(conn: Connection, centre: Centre, matter: Matter, place: dict, now, exclude=None) -> list:
    """Open cases of the same matter within its radius and window of ``place``, nearest first."""
    if place["lon"] is None:
        return []
    since = now - timedelta(hours=matter.duplicate_window_h)
    rows = cases.nearby_open(conn, matter.code, place["lon"], place["lat"], matter.duplicate_radius_m, since, exclude)
    if not rows:
        return []
    ids, dx, dy, times = zip(*rows, strict=True)
    return duplicates.suggest(
        0.0, 0.0, now, ids, dx, dy, times, radius_m=matter.duplicate_radius_m, window_h=matter.duplicate_window_h
    )


def reporter_key_matches(case: dict, key: str | None) -> bool:
    """Whether ``key`` is the reporter key handed out when the case was filed."""
    stored = (case.get("attrs") or {}).get("reporter_key")
    return bool(key) and stored is not None and secrets.compare_digest(stored, _key_hash(key))


#: A case's personal fields: what the reporter wrote and where, who reported it, the matter's answers.
PERSONAL = ("text", "address", "contacts", "attributes")
#: A log entry's: its note, its photos and who (by name) took the action (``role`` stays).
LOG_PERSONAL = ("note", "media", "actor")


def view(centre: Centre, case_id: int, *, personal: bool, roles=frozenset()) -> dict:
    """A case with its timeline and the actions ``roles`` (the loop's) may take now.  Its personal fields
    (:data:`PERSONAL`, and :data:`LOG_PERSONAL` of each log entry) are the web layer's to leave out
    (web/privacy.py); the reporters' contacts are read only when ``personal``."""
    with centre.engine.connect() as conn:
        case = cases.get(conn, case_id)
        if case is None:
            raise NotFound(f"no case {case_id}")
        timeline = cases.timeline(conn, case_id)
        contacts = (
            [{k: iso(v, centre.tz) for k, v in c.items()} for c in cases.contacts(conn, case_id)] if personal else []
        )
    out = {k: v for k, v in case.items() if k not in ("geom", "attrs", "text", "source_lon", "source_lat")}
    out["matter_name"] = (
        centre.catalogue.matters[case["matter_code"]].name if case["matter_code"] in centre.catalogue.matters else None
    )
    out["overdue"] = bool(case["status"] == "open" and case["due_at"] and case["due_at"] < centre.now())
    out.update(text=case["text"], contacts=contacts, attributes=(case["attrs"] or {}).get("attributes", {}))
    out["actions"] = offered(case["state"], roles)
    out["timeline"] = [{k: iso(v, centre.tz) for k, v in e.items()} for e in timeline]
    out = {k: iso(v, centre.tz) for k, v in out.items()}
    out["time_zone"] = centre.tz
    return out


def require_int(value, what: str) -> int:
    """A whole number that can name a row (1 .. 2**63 - 1); InputError naming ``what`` otherwise."""
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not 0 < out <= cases.MAX_ID:
        raise InputError(f"{what} must be a whole number from 1 to {cases.MAX_ID}, got {value!r}")
    return out


def departments_list(centre: Centre, grid: str | None) -> list[dict]:
    with centre.engine.connect() as conn:
        return departments.listing(conn, grid)


def set_member(eng: Engine, code: str, user: str, *, member: bool = True) -> dict:
    """Put user ``user`` in department ``code`` (or with ``member=False`` take them out): a handler acts
    on the cases of the departments they belong to.  NotFound naming an unknown department or user;
    returns the department's code, the user, their role and whether anything changed."""
    with eng.begin() as conn:
        if departments.get(conn, code) is None:
            raise NotFound(f"no department {code!r} (GET /api/v1/departments lists them)")
        found = users.user(conn, user)
        if member:
            before = {c for c, _ in departments.of_user(conn, found["id"])}
            departments.add_member(conn, code, found["id"])
            changed = code not in before
        else:
            changed = departments.remove_member(conn, code, found["id"])
    return {"department": code, "user": user, "role": found["role"], "member": member, "changed": changed}


def duplicates_of(centre: Centre, case_id: int) -> list[dict]:
    """Open cases of the same matter within its radius and window of case ``case_id``."""
    with centre.engine.connect() as conn:
        case = cases.get(conn, case_id)
        if case is None:
            raise NotFound(f"no case {case_id}")
        matter = centre.catalogue.matters.get(case["matter_code"])
        if matter is None:
            return []
        place = {"lon": case["lon"], "lat": case["lat"]}
        found = suggest_duplicates(conn, centre, matter, place, case["received_at"], exclude=case_id)
    return [d.__dict__ for d in found]


def case_of_key(centre: Centre, key: str) -> int | None:
    """The case whose reporter key is ``key`` (Open311 tokens), or None."""
    with centre.engine.connect() as conn:
        return cases.by_reporter_key(conn, _key_hash(key))


def make_centre(settings, engine: Engine, locator) -> Centre:
    """The event centre of ``settings``: its catalogue (layers folder), calendar and time zone."""
    catalogue = matters.load(settings.layers_dir)
    tz = getattr(settings, "timezone", "Asia/Shanghai")
    return Centre(engine, catalogue, matters.calendar(catalogue, tz), locator, tz, Path(settings.home) / "media")


def follow(centre: Centre, case_id: int, contact: dict, channel: str) -> dict:
    """A reporter follows an existing case instead of filing a duplicate: kept as a follower (personal
    data), logged; NotFound for no case, Conflict when it is no longer open."""
    now = centre.now()
    with centre.engine.begin() as conn:
        case = cases.lock(conn, case_id)
        if case is None:
            raise NotFound(f"no case {case_id}")
        if case["status"] != "open":
            raise Conflict(f"case {case_id} is {case['state']}: file a new report instead")
        cases.add_contact(conn, case_id, "follower", {**contact, "channel": channel})
        cases.log(
            conn,
            [
                {
                    "report_id": case_id,
                    "at": now,
                    "actor": "reporter",
                    "role": "reporter",
                    "action": "follow",
                    "from_state": case["state"],
                    "to_state": case["state"],
                    "note": None,
                    "detail": {"channel": channel},
                }
            ],
        )
        followers = cases.count_contacts(conn, case_id, "follower")
    return {"id": case_id, "followers": followers}
