"""The people API: who serves each grid, party organisations, coverage and load, QR codes to print.

Names are personal data: every read needs a viewer token (or the roster keeper's), whatever
``AUTH_READ`` says; phone numbers come whole only to dispatchers and above and the roster keeper,
masked to viewers.  Edits need the roster keeper or an admin.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from ..errors import InputError
from ..services import people as service
from ..services import qr as qr_service
from ..services import roster
from .api import engine, int_arg, risk_rules
from .auth import authenticate, current_actor, require

bp = Blueprint("people", __name__, url_prefix="/api/v1")
READERS = ("viewer", "roster")
EDITORS = ("roster",)  # and admin, who may do what the roster keeper does
PRINTERS = ("dispatcher", "roster")


def _role() -> str:
    return authenticate().role


def _at():
    from ..ops import parse_at

    return parse_at(request.args.get("at"))


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object")
    return body


@bp.get("/people")
@require(*READERS)
def list_people():
    """Posts (current, or valid at ``at``), filtered by ``grid`` and ``role``."""
    grid = request.args.get("grid")
    posts = service.list_posts(
        engine(),
        _role(),
        grids=[grid] if grid else None,
        post_role=request.args.get("role"),
        at=_at(),
        limit=int_arg("limit", 1000, 1, 10000),
    )
    return jsonify({"posts": posts, "count": len(posts), "time_zone": str(service.LOCAL_ZONE)})


@bp.get("/grids/<code>/people")
@require(*READERS)
def grid_people(code: str):
    """The people and party organisations of one grid (the map panel)."""
    posts = service.list_posts(engine(), _role(), grids=[code], at=_at())
    orgs = service.organisations(engine(), code, _role())
    return jsonify({"grid": code, "posts": posts, "organisations": orgs, "time_zone": str(service.LOCAL_ZONE)})


@bp.get("/people/<int:person_id>/history")
@require(*READERS)
def person_history(person_id: int):
    return jsonify({"person": person_id, "posts": service.person_history(engine(), person_id, _role())})


@bp.post("/people")
@require(*EDITORS)
def add_people():
    """Roster rows as JSON (``{"rows": [...], "replace": false}``), all or none."""
    body = _json_body()
    rows = body.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("rows must be a list of objects with grid (or building), role, name, phone")
    summary = roster.import_rows(engine(), rows, replace=bool(body.get("replace")), actor=current_actor())
    return jsonify(summary), 201


@bp.patch("/posts/<int:post_id>")
@require(*EDITORS)
def move_post(post_id: int):
    """Move a post to another grid (``{"grid": CODE}``): the old one ends now, history stays."""
    grid = _json_body().get("grid")
    if not isinstance(grid, str) or not grid:
        raise InputError("grid must be the code of the grid the post moves to")
    return jsonify(service.move_post(engine(), post_id, grid, actor=current_actor()))


@bp.delete("/posts/<int:post_id>")
@require(*EDITORS)
def end_post(post_id: int):
    return jsonify(service.end_post(engine(), post_id, actor=current_actor()))


@bp.get("/people/coverage")
@require(*READERS)
def coverage():
    """Grids without a worker or party organisation, and each worker's load (heaviest first)."""
    limit = int_arg("limit", 100, 1, 100000)
    summary, gaps, load = service.coverage(engine(), risk_rules())
    return jsonify(
        {"summary": summary, "gaps": gaps.head(limit).to_dict("records"), "load": load.head(limit).to_dict("records")}
    )


@bp.get("/qr/<code>")
@require(*PRINTERS)
def qr_image(code: str):
    """One code to print: ``kind`` g (grid), b (building) or u (unit entrance), ``format`` svg or png."""
    fmt = request.args.get("format", "svg")
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    data = qr_service.image(engine(), request.args.get("kind", "g"), code, fmt, base=base)
    return Response(data, mimetype="image/svg+xml" if fmt == "svg" else "image/png")
