"""Point → grid chain over HTTP: ``GET /api/v1/lookup`` (one point or an address), ``POST`` (a batch)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import InputError
from ..services.locator import postgis_lookup
from . import params
from .auth import READ, require
from .context import engine, locator, settings
from .privacy import private, private_each

bp = Blueprint("lookup", __name__, url_prefix="/api/v1")


@bp.get("/lookup")
@require(READ, "ingest")
def lookup_one():
    """The chain of grids for one point (``lon``, ``lat``, optional ``crs``) or ``address``; optional ``at``."""
    args = request.args
    if "address" in args:
        address = params.text("address", 200) or ""
        return jsonify(private(locator().lookup_address(address, at=params.at()), "people"))
    missing = [k for k in ("lon", "lat") if k not in args]
    if missing:
        raise InputError(f"missing {' and '.join(missing)}: /api/v1/lookup?lon=113.68&lat=34.75[&crs=gcj02]")
    at = params.at()
    if settings().lookup_engine == "postgis":  # the benchmark's competitor
        found = postgis_lookup(engine(), args["lon"], args["lat"], crs=args.get("crs"), at=at)
    else:
        found = locator().lookup(args["lon"], args["lat"], crs=args.get("crs"), at=at)
    return jsonify(private(found, "people"))


@bp.post("/lookup")
@require(READ, "ingest")  # a batch lookup is a read
def lookup_many():
    """Many points: a JSON list of {"lon", "lat", "id"?}, or {"points": [...], "crs": ..., "at": ...}."""
    body = params.json_body((list, dict), 'send JSON: a list of {"lon": .., "lat": ..} or {"points": [...], "crs": ..}')
    options = body if isinstance(body, dict) else {}
    points = body if isinstance(body, list) else body.get("points")
    if not isinstance(points, list):
        raise InputError('points must be a list of {"lon": .., "lat": ..}')
    crs = params.body_str(options, "crs", 64) or request.args.get("crs")
    at = params.at(value=params.body_str(options, "at", 64))
    results = private_each(locator().lookup_many(points, crs=crs, at=at), "people")
    return jsonify({"results": results, "crs": crs or "wgs84"})
