"""Acting on a case: one transition of the loop, checked by the loop's table for the caller's
roles, its effects on the case (assignee, clock, family) and its log entry, all in one transaction
under the case's row lock.  A merge, a split and a child's closing touch the other cases too, in
the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ..domain.events import clock
from ..domain.events.catalogue import LEVELS_UP
from ..domain.events.intake import LOOP_ROLES
from ..domain.events.loop import LOOP, Context, Step
from ..errors import Conflict, InputError, NotFound, PreconditionFailed
from ..geo import METRIC_SRID, STORAGE_SRID, transform_xy
from ..store import cases, departments
from . import media
from .events import SYSTEM, Centre, can_climb, clock_columns, reporter_key_matches, route, route_json

DONE = ("closed", "assessed", "cancelled", "merged")


@dataclass(frozen=True)
class Request:
    """An action as asked: by whom, with what."""

    action: str
    actor: str
    role: str | None  # the user's role (None: a reporter with a key, or the system)
    note: str = ""
    version: int | None = None  # If-Match: the case version the caller saw
    department: str | None = None  # dispatch / reassign
    matter: str | None = None  # file
    target: int | None = None  # merge
    children: tuple = ()  # split: ({matter, department?, note?}, ...)
    rating: int | None = None
    reasons: tuple[str, ...] = ()
    reporter_key: str | None = None
    lon: float | None = None  # where a disposal photo was taken
    lat: float | None = None
    media: tuple = field(default=())  # ({stage, url | path, content_type, bytes, sha256}, ...)
    files: tuple = field(default=())  # the uploaded photos' (path, bytes): written once the action is accepted


def _roles(case: dict, req: Request) -> frozenset:
    roles = set(LOOP_ROLES.get(req.role or "", ()))
    if req.role == SYSTEM:
        roles.add(SYSTEM)
    if reporter_key_matches(case, req.reporter_key):
        roles.add("reporter")
    return frozenset(roles)


def _is_assignee(conn, case: dict, req: Request) -> bool:
    """The actor belongs to the assigned department, or, for grid workers' cases, to a department of a grid
    in the case's chain (the station that runs those workers' app); admins act for anyone."""
    if req.role == "admin":
        return True
    mine = departments.of_user_name(conn, req.actor)
    if case["department_code"]:
        return any(code == case["department_code"] for code, _ in mine)
    if (case["assignee"] or "").startswith("grid:"):
        chain = {case[c] for c in cases.CHAIN_COLUMNS if case[c]}
        return any(grid in chain for _, grid in mine)
    return False


def _disposal_checked(centre: Centre, case: dict, req: Request) -> bool:
    """The matter's verification rule: none; an after-photo; or an after-photo taken near the case."""
    matter = centre.catalogue.matters.get(case["matter_code"])
    rule = matter.verify if matter else "photo"
    if rule == "none":
        return True
    if not any(m.get("stage") == "after" for m in req.media):
        return False
    if rule == "photo" or case["lon"] is None:
        return True
    if req.lon is None or req.lat is None:
        return False
    x, y = transform_xy([case["lon"], req.lon], [case["lat"], req.lat], f"EPSG:{STORAGE_SRID}", f"EPSG:{METRIC_SRID}")
    return float(((x[1] - x[0]) ** 2 + (y[1] - y[0]) ** 2) ** 0.5) <= centre.catalogue.defaults.verify_radius_m


def context(conn, centre: Centre, case: dict, req: Request) -> Context:
    """What the loop's guards see for this case and request."""
    matter = centre.catalogue.matters.get(req.matter or case["matter_code"] or "")
    chain = {lv: case[f"{lv}_code"] for lv in LEVELS_UP if case[f"{lv}_code"]}
    closed_at = case["closed_at"]
    window = closed_at is not None and centre.now() <= closed_at + timedelta(days=centre.catalogue.defaults.rating_days)
    dept = departments.get(conn, req.department) if req.department else None
    if req.department and dept is None:
        raise InputError(f"no department {req.department!r} (GET /api/v1/departments lists them)")
    return Context(
        roles=_roles(case, req),
        actor=req.actor,
        note=req.note,
        is_assignee=_is_assignee(conn, case, req),
        disposer=case["disposed_by"],
        assignee=req.department,
        matter_known=matter is not None,
        can_climb=matter is not None and can_climb(matter, case["handling_level"], chain),
        disposal_checked=req.action == "dispose" and _disposal_checked(centre, case, req),
        target=req.target,
        children=len(req.children),
        children_open=cases.children_open(conn, case["id"]),
        rating=req.rating,
        rating_window_open=window,
    )


