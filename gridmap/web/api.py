"""JSON API, version 1. Handlers parse the request, call the store or domain, and return JSON."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import ops
from ..domain.levels import check_level
from ..errors import InputError, NotFound
from ..store import db
from ..store import grids as store
from . import database_url
from .layers import layer_for

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def engine():
    return db.engine(database_url(current_app))


def _bbox(text: str | None):
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[0] >= values[2] or values[1] >= values[3]:
        raise InputError(f"bbox must be minlon,minlat,maxlon,maxlat with min < max, got {text!r}")
    return values


@bp.get("/grids/<code>")
def grid(code: str):
    """One grid as a GeoJSON Feature with its parent chain (``at=`` for a past date)."""
    at = ops.parse_at(request.args.get("at"))
    with engine().connect() as conn:
        feature = store.grid_feature(conn, code, at)
        if feature is None:
            when = f" at {at.isoformat()}" if at else ""
            raise NotFound(f"no grid with code {code!r}{when}")
        feature["properties"]["chain"] = store.chain(conn, code, at)
    return jsonify(feature)


@bp.get("/grids")
def grids_of_level():
    """Current grids of one level as a FeatureCollection (``level=`` required, ``bbox=`` optional)."""
    level = request.args.get("level")
    if not level:
        raise InputError("level is required: /api/v1/grids?level=street")
    check_level(level)
    simplify = request.args.get("simplify_m")
    try:
        simplify_m = float(simplify) if simplify is not None else float(layer_for(level)["simplify_m"])
    except ValueError:
        raise InputError(f"simplify_m must be a number of metres, got {simplify!r}") from None
    with engine().connect() as conn:
        collection = store.level_collection(conn, level, simplify_m=simplify_m, bbox=_bbox(request.args.get("bbox")))
    response = jsonify(collection)
    response.cache_control.max_age = 60
    return response


@bp.get("/stats")
def stats():
    """Counts, households and population per level of the current version."""
    return jsonify(ops.stats(engine()))
