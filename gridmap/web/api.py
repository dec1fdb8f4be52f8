"""JSON API, version 1. Handlers parse the request, call the store or domain, and return JSON."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import ops
from ..domain.levels import check_level
from ..errors import InputError, NotFound
from ..lookups import Locator, postgis_lookup
from ..store import db
from ..store import grids as store
from . import database_url
from .layers import layer_for

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def engine():
    return db.engine(database_url(current_app))


def locator() -> Locator:
    """The app's locator (one in-memory index per process, kept true to the database)."""
    loc = current_app.extensions.get("gridmap.locator")
    if loc is None:
        loc = current_app.extensions["gridmap.locator"] = Locator(engine())
    return loc


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


@bp.get("/lookup")
def lookup_one():
    """The chain of grids for one point (``lon``, ``lat``, optional ``crs``) or ``address``; optional ``at``."""
    args = request.args
    if "address" in args:
        return jsonify(locator().lookup_address(args["address"], at=ops.parse_at(args.get("at"))))
    missing = [k for k in ("lon", "lat") if k not in args]
    if missing:
        raise InputError(f"missing {' and '.join(missing)}: /api/v1/lookup?lon=113.68&lat=34.75[&crs=gcj02]")
    at = ops.parse_at(args.get("at"))
    if current_app.config.get("LOOKUP_ENGINE") == "postgis":  # the benchmark's competitor
        return jsonify(postgis_lookup(engine(), args["lon"], args["lat"], crs=args.get("crs"), at=at))
    return jsonify(locator().lookup(args["lon"], args["lat"], crs=args.get("crs"), at=at))


@bp.post("/lookup")
def lookup_many():
    """Many points: a JSON list of {"lon", "lat", "id"?}, or {"points": [...], "crs": ..., "at": ...}."""
    body = request.get_json(silent=True)
    if not isinstance(body, (list, dict)):
        raise InputError("send JSON: a list of {\"lon\": .., \"lat\": ..} or {\"points\": [...], \"crs\": ..}")
    options = body if isinstance(body, dict) else {}
    points = body if isinstance(body, list) else body.get("points")
    if not isinstance(points, list):
        raise InputError("points must be a list of {\"lon\": .., \"lat\": ..}")
    crs = options.get("crs") or request.args.get("crs")
    at = ops.parse_at(options.get("at") or request.args.get("at"))
    return jsonify({"results": locator().lookup_many(points, crs=crs, at=at), "crs": crs or "wgs84"})


@bp.post("/partition")
def partition():
    """Propose micro-grids of ``min``..``max`` households for a ``courtyard``, a ``community`` or
    ``all``; writes them as a new version only with ``"commit": true``."""
    from ..domain.partition import Band
    from ..partitions import run

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError('send a JSON object: {"courtyard": "...", "min": 50, "max": 70, "commit": false}')
    unknown = set(body) - {"courtyard", "community", "all", "min", "max", "policy", "seed", "commit", "reason"}
    if unknown:
        raise InputError(f"unknown fields: {', '.join(sorted(unknown))}")
    for key in ("min", "max", "seed"):
        if key in body and (not isinstance(body[key], int) or isinstance(body[key], bool)):
            raise InputError(f"{key} must be an integer")
    if not isinstance(body.get("commit", False), bool) or not isinstance(body.get("all", False), bool):
        raise InputError("commit and all must be true or false")
    band = Band(body.get("min", 50), body.get("max", 70), body.get("policy", "keep"))
    report = run(engine(), courtyard=body.get("courtyard"), community=body.get("community"),
                 everything=body.get("all", False), band=band, seed=body.get("seed", 0),
                 dry_run=not body.get("commit", False), actor="api", reason=body.get("reason"),
                 with_preview=True)
    return jsonify(report)
