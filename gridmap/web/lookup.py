"""Point → grid chain over HTTP: ``GET /api/v1/lookup`` (one point or an address), ``POST`` (a batch)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import InputError
from ..services.locator import postgis_lookup
from . import params
from .auth import READ, require
from .context import engine, locator, settings

bp = Blueprint("lookup", __name__, url_prefix="/api/v1")


@bp.get("/lookup")
@require(READ, "ingest")
def lookup_one():
    """The chain of grids for one point (``lon``, ``lat``, optional ``crs``) or ``address``; optional ``at``."""
    args = request.args
    if "address" in args:
        return jsonify(locator().lookup_address(args["address"], at=params.at()))
    missing = [k for k in ("lon", "lat") if k not in args]
    if missing:
        raise InputError(f"missing {' and '.join(missing)}: /api/v1/lookup?lon=113.68&lat=34.75[&crs=gcj02]")
    at = params.at()
    if settings().lookup_engine == "postgis":  # the benchmark's competitor
        return jsonify(postgis_lookup(engine(), args["lon"], args["lat"], crs=args.get("crs"), at=at))
    return jsonify(locator().lookup(args["lon"], args["lat"], crs=args.get("crs"), at=at))


@bp.post("/lookup")
@require(READ, "ingest")  # a batch lookup is a read
def lookup_many():
    """Many points: a JSON list of {"lon", "lat", "id"?}, or {"points": [...], "crs": ..., "at": ...}."""
    body = params.json_body((list, dict), 'send JSON: a list of {"lon": .., "lat": ..} or {"points": [...], "crs": ..}')
    options = body if isinstance(body, dict) else {}
    points = body if isinstance(body, list) else body.get("points")
    if not isinstance(points, list):
        raise InputError('points must be a list of {"lon": .., "lat": ..}')
    crs = options.get("crs") or request.args.get("crs")
    at = params.at(value=options.get("at"))
    return jsonify({"results": locator().lookup_many(points, crs=crs, at=at), "crs": crs or "wgs84"})
