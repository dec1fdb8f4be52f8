"""The people API: who serves each grid, party organisations, coverage and load, QR codes to print.

Names are personal data: every read needs a viewer token (or the roster keeper's), whatever
``AUTH_READ`` says; phone numbers come whole only to dispatchers and above and the roster keeper,
masked to viewers — the one rule of :mod:`.privacy` (:data:`.privacy.ROSTER_READERS`,
:data:`.privacy.ROSTER_PHONES`).  Edits need the roster keeper or an admin.
Handlers parse (:mod:`.params`), call a service, and write JSON.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..domain import values
from ..errors import InputError
from ..services import people as service
from ..services import qr as qr_service
from ..services import roster
from . import params
from .auth import current_actor, require
from .context import engine, risk_rules, settings
from .privacy import ROSTER_PHONES, ROSTER_READERS, private_each, sees_phones

bp = Blueprint("people", __name__, url_prefix="/api/v1")
READERS = ("viewer", "roster")
EDITORS = ("roster",)  # and admin, who may do what the roster keeper does
PRINTERS = ("dispatcher", "roster")
#: Personal fields of a post and of a party organisation (see :mod:`.privacy`).
POST_PRIVATE = ("name", "phone")
ORG_PRIVATE = ("secretary_name", "secretary_phone")


def _zone() -> dict:
    return {"time_zone": settings().timezone}


def _shown(posts: list[dict]) -> list[dict]:
    """Posts as the caller may see them, saying whether the phones are masked."""
    private_each(posts, *POST_PRIVATE, readers=ROSTER_READERS, phones=ROSTER_PHONES)
    masked = not sees_phones(ROSTER_PHONES)
    for post in posts:
        post["phone_masked"] = masked
    return posts


@bp.get("/people")
@require(*READERS)
def list_people():
    """Posts (current, or valid at ``at``), filtered by ``grid`` and ``role``."""
    params.known("grid", "role", "at", "limit")
    grid = params.code("grid")
    posts = service.list_posts(
        engine(),
        grids=[grid] if grid else None,
        post_role=params.text("role"),
        at=params.at(),
        limit=params.integer("limit", 1000, 1, 10000),
        zone=settings().timezone,
    )
    return jsonify({"posts": _shown(posts), "count": len(posts), **_zone()})


@bp.get("/grids/<code>/people")
@require(*READERS)
def grid_people(code: str):
    """The people and party organisations of one grid (the map panel)."""
    params.known("at")
    code = values.code(code, "the grid code")
    posts = service.list_posts(engine(), grids=[code], at=params.at(), zone=settings().timezone)
    orgs = private_each(
        service.organisations(engine(), code), *ORG_PRIVATE, readers=ROSTER_READERS, phones=ROSTER_PHONES
    )
    return jsonify({"grid": code, "posts": _shown(posts), "organisations": orgs, **_zone()})


@bp.get("/people/<int:person_id>/history")
@require(*READERS)
def person_history(person_id: int):
    """Every post one person has held, oldest first."""
    params.known()
    return jsonify(
        {
            "person": person_id,
            "posts": _shown(service.person_history(engine(), person_id, settings().timezone)),
            **_zone(),
        }
    )


@bp.post("/people")
@require(*EDITORS)
def add_people():
    """Roster rows as JSON (``{"rows": [...], "replace": false}``), all or none."""
    body = params.json_body(dict, 'the body must be {"rows": [{"grid": …, "role": …, "name": …, "phone": …}]}')
    params.body_keys(body, ("rows", "replace"))
    rows = body.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("rows must be a list of objects with grid (or building), role, name, phone")
    summary = roster.import_rows(engine(), rows, replace=params.body_bool(body, "replace"), actor=current_actor())
    return jsonify(summary), 201


@bp.patch("/posts/<int:post_id>")
@require(*EDITORS)
def move_post(post_id: int):
    """Move a post to another grid (``{"grid": CODE}``): the old one ends now, history stays."""
    body = params.json_body(dict, 'the body must be {"grid": CODE}')
    params.body_keys(body, ("grid",))
    grid = params.body_code(body, "grid")
    if not grid:
        raise InputError("grid must be the code of the grid the post moves to")
    return jsonify(service.move_post(engine(), post_id, grid, actor=current_actor()))


@bp.delete("/posts/<int:post_id>")
@require(*EDITORS)
def end_post(post_id: int):
    """End a post now (its history stays)."""
    return jsonify(service.end_post(engine(), post_id, actor=current_actor()))


@bp.get("/people/coverage")
@require(*READERS)
def coverage():
    """Grids without a worker or party organisation, and each worker's load (heaviest first)."""
    params.known("limit", "max_households")
    limit = params.integer("limit", 100, 1, 100000)
    most = params.integer("max_households", 140, 1, 100000)
    summary, gaps, load = service.coverage(engine(), risk_rules(), max_households=most, limit=limit)
    body = {
        "summary": summary,
        "gaps": gaps[:limit],
        "load": private_each(load, "name", readers=ROSTER_READERS),
    }
    return jsonify(body)


@bp.get("/qr/<code>")
@require(*PRINTERS)
def qr_image(code: str):
    """One code to print: ``kind`` g (grid), b (building) or u (unit entrance), ``format`` svg or png."""
    params.known("kind", "format")
    code = values.text(code, "the code", max_len=values.NAME_MAX)
    fmt = params.choice("format", ("svg", "png")) or "svg"
    kind = params.choice("kind", ("g", "b", "u")) or "g"
    data = qr_service.image(engine(), kind, code, fmt, base=settings().public_url or request.host_url)
    return Response(data, mimetype="image/svg+xml" if fmt == "svg" else "image/png")
