"""The event centre's JSON API: ``/api/v1/matters``, ``/api/v1/departments`` and ``/api/v1/events…``
(intake, the dispatchers' queue, a case with its timeline, actions, photos, routing without filing,
statistics as JSON or CSV).  Handlers parse (:mod:`.params`), call a service, write.

Who may do what on a case is the loop's business (``domain/events/loop.py``): the action route is
open to any caller, who is identified by a bearer token when one is sent, or as the reporter by the
``X-Reporter-Key`` given back at intake; the loop answers 403/409 naming what the caller may do.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request, send_file

from ..domain import values
from ..domain.events.intake import LOOP_ROLES, check_channel, check_contact, check_media_urls
from ..domain.events.intake import check as check_report
from ..domain.lookup import SWAPPED, looks_swapped
from ..errors import Forbidden, InputError, NotFound
from ..services import case_actions, event_views, events, media
from . import auth, params, privacy
from .context import centre, settings

bp = Blueprint("events", __name__, url_prefix="/api/v1")
CASE_ROLES = ("dispatcher", "handler", "verifier", "supervisor")
ACTION_KEYS = (
    "note",
    "version",
    "department",
    "matter",
    "target",
    "children",
    "rating",
    "reasons",
    "lon",
    "lat",
    "media_urls",
)


def _actor() -> auth.Actor | None:
    """The caller when a token was sent (checked), else None."""
    if "gridmap_actor" in g:
        return g.gridmap_actor
    return auth.authenticate() if request.headers.get("Authorization") else None


def _personal() -> bool:
    """Whether the caller may read the event centre's personal data (web/privacy.py's rule)."""
    return privacy.sees_private(privacy.CASE_READERS)


def _loop_roles() -> frozenset:
    """The loop's roles of the caller (none without a token)."""
    actor = _actor()
    return LOOP_ROLES.get(actor.role, frozenset()) if actor else frozenset()


@bp.get("/matters")
def matters():
    """The matter catalogue in force (``category=`` to filter)."""
    params.known("category")
    category = params.choice("category", tuple(centre().catalogue.categories()))
    out = [m.to_dict() for m in centre().catalogue.matters.values() if category is None or m.category == category]
    return jsonify({"count": len(out), "categories": centre().catalogue.categories(), "matters": out})


@bp.get("/departments")
def department_list():
    """Departments (``grid=`` to list one grid's) with member counts."""
    params.known("grid")
    return jsonify({"departments": events.departments_list(centre(), params.code("grid"))})


@bp.post("/events")
@auth.require("viewer", "ingest")
def intake():
    """File a report (JSON): located, duplicate-checked, routed; 201 with the case, why and the reporter key."""
    body = params.json_body(dict, "send the report as a JSON object")
    filed = events.intake(centre(), check_report(body, centre().catalogue), actor=auth.current_actor())
    return jsonify(filed), 200 if filed["existing"] else 201


@bp.get("/events")
@auth.require(*CASE_ROLES)
def queue():
    """The open cases below ``grid=``: ``matter=``, ``state=`` (comma list), ``overdue=``,
    ``sort=deadline|-deadline``, ``page=``, ``page_size=``."""
    params.known("grid", "matter", "state", "overdue", "sort", "page", "page_size")
    states = [s.strip() for s in (params.text("state") or "").split(",") if s.strip()] or None
    sort = params.choice("sort", ("deadline", "-deadline")) or "deadline"
    return jsonify(
        event_views.queue(
            centre(),
            grid=params.code("grid"),
            matter=params.text("matter"),
            states=states,
            overdue=params.flag("overdue"),
            descending=sort == "-deadline",
            page=params.integer("page", 1, 1, 10**6),
            size=params.integer("page_size", 50, 1, 500),
            roles=_loop_roles(),
        )
    )


@bp.get("/events/route")
def route():
    """Where a report would go, without filing it: ``matter=``, ``lon=``, ``lat=`` (``crs=``) or ``address=``."""
    params.known("matter", "lon", "lat", "crs", "address")
    body = {k: params.text(k) for k in ("matter", "lon", "lat", "crs", "address") if params.text(k)}
    report = check_report(body, centre().catalogue)
    return jsonify(events.simulate(centre(), report.matter, report))


@bp.get("/events/near")
def near():
    """The open case nearest to ``lon=``/``lat=`` (``crs=`` the map's) within ``radius_m=`` (at most 500)."""
    params.known("lon", "lat", "radius_m", "crs")
    lon, lat = params.number("lon", None), params.number("lat", None)
    if lon is None or lat is None:
        raise InputError("lon and lat are required")
    if looks_swapped(lon, lat):
        raise InputError(f"{SWAPPED}: lon={lon:g}, lat={lat:g}")
    lon, lat = params.number("lon", None, -180, 180), params.number("lat", None, -90, 90)
    radius = params.number("radius_m", 20.0, 0.1, 500.0)
    return jsonify(event_views.nearest(centre(), lon, lat, radius, params.text("crs")))


@bp.get("/events/stats")
def stats():
    """Assessment per ``group=`` (district, street, community, courtyard, micro, department) below
    ``grid=``, cases received ``since=``/``until=``; ``format=csv`` for a spreadsheet."""
    params.known("group", "grid", "since", "until", "format")
    figures = event_views.stats(
        centre(),
        group=params.text("group") or "street",
        grid=params.code("grid"),
        since=params.at("since", end_of_day=False),
        until=params.at("until"),
    )
    if params.choice("format", ("json", "csv")) == "csv":
        return Response(
            event_views.stats_csv(figures),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=event-stats.csv"},
        )
    return jsonify(figures)