def _restart(centre: Centre, case: dict, now, level=None) -> dict:
    """A fresh clock from ``now`` (escalated, reopened)."""
    matter = centre.catalogue.matter(case["matter_code"])
    chain = {lv: case[f"{lv}_code"] for lv in LEVELS_UP if case[f"{lv}_code"]}
    return clock_columns(centre, matter, now, level or case["handling_level"], chain)


def effects(conn, centre: Centre, case: dict, req: Request, step: Step, now) -> dict:
    """The columns the step changes besides ``state`` (and the other cases it touches)."""
    a, out = step.action, {}
    if a == "file":
        matter = centre.catalogue.matter(req.matter or case["matter_code"])
        out.update(matter_code=matter.code, **_restart(centre, {**case, "matter_code": matter.code}, now))
    elif a in ("dispatch", "reassign"):
        dept = departments.get(conn, req.department)
        out.update(
            department_code=dept["code"],
            assignee=None,
            handling_level=dept["level"],
            route={
                "level": dept["level"],
                "grid": dept["grid_code"],
                "department": dept["code"],
                "why": f"{a} by {req.actor}" + (f": {req.note}" if req.note else ""),
            },
        )
    elif a == "send_back":
        out.update(department_code=None, assignee=None)
    elif a == "suspend":
        out.update(paused_at=now, tick_at=None)
    elif a == "resume":
        out.update(_resumed(centre, case, now))
    elif a == "dispose":
        out.update(disposed_by=req.actor, tick_at=None)
    elif a == "reject":
        out.update(disposed_by=None, tick_at=case["due_at"] if case["due_at"] and case["due_at"] > now else now)
    elif a == "verify":
        out.update(verified_by=req.actor)
    elif a == "close":
        # the tick assesses the case when the reporter has not rated it in time
        out.update(closed_at=now, tick_at=now + timedelta(days=centre.catalogue.defaults.rating_days))
    elif a == "rate":
        out.update(rating=req.rating, rating_reasons=list(req.reasons), rated_at=now, tick_at=None)
    elif a == "reopen":
        out.update(
            reopened=case["reopened"] + 1,
            closed_at=None,
            disposed_by=None,
            verified_by=None,
            **_restart(centre, case, now),
        )
    elif a == "supervise":
        out.update(supervised_at=now)
    elif a == "cancel":
        out.update(tick_at=None)
    elif a == "merge":
        _merge(conn, case, req, now)
        out.update(merged_into=req.target, tick_at=None)
    elif a == "split":
        _split(conn, centre, case, req, now)
        out.update(tick_at=None)
    return out


def _resumed(centre: Centre, case: dict, now) -> dict:
    """The clock carried over the pause: the time that was left, counted again from now."""
    matter = centre.catalogue.matter(case["matter_code"])
    working, paused = matter.deadline.unit != "d", case["paused_at"]
    due = clock.carry(case["due_at"], paused, now, working, centre.cal)
    warn = clock.carry(case["warn_at"], paused, now, working, centre.cal)
    chain = {lv: case[f"{lv}_code"] for lv in LEVELS_UP if case[f"{lv}_code"]}
    return {
        "paused_at": None,
        "paused_seconds": case["paused_seconds"] + int((now - paused).total_seconds()),
        "due_at": due,
        "warn_at": warn,
        "tick_at": clock.next_tick(warn, case["warned_at"], due, can_climb(matter, case["handling_level"], chain)),
    }


def _merge(conn, case: dict, req: Request, now) -> None:
    """The case's reporters follow the target, which must be another open case; the target's log says so."""
    if req.target == case["id"]:
        raise InputError("a case cannot be merged into itself")
    target = cases.lock(conn, req.target)
    if target is None or target["status"] != "open":
        raise Conflict(f"case {req.target} is not an open case to merge into")
    cases.move_contacts(conn, case["id"], req.target)
    cases.log(
        conn,
        [
            {
                "report_id": req.target,
                "at": now,
                "actor": req.actor,
                "role": req.role,
                "action": "merged_in",
                "from_state": target["state"],
                "to_state": target["state"],
                "note": req.note,
                "detail": {"case": case["id"]},
            }
        ],
    )


