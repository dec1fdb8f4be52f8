"""JSON API, version 1. Handlers parse the request, call the store or domain, and return JSON."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import geo, ops
from ..edits import etag
from ..domain.levels import check_level
from ..errors import InputError, NotFound
from ..lookups import Locator, postgis_lookup
from ..store import db
from ..store import grids as store
from . import database_url
from .auth import READ, current_actor, require
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


def risk_rules():
    """The risk rules in force: app config ``RISK_RULES`` (a path; tests), else the layers folder."""
    from ..domain.risk import load_rules

    return load_rules(current_app.config.get("RISK_RULES"))


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name`` as a whole number in ``lo..hi`` (absent or empty: ``default``)."""
    value = request.args.get(name)
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {value!r}") from None
    if not lo <= n <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, got {n}")
    return n


def bbox_arg(text: str | None):
    """``minlon,minlat,maxlon,maxlat`` as four floats (None when absent); InputError otherwise."""
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[0] >= values[2] or values[1] >= values[3]:
        raise InputError(f"bbox must be minlon,minlat,maxlon,maxlat with min < max, got {text!r}")
    return values


def _out_crs() -> str:
    """``crs=`` of a response drawn on a base map: wgs84 (the default; RFC 7946) or gcj02."""
    crs = request.args.get("crs") or "wgs84"
    if crs not in ("wgs84", "gcj02"):
        raise InputError(f"crs must be wgs84 or gcj02 (the base map's frame), got {crs!r}")
    return crs


def _shift_geometry(geometry: dict, crs: str) -> dict:
    """A GeoJSON geometry moved onto a GCJ-02 base map (unchanged for wgs84)."""
    if crs == "wgs84" or geometry is None:
        return geometry
    import shapely

    g = geo.transform_geoms([shapely.geometry.shape(geometry)], "EPSG:4326", "gcj02")[0]
    return shapely.geometry.mapping(g)


def _shift_bbox(bbox, crs: str) -> list:
    if crs == "wgs84":
        return bbox
    x, y = geo.transform_xy([bbox[0], bbox[2]], [bbox[1], bbox[3]], "EPSG:4326", "gcj02")
    return [float(x[0]), float(y[0]), float(x[1]), float(y[1])]


def _unshift_bbox(bbox, crs: str):
    """A bbox drawn on the base map back in storage lon/lat (for queries)."""
    if crs == "wgs84" or bbox is None:
        return bbox
    x, y = geo.transform_xy([bbox[0], bbox[2]], [bbox[1], bbox[3]], "gcj02", "EPSG:4326")
    return [float(x[0]), float(y[0]), float(x[1]), float(y[1])]


@bp.get("/grids/<code>")
def grid(code: str):
    """One grid as a GeoJSON Feature with its parent chain (``at=`` for a past date; ``crs=gcj02``
    to draw it on a GCJ-02 base map)."""
    at = ops.parse_at(request.args.get("at"))
    crs = _out_crs()
    with engine().connect() as conn:
        feature = store.grid_feature(conn, code, at)
        if feature is None:
            when = f" at {at.isoformat()}" if at else ""
            raise NotFound(f"no grid with code {code!r}{when}")
        feature["properties"]["chain"] = store.chain(conn, code, at)
    feature["geometry"] = _shift_geometry(feature["geometry"], crs)
    tag = etag(feature["properties"].pop("version_id"))
    feature["properties"]["version"] = tag
    response = jsonify(feature)
    response.headers["ETag"] = tag  # the If-Match of an edit based on this version
    return response


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
        collection = store.level_collection(conn, level, simplify_m=simplify_m, bbox=bbox_arg(request.args.get("bbox")))
    response = jsonify(collection)
    response.cache_control.max_age = 60
    return response


@bp.get("/stats")
def stats():
    """Counts, households and population per level of the current version."""
    return jsonify(ops.stats(engine()))