@bp.get("/events/<int:case_id>")
def case(case_id: int):
    """A case with its timeline; texts, names, phones and photos only for the event centre's roles."""
    out = events.view(centre(), case_id, personal=_personal(), roles=_loop_roles())
    privacy.private(out, *events.PERSONAL, readers=privacy.CASE_READERS)
    privacy.private_each(out["timeline"], *events.LOG_PERSONAL, readers=privacy.CASE_READERS)
    return jsonify(out)


@bp.get("/events/<int:case_id>/duplicates")
@auth.require(*CASE_ROLES)
def duplicates(case_id: int):
    """Open cases of the same matter near this one (merge candidates)."""
    return jsonify({"id": case_id, "duplicates": events.duplicates_of(centre(), case_id)})


@bp.post("/events/<int:case_id>/followers")
@auth.require("viewer", "ingest")
def follow(case_id: int):
    """A reporter follows an open case (a suggested duplicate) instead of filing another: ``contact``, ``channel``."""
    body = params.json_body(dict, "send {contact: {name, phone, …}, channel} as a JSON object")
    params.body_keys(body, ("contact", "channel"))
    contact, channel = check_contact(body.get("contact")), check_channel(body.get("channel", "api"))
    return jsonify(events.follow(centre(), case_id, contact, channel)), 201


@bp.post("/events/<int:case_id>/<action>")
@auth.public
def act(case_id: int, action: str):
    """Take an action on a case (JSON, or a form with photo files ``before``/``after``); ``If-Match`` or
    ``version`` guards against acting on a stale view."""
    actor = _actor()
    key = request.headers.get("X-Reporter-Key")
    if actor is None and not key:
        raise Forbidden(f"{action} needs a token (Authorization: Bearer …) or the reporter's X-Reporter-Key")
    body = _form() if request.files or request.form else params.json_body(dict, "send a JSON object")
    params.body_keys(body, ACTION_KEYS)
    # If-Match as HTTP sends an entity tag ("3", W/"3") or the bare number; else the body's version (0 too)
    match = request.headers.get("If-Match")
    version = match.strip().removeprefix("W/").strip('"') if match else body.get("version")
    urls = check_media_urls(body.get("media_urls"))
    note = params.body_str(body, "note", values.TEXT_MAX) or ""
    department = params.body_str(body, "department", values.NAME_MAX)
    matter = params.body_str(body, "matter", values.NAME_MAX)
    children = _children(body.get("children"))
    reasons = _reasons(body.get("reasons"))
    lon, lat = _number(body.get("lon"), "lon", 180), _number(body.get("lat"), "lat", 90)
    stored, files = media.check_uploads(settings(), case_id, request.files) if request.files else ([], [])
    stage = "after" if action == "dispose" else "other"
    req = case_actions.Request(
        action=action,
        actor=actor.name if actor else "reporter",
        role=actor.role if actor else None,
        note=note,
        version=events.require_int(version, "version") if version is not None and version != "" else None,
        department=department,
        matter=matter,
        target=events.require_int(body["target"], "target") if body.get("target") is not None else None,
        children=children,
        rating=_rating(body.get("rating")),
        reasons=reasons,
        reporter_key=values.text(key, "X-Reporter-Key") if key else None,
        lon=lon,
        lat=lat,
        media=tuple(stored) + tuple({"stage": stage, "url": u} for u in urls),
        files=tuple(files),
    )
    return jsonify(case_actions.act(centre(), case_id, req))


#: At most this many child cases from one split, and rating reasons on one rating.
MAX_CHILDREN = 20
MAX_REASONS = 20
CHILD_KEYS = ("matter", "department", "note")


def _form() -> dict:
    """A form body (with photo files): one value per field; ``media_urls`` and ``reasons`` may repeat."""
    out = {}
    for key in request.form:
        got = request.form.getlist(key)
        out[key] = got if key in ("media_urls", "reasons") else got[-1]
    return out


def _children(value) -> tuple:
    """A split's children: at most :data:`MAX_CHILDREN` objects of ``matter``, ``department``, ``note``."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise InputError("children must be a list of objects {matter, department, note}")
    if len(value) > MAX_CHILDREN:
        raise InputError(f"children has {len(value)} entries; at most {MAX_CHILDREN} are allowed")
    out = []
    for i, child in enumerate(value, 1):
        params.body_keys(child, CHILD_KEYS)
        limits = {"matter": values.NAME_MAX, "department": values.NAME_MAX, "note": values.TEXT_MAX}
        checked = {k: values.text(child.get(k), f"child {i} {k}", max_len=n, required=False) for k, n in limits.items()}
        out.append({k: v for k, v in checked.items() if v is not None})
    return tuple(out)


def _reasons(value) -> tuple[str, ...]:
    """A rating's reasons: at most :data:`MAX_REASONS` texts of at most ``values.NAME_MAX`` characters."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError("reasons must be a list of texts")
    if len(value) > MAX_REASONS:
        raise InputError(f"reasons has {len(value)} entries; at most {MAX_REASONS} are allowed")
    return tuple(values.text(r, "a reason") for r in value)


def _rating(value):
    if value is None:
        return None
    return events.require_int(value, "rating")


def _number(value, what: str, bound: float) -> float | None:
    """A point's lon or lat (a JSON number, or text from a form): finite, at most ``bound`` in absolute value."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"{what} must be a number, got {values.shown(value)}") from None
    return values.number(value, what, -bound, bound)


@bp.get("/events/<int:case_id>/media/<int:media_id>")
@auth.require(*CASE_ROLES)
def photo(case_id: int, media_id: int):
    """A stored photo of a case (the event centre's roles only)."""
    item = media.stored(centre(), settings(), case_id, media_id)
    if item is None:
        raise NotFound(f"case {case_id} has no stored photo {media_id}")
    return send_file(item["file"], mimetype=item["content_type"])
