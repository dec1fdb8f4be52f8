"""Three-colour risk API: elements by grid, kind, colour and overdue state; grid colours; visits."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..domain import values
from ..domain.risk import COLOURS, KINDS
from ..errors import InputError
from ..services import risk_elements
from . import params
from .auth import current_actor, require
from .context import engine, risk_rules
from .privacy import private_each, sees_private

#: Personal fields of a risk element (see :mod:`.privacy`); a person element's place is personal too.
ELEMENT_PRIVATE = ("name", "reason", "marked_by", "attrs")

bp = Blueprint("risk", __name__, url_prefix="/api/v1/risk")

MAX_LIMIT = 10_000
ELEMENT_PARAMS = ("grid", "kind", "colour", "overdue", "bbox", "limit", "offset", "at")
VISIT_FIELDS = ("element", "visitor", "visited_at", "note")


@bp.get("/elements")
def elements():
    """Elements below ``grid`` (any level), of ``kind`` and ``colour``, ``overdue`` or not at ``at``,
    inside ``bbox``: an RFC 7946 FeatureCollection, ``limit`` (<= 10000) from ``offset``."""
    params.known(*ELEMENT_PARAMS)
    filters = dict(
        grid=request.args.get("grid") or None,
        kind=params.choice("kind", KINDS),
        colour=params.choice("colour", COLOURS),
        overdue=params.flag("overdue"),
        bbox=params.bbox(),
        at=params.at(),
        limit=params.integer("limit", 1000, 1, MAX_LIMIT),
        offset=params.integer("offset", 0, 0, 2**62),
    )
    body = risk_elements.list_elements(engine(), risk_rules(), **filters)
    private_each(body["features"], *ELEMENT_PRIVATE, within="properties")
    if not sees_private():
        for feature in body["features"]:
            if feature["properties"]["kind"] == "person":
                feature["geometry"] = None
    return jsonify(body)


@bp.get("/grids/<code>")
def grid(code: str):
    """The live colour and counts of the elements below one current grid, with counts by kind."""
    return jsonify(risk_elements.grid_summary(engine(), code, risk_rules(), at=params.at()))


@bp.get("/summary")
def summary():
    """Counts by colour and kind, overdue by colour, and rolled-up grids per colour per level."""
    return jsonify(risk_elements.summary(engine(), risk_rules(), at=params.at()))


@bp.get("/rules")
def rules_view():
    """The visiting rule, roll-up thresholds and map styles in force (for the map's legend)."""
    return jsonify(risk_rules().to_dict())


@bp.post("/visits")
@require("dispatcher", "ingest")
def visit():
    """Record one visit: JSON ``{"element": id, "visitor": "...", "visited_at"?: ISO, "note"?: "..."}``."""
    body = params.json_body(
        dict, 'send a JSON object: {"element": 12, "visitor": "王芳", "visited_at": "2026-11-25T09:00+08:00"}'
    )
    params.body_keys(body, VISIT_FIELDS)
    if "element" not in body:
        raise InputError("element is required: the id of the risk element visited")
    if body.get("visitor") is None:
        raise InputError("visitor is required: who visited (a non-empty string)")
    state = risk_elements.record_visit(
        engine(),
        params.body_int(body, "element", lo=1),
        params.body_str(body, "visitor", values.NAME_MAX, required=True),
        rules=risk_rules(),
        visited_at=params.body_str(body, "visited_at", 64),
        note=params.body_str(body, "note"),
        actor=current_actor(),
    )
    return jsonify(state), 201
