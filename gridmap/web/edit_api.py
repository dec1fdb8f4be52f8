"""Boundary edits over HTTP: ``POST /api/v1/edits`` (preview or commit), a grid's history, one
logged edit.  Every edit goes through :func:`gridmap.edits.apply`, like the CLI and OGC API."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import edits
from ..errors import InputError
from .api import engine
from .auth import current_actor, require

bp = Blueprint("edit_api", __name__, url_prefix="/api/v1")


def if_match_of(body: dict, codes_hint: list[str]) -> dict[str, str]:
    """Versions the edit is based on: ``if_match`` in the body ({code: etag}), or the If-Match
    header for an edit of one grid."""
    given = body.pop("if_match", None) or {}
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise InputError('if_match must be an object {"<code>": "<etag>"}')
    header = request.headers.get("If-Match")
    if header and codes_hint:
        given.setdefault(codes_hint[0], header)
    return given


@bp.post("/edits")
@require("planner")
def post_edit():
    """One edit: ``{"op": ..., ..., "dry_run": false, "reason": "...", "if_match": {...}}``.
    A dry run returns the impact preview; a commit also needs the versions it is based on."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError('send a JSON object: {"op": "replace", "code": "...", "geometry": {...}}')
    dry_run = body.pop("dry_run", False)
    reason = body.pop("reason", None)
    if not isinstance(dry_run, bool):
        raise InputError("dry_run must be true or false")
    if reason is not None and not isinstance(reason, str):
        raise InputError("reason must be text")
    # the If-Match header is the version of the edit's first grid: code, or the first of a merge's codes
    first = body.get("code") if isinstance(body.get("code"), str) else \
        (body["codes"][0] if isinstance(body.get("codes"), list) and body["codes"] else None)
    codes = [first] if isinstance(first, str) else []
    match = if_match_of(body, codes)
    report = edits.apply(engine(), body, actor=current_actor(), reason=reason, dry_run=dry_run, if_match=match,
                         require_match=not dry_run)
    return jsonify(report), (200 if dry_run else 201)


@bp.get("/grids/<code>/history")
def grid_history(code: str):
    """Every version of a grid, oldest first, with its ETag and outline, and the edits that named it."""
    return jsonify(edits.history(engine(), code))


@bp.get("/edits/<int:edit_id>")
def get_edit(edit_id: int):
    """One logged edit with its stored impact report."""
    return jsonify(edits.edit_record(engine(), edit_id))
