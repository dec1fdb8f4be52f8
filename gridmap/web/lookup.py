"""Point → grid chain over HTTP: ``GET /api/v1/lookup`` (one point or an address), ``POST`` (a batch)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
import pyarrow as pa
from flask import Blueprint, Response, jsonify, request

from ..errors import InputError
from ..services import database, point_files
from ..services.locator import WouldWait, batch_points, postgis_lookup
from . import params
from .auth import READ, require
from .context import LOCATOR, SETTINGS, engine, locator, settings
from .guard import AGAIN, AT_ONCE
from .params import PARQUET
from .privacy import private, private_each

bp = Blueprint("lookup", __name__, url_prefix="/api/v1")

#: The fields of a batch lookup's JSON object, in every form it takes (points, one point, columns).
BATCH_FIELDS = ("points", "lon", "lat", "address", "id", "crs", "at", "format")


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
        try:
            found = locator().lookup(args["lon"], args["lat"], crs=args.get("crs"), at=at, wait=not at_once())
        except WouldWait:
            return Response(status=503, headers={AGAIN: "1"})  # the guard runs it again in a thread
    return jsonify(private(found, "people"))


def at_once() -> bool:
    """Whether this request runs on the guard's event loop, where it must not wait."""
    return bool(request.environ.get(AT_ONCE))


#: What a lookup answered on the server's event loop may ask: a point, in a system (``at`` and
#: ``address`` may need the database, a dated index or the gazetteer).
AT_ONCE_PARAMS = frozenset({"lon", "lat", "crs"})


def answers_at_once(app):
    """The guard's ``inline`` predicate for ``app`` (None: it never answers at once): a GET of
    /api/v1/lookup with a point and nothing more, without a token (an open read: no user to look up),
    while the process's locator holds an index (:meth:`.Locator.serving`): :func:`lookup_one` then
    answers from what it holds, or says AGAIN when it would have to wait."""
    config = app.extensions[SETTINGS]
    if config.lookup_engine != "index" or app.config["AUTH_READ"] != "open":
        return None

    def plain_lookup(scope) -> bool:
        if scope["method"] != "GET" or scope["path"] != "/api/v1/lookup":
            return False
        if any(key.lower() == b"authorization" for key, _ in scope["headers"]):
            return False  # its role decides what the answer shows: read from the database
        query = scope.get("query_string", b"").decode("latin-1")
        if not {key for key, _ in parse_qsl(query, keep_blank_values=True)} <= AT_ONCE_PARAMS:
            return False
        held = app.extensions.get(LOCATOR)  # as context.locator() finds it, without an app context
        return held is not None and held.engine is database.engine(config) and held.serving()

    return plain_lookup


@bp.post("/lookup")
@require(READ, "ingest")  # a batch lookup is a read
def lookup_many():
    """Many points: a JSON list of {"lon", "lat", "id"?} or {"address", "id"?}, or {"points": [...], "crs":
    ..., "at": ...}; one such object alone is a batch of one (what ``GET`` takes, ``POST`` takes too);
    or columns {"lon": [...], "lat": [...], "id"?: [...]}.  The answer: one object per point, or
    columns with ``"format": "columns"`` (or ``?format=columns``), or a Parquet file of those columns
    for ``Accept: application/vnd.apache.parquet``."""
    body = params.json_body((list, dict), 'send JSON: a list of {"lon": .., "lat": ..} or {"points": [...], "crs": ..}')
    options = body if isinstance(body, dict) else {}
    params.body_keys(options, BATCH_FIELDS)
    crs = params.body_str(options, "crs", 64) or request.args.get("crs")
    at = params.at(value=params.body_str(options, "at", 64))
    fmt = params.batch_format(options)
    if isinstance(body, dict) and "points" not in body and _one_point(body):
        body = {**body, "points": [{k: v for k, v in body.items() if k in ("lon", "lat", "address", "id")}]}
    if isinstance(body, dict) and "points" not in body:
        lon, lat, ids, problems = params.point_columns(body)
        fmt = fmt if fmt != "objects" else "columns"
    else:
        points = body if isinstance(body, list) else body.get("points")
        if not isinstance(points, list):
            raise InputError('points must be a list of {"lon": .., "lat": ..}')
        if fmt == "objects":
            results = private_each(locator().lookup_many(points, crs=crs, at=at), "people")
            return _json({"results": results, "crs": crs or "wgs84"})
        lon, lat, ids, problems = batch_points(points)
    parquet = fmt == "parquet"
    columns = locator().lookup_columns(lon, lat, crs=crs, at=at, problems=problems, arrow=parquet)
    if ids.count(None) != len(ids):
        columns = {"id": pa.array(ids) if parquet else ids, **columns}
    if parquet:
        return Response(point_files.parquet_bytes(columns), mimetype=PARQUET)
    return _json({"crs": crs or "wgs84", "columns": columns})


def _one_point(body: dict) -> bool:
    """A lone point object ({"address"} or scalar {"lon", "lat"}), not columns of lists."""
    if "address" in body:
        return True
    scalar = not isinstance(body.get("lon"), list) and not isinstance(body.get("lat"), list)
    return ("lon" in body or "lat" in body) and scalar


def _json(body) -> Response:
    """orjson, not Flask's encoder: ten thousand answers serialise several times faster."""
    return Response(orjson.dumps(body), mimetype="application/json")