def _split(conn, centre: Centre, case: dict, req: Request, now) -> None:
    """Child cases (one per matter/department), filed and routed like new ones, logged."""
    chain = {lv: case[f"{lv}_code"] for lv in LEVELS_UP if case[f"{lv}_code"]}
    for child in req.children:
        matter = centre.catalogue.matter(str(child.get("matter") or case["matter_code"]))
        r = route(conn, centre, matter, chain)
        dept = departments.get(conn, child["department"]) if child.get("department") else None
        if child.get("department") and dept is None:
            raise InputError(f"no department {child['department']!r}")
        state = "dispatched" if dept or r.assigned else "filed"
        level = dept["level"] if dept else (r.level or case["handling_level"])
        values = {
            key: case[key]
            for key in (
                "text",
                "address",
                "source_lon",
                "source_lat",
                "source_crs",
                "lon",
                "lat",
                "outside",
                "special_code",
                *cases.CHAIN_COLUMNS,
            )
        }
        values.update(
            received_at=now,
            reported_at=case["reported_at"],
            source="split",
            state=state,
            matter_code=matter.code,
            handling_level=level,
            department_code=dept["code"] if dept else r.department,
            assignee=None if dept else (f"grid:{r.grid}" if r.workers else None),
            route=route_json(r) if not dept else {"department": dept["code"], "why": f"split by {req.actor}"},
            parent_id=case["id"],
            **clock_columns(centre, matter, now, level, chain),
        )
        child_id = cases.insert(conn, values)
        cases.log(
            conn,
            [
                {
                    "report_id": child_id,
                    "at": now,
                    "actor": req.actor,
                    "role": req.role,
                    "action": "split_from",
                    "from_state": None,
                    "to_state": state,
                    "note": child.get("note") or req.note,
                    "detail": {"parent": case["id"]},
                }
            ],
        )


def act(centre: Centre, case_id: int, req: Request) -> dict:
    """Take ``req.action`` on the case: 404 when it does not exist, 412 when ``req.version`` is not the
    current one, 409/403 from the loop (naming the allowed actions), 400 for bad details."""
    now = centre.now()
    with centre.engine.begin() as conn:
        case = cases.lock(conn, case_id)
        if case is None:
            raise NotFound(f"no case {case_id}")
        if req.version is not None and req.version != case["version"]:
            raise PreconditionFailed(
                f"case {case_id} is at version {case['version']}, not {req.version}: reload it",
                detail={"version": case["version"]},
            )
        if req.action == "rate" and (not isinstance(req.rating, int) or not 1 <= req.rating <= 5):
            raise InputError("rate needs a rating: a whole number from 1 to 5")
        step = LOOP.fire(case["state"], req.action, context(conn, centre, case, req))
        values = {"state": step.target, **effects(conn, centre, case, req, step, now)}
        version = cases.update(conn, case_id, values)
        (log_id,) = cases.log(
            conn,
            [
                {
                    "report_id": case_id,
                    "at": now,
                    "actor": req.actor,
                    "role": req.role,
                    "action": step.action,
                    "from_state": step.state,
                    "to_state": step.target,
                    "note": req.note or None,
                    "detail": _detail(req),
                }
            ],
        )
        media.write(req.files)  # every check passed: the photos go to disk, and the commit names them
        for item in req.media:
            cases.add_media(conn, case_id, log_id, item.get("stage", "other"), item, req.actor)
        if step.target in DONE and case["parent_id"]:
            _close_parent(conn, centre, case["parent_id"], now)
    return {"id": case_id, "state": step.target, "from": step.state, "action": step.action, "version": version}


def _detail(req: Request) -> dict:
    out = {
        k: v
        for k, v in (
            ("department", req.department),
            ("matter", req.matter),
            ("target", req.target),
            ("rating", req.rating),
        )
        if v is not None
    }
    if req.reasons:
        out["reasons"] = list(req.reasons)
    if req.children:
        out["children"] = len(req.children)
    return out


def _close_parent(conn, centre: Centre, parent_id: int, now) -> None:
    """A split case closes (system) once its last child is done."""
    parent = cases.lock(conn, parent_id)
    if parent is None or parent["state"] != "split_up" or cases.children_open(conn, parent_id):
        return
    step = LOOP.fire("split_up", "close", Context(roles=frozenset({SYSTEM}), children_open=0))
    cases.update(conn, parent_id, {"state": step.target, "closed_at": now, "tick_at": None})
    cases.log(
        conn,
        [
            {
                "report_id": parent_id,
                "at": now,
                "actor": SYSTEM,
                "role": SYSTEM,
                "action": "close",
                "from_state": step.state,
                "to_state": step.target,
                "note": "every child case is done",
                "detail": {},
            }
        ],
    )
