"""Three-colour risk API: elements by grid, kind, colour and overdue state; grid colours; visits."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import ops, risks
from ..domain import risk as domain
from ..errors import InputError, NotFound
from ..store import risk as store
from .api import bbox_arg, engine, int_arg, risk_rules
from .auth import current_actor, require

bp = Blueprint("risk_api", __name__, url_prefix="/api/v1/risk")

MAX_LIMIT = 10_000


def _choice(name: str, allowed) -> str | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _bool(name: str) -> bool | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InputError(f"{name} must be true or false, got {value!r}")


def _at():
    try:
        return ops.parse_at(request.args.get("at"))
    except InputError as exc:
        raise InputError(f"at: {exc.message}") from None


@bp.get("/elements")
def elements():
    """Elements below ``grid`` (any level), of ``kind`` and ``colour``, ``overdue`` or not at ``at``,
    inside ``bbox``: an RFC 7946 FeatureCollection, ``limit`` (<= 10000) from ``offset``."""
    known = {"grid", "kind", "colour", "overdue", "bbox", "limit", "offset", "at"}
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise InputError(f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(known))})")
    args = dict(grid=request.args.get("grid") or None, kind=_choice("kind", domain.KINDS),
                colour=_choice("colour", domain.COLOURS), overdue=_bool("overdue"),
                bbox=bbox_arg(request.args.get("bbox")), at=_at(),
                limit=int_arg("limit", 1000, 1, MAX_LIMIT), offset=int_arg("offset", 0, 0, 2**62))
    with engine().connect() as conn:
        return jsonify(store.list_elements(conn, risk_rules(), **args))


@bp.get("/grids/<code>")
def grid(code: str):
    """The live colour and counts of the elements below one current grid, with counts by kind."""
    with engine().connect() as conn:
        body = store.grid_summary(conn, code, risk_rules(), at=_at())
    if body is None:
        raise NotFound(f"no current grid with code {code!r}")
    return jsonify(body)


@bp.get("/summary")
def summary():
    """Counts by colour and kind, overdue by colour, and rolled-up grids per colour per level."""
    with engine().connect() as conn:
        return jsonify(store.summary(conn, risk_rules(), at=_at()))


@bp.get("/rules")
def rules_view():
    """The visiting rule, roll-up thresholds and map styles in force (for the map's legend)."""
    return jsonify(risk_rules().to_dict())


@bp.post("/visits")
@require("dispatcher", "ingest")
def visit():
    """Record one visit: JSON ``{"element": id, "visitor": "...", "visited_at"?: ISO, "note"?: "..."}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError('send a JSON object: {"element": 12, "visitor": "王芳", "visited_at": "2026-11-25T09:00+08:00"}')
    unknown = sorted(set(body) - {"element", "visitor", "visited_at", "note"})
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} (known: element, visitor, visited_at, note)")
    if "element" not in body:
        raise InputError("element is required: the id of the risk element visited")
    visitor = body.get("visitor")
    if not isinstance(visitor, str) or not visitor.strip():
        raise InputError("visitor is required: who visited (a non-empty string)")
    for key in ("visited_at", "note"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InputError(f"{key} must be a string")
    state = risks.record_visit(engine(), risks._element_id(body["element"]), visitor.strip(),
                               visited_at=body.get("visited_at"), note=body.get("note"), rules=risk_rules(),
                               actor=current_actor())
    return jsonify(state), 201
