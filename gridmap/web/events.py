"""The event centre's JSON API: ``/api/v1/matters``, ``/api/v1/departments`` and ``/api/v1/events…``
(intake, the dispatchers' queue, a case with its timeline, actions, photos, routing without filing,
statistics as JSON or CSV).  Handlers parse (:mod:`.params`), call a service, write.

Who may do what on a case is the loop's business (``domain/events/loop.py``): the action route is
open to any caller, who is identified by a bearer token when one is sent, or as the reporter by the
``X-Reporter-Key`` given back at intake; the loop answers 403/409 naming what the caller may do.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request, send_file

from ..domain.events.intake import LOOP_ROLES, check_channel, check_contact
from ..domain.events.intake import check as check_report
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
    return jsonify({"departments": events.departments_list(centre(), request.args.get("grid"))})


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
    states = [s for s in (request.args.get("state") or "").split(",") if s] or None
    sort = params.choice("sort", ("deadline", "-deadline")) or "deadline"
    return jsonify(
        event_views.queue(
            centre(),
            grid=request.args.get("grid"),
            matter=request.args.get("matter"),
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
    body = {k: request.args.get(k) for k in ("matter", "lon", "lat", "crs", "address") if request.args.get(k)}
    report = check_report(body, centre().catalogue)
    return jsonify(events.simulate(centre(), report.matter, report))


@bp.get("/events/near")
def near():
    """The open case nearest to ``lon=``/``lat=`` (``crs=`` the map's) within ``radius_m=`` (at most 500)."""
    params.known("lon", "lat", "radius_m", "crs")
    lon, lat = params.number("lon", None, -180, 180), params.number("lat", None, -90, 90)
    if lon is None or lat is None:
        raise InputError("lon and lat are required")
    radius = params.number("radius_m", 20.0, 0.1, 500.0)
    return jsonify(event_views.nearest(centre(), lon, lat, radius, request.args.get("crs")))


@bp.get("/events/stats")
def stats():
    """Assessment per ``group=`` (district, street, community, courtyard, micro, department) below
    ``grid=``, cases received ``since=``/``until=``; ``format=csv`` for a spreadsheet."""
    params.known("group", "grid", "since", "until", "format")
    figures = event_views.stats(
        centre(),
        group=request.args.get("group") or "street",
        grid=request.args.get("grid"),
        since=params.at("since"),
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
    body = dict(request.form) if request.files or request.form else params.json_body(dict, "send a JSON object")
    params.body_keys(body, ACTION_KEYS)
    version = request.headers.get("If-Match") or body.get("version")
    stored = media.save_uploads(settings(), case_id, request.files) if request.files else []
    urls = body.get("media_urls") or []
    if not isinstance(urls, list) or any(
        not isinstance(u, str) or not u.startswith(("http://", "https://")) for u in urls
    ):
        raise InputError("media_urls must be a list of http(s) URLs")
    stage = "after" if action == "dispose" else "other"
    req = case_actions.Request(
        action=action,
        actor=actor.name if actor else "reporter",
        role=actor.role if actor else None,
        note=str(body.get("note") or ""),
        version=events.require_int(version, "version") if version else None,
        department=body.get("department"),
        matter=body.get("matter"),
        target=events.require_int(body["target"], "target") if body.get("target") is not None else None,
        children=tuple(body.get("children") or ()),
        rating=_rating(body.get("rating")),
        reasons=tuple(body.get("reasons") or ()),
        reporter_key=key,
        lon=params_number(body.get("lon"), "lon"),
        lat=params_number(body.get("lat"), "lat"),
        media=tuple(stored) + tuple({"stage": stage, "url": u} for u in urls),
    )
    return jsonify(case_actions.act(centre(), case_id, req))


def _rating(value):
    if value is None:
        return None
    return events.require_int(value, "rating")


def params_number(value, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None


@bp.get("/events/<int:case_id>/media/<int:media_id>")
@auth.require(*CASE_ROLES)
def photo(case_id: int, media_id: int):
    """A stored photo of a case (the event centre's roles only)."""
    item = media.stored(centre(), settings(), case_id, media_id)
    if item is None:
        raise NotFound(f"case {case_id} has no stored photo {media_id}")
    return send_file(item["file"], mimetype=item["content_type"])