@bp.get("/lookup")
@require(READ, "ingest")
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
@require(READ, "ingest")  # a batch lookup is a read
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
@require("planner")  # a dry run too: it is heavy
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
    for key in ("courtyard", "community", "policy", "reason"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InputError(f"{key} must be a string")
    if not isinstance(body.get("commit", False), bool) or not isinstance(body.get("all", False), bool):
        raise InputError("commit and all must be true or false")
    band = Band(body.get("min", 50), body.get("max", 70), body.get("policy", "keep"))
    report = run(engine(), courtyard=body.get("courtyard"), community=body.get("community"),
                 everything=body.get("all", False), band=band, seed=body.get("seed", 0),
                 dry_run=not body.get("commit", False), actor=current_actor(), reason=body.get("reason"),
                 with_preview=True)
    return jsonify(report)


# --- the map page's panels ------------------------------------------------------------

@bp.get("/grids/<code>/panel")
def grid_panel(code: str):
    """Everything the map's info panel shows for one current grid: its chain, code, households,
    population, responsible people, risk elements by colour and overdue, and open reports."""
    from ..store import risk as risk_store
    from ..store import tiles as tile_store

    with engine().connect() as conn:
        feature = store.grid_feature(conn, code)
        if feature is None:
            raise NotFound(f"no current grid with code {code!r}")
        props = feature["properties"]
        props["version"] = etag(props.pop("version_id"))
        props["chain"] = store.chain(conn, code)
        props["risk"] = risk_store.grid_summary(conn, code, risk_rules())
        props["reports"] = tile_store.open_reports_below(conn, code, props["level"])
    return jsonify({"type": "Feature", "id": code, "bbox": _feature_bbox(feature["geometry"]),
                    "geometry": None, "properties": props})


def _feature_bbox(geometry: dict) -> list[float]:
    import shapely

    return [round(v, 7) for v in shapely.geometry.shape(geometry).bounds]


@bp.get("/search")
def search():
    """Grids by code or name, and addresses through the gazetteer: ``q=``; each hit has a bbox to fly to."""
    from ..store import tiles as tile_store

    q = (request.args.get("q") or "").strip()
    if not q:
        raise InputError("q is required: /api/v1/search?q=410102 or a grid name or an address")
    limit = int_arg("limit", 10, 1, 100)
    crs = _out_crs()
    with engine().connect() as conn:
        hits = [{**h, "type": "grid"} for h in tile_store.search(conn, q, limit)]
    address_error = None
    if len(hits) < limit:
        try:
            found = locator().lookup_address(q)
        except InputError as exc:  # not an address, or one the gazetteer cannot place: say why
            found, address_error = None, exc.message
        if found and found.get("chain"):
            addr = found["address"]
            micro = found["chain"][-1]
            d = 0.0008  # ~80 m around the building
            hits.append({"type": "address", "code": micro["code"], "name": q, "level": micro["level"],
                         "building": addr["building"], "point": [found["lon"], found["lat"]],
                         "bbox": [found["lon"] - d, found["lat"] - d, found["lon"] + d, found["lat"] + d]})
    for h in hits:
        h["bbox"] = _shift_bbox(h["bbox"], crs)
    body = {"query": q, "results": hits[:limit], "crs": crs}
    if not hits and address_error:
        body["address_error"] = address_error
    return jsonify(body)


@bp.get("/reports")
def reports():
    """Reports with a point as GeoJSON: ``bbox=`` (minlon,minlat,maxlon,maxlat), ``status=``, ``limit=``."""
    from ..store import tiles as tile_store

    status = request.args.get("status")
    if status is not None and status not in ("open", "closed"):
        raise InputError(f"status must be open or closed, got {status!r}")
    crs = _out_crs()
    with engine().connect() as conn:
        body = tile_store.reports(conn, _unshift_bbox(bbox_arg(request.args.get("bbox")), crs), status=status,
                                  limit=int_arg("limit", 5000, 1, 50000))
    if crs != "wgs84" and body["features"]:
        import numpy as np

        xy = np.array([f["geometry"]["coordinates"] for f in body["features"]])
        x, y = geo.transform_xy(xy[:, 0], xy[:, 1], "EPSG:4326", crs)
        for f, a, b in zip(body["features"], x, y):
            f["geometry"]["coordinates"] = [round(float(a), 7), round(float(b), 7)]
    body["crs"] = crs
    return jsonify(body)


@bp.get("/stats/micro-households")
def micro_household_histogram():
    """Histogram of households per current micro-grid (``bin=`` width, default 5)."""
    import numpy as np

    from ..store import tiles as tile_store

    width = int_arg("bin", 5, 1, 1000)
    with engine().connect() as conn:
        values = np.asarray(tile_store.micro_households(conn), dtype=int)
    if len(values) == 0:
        return jsonify({"bin": width, "bins": [], "count": 0, "band": [50, 70], "in_band": 0})
    lo = values.min() // width * width
    edges = np.arange(lo, values.max() + width + 1, width)
    counts, _ = np.histogram(values, bins=edges)
    lo_band, hi_band = 50, 70  # Zhengzhou's band (the partitioner's default)
    return jsonify({"bin": width, "count": int(len(values)), "median": float(np.median(values)),
                    "band": [lo_band, hi_band], "in_band": int(((values >= lo_band) & (values <= hi_band)).sum()),
                    "bins": [{"from": int(a), "to": int(a + width - 1), "grids": int(c)}
                             for a, c in zip(edges[:-1], counts)]})
