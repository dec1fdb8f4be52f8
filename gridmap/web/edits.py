"""Boundary edits over HTTP: ``POST /api/v1/edits`` (preview or commit), a grid's history, one
logged edit.  Every edit goes through :func:`gridmap.services.boundary_edits.apply`, like the CLI and
OGC API."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import InputError
from ..services import boundary_edits
from . import params
from .auth import current_actor, require
from .context import engine, risk_rules
from .privacy import private, private_each

bp = Blueprint("edits", __name__, url_prefix="/api/v1")

#: Personal fields of a logged edit: who made it (staff names) and why (free text may name people).
EDIT_PRIVATE = ("actor", "reason")


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
    body = params.json_body(dict, 'send a JSON object: {"op": "replace", "code": "...", "geometry": {...}}')
    dry_run = params.body_bool(body, "dry_run")
    reason = params.body_str(body, "reason")
    body.pop("dry_run", None)
    body.pop("reason", None)
    # the If-Match header is the version of the edit's first grid: code, or the first of a merge's codes
    first = (
        body.get("code")
        if isinstance(body.get("code"), str)
        else (body["codes"][0] if isinstance(body.get("codes"), list) and body["codes"] else None)
    )
    codes = [first] if isinstance(first, str) else []
    match = if_match_of(body, codes)
    report = boundary_edits.apply(
        engine(),
        body,
        actor=current_actor(),
        rules=risk_rules(),
        reason=reason,
        dry_run=dry_run,
        if_match=match,
        require_match=not dry_run,
    )
    return jsonify(report), (200 if dry_run else 201)


@bp.get("/grids/<code>/history")
def grid_history(code: str):
    """Every version of a grid, oldest first, with its ETag and outline, and the edits that named it."""
    body = boundary_edits.history(engine(), code)
    private_each(body["edits"], *EDIT_PRIVATE)
    return jsonify(body)


@bp.get("/edits/<int:edit_id>")
def get_edit(edit_id: int):
    """One logged edit with its stored impact report."""
    return jsonify(private(boundary_edits.edit_record(engine(), edit_id), *EDIT_PRIVATE))
