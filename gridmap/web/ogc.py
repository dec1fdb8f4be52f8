"""OGC API – Features under ``/ogc``: Part 1 (Core, GeoJSON, OpenAPI 3.0) for reading in QGIS and GDAL,
Part 4 (create/replace/update/delete) for editing, through the same edit engine as the JSON API.

One collection per grid level (its id is the level's name); a feature's id is the grid's code.
``datetime=`` picks versions: an instant gives the versions valid then (like ``at=`` elsewhere), an
interval (``a/b``, ``../b``, ``a/..``) every version overlapping it; without it, the current ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request, url_for

from ..domain import dates, roles, values
from ..domain.levels import ALL_LEVELS, LABELS
from ..domain.values import shown
from ..errors import GridmapError, InputError, NotFound
from ..services import boundary_edits, features
from . import openapi, params
from .auth import authenticate, current_actor, require
from .context import engine, risk_rules, settings
from .params import CRS84

bp = Blueprint("ogc", __name__, url_prefix="/ogc")


class UnsupportedMediaType(GridmapError):
    """A body in a media type this endpoint does not take (415)."""

    status = 415
    code = "unsupported_media_type"


GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: ``f=`` values: everything is JSON (``html`` is accepted and answered with JSON: there is no HTML view).
FORMATS = ("json", "geojson", "html")


# --- request parsing ------------------------------------------------------------------


def _params(allowed: tuple[str, ...]) -> None:
    """400 for a query parameter this endpoint does not define (OGC API – Features Part 1, /req/core/
    query-param-unknown), and for an ``f`` other than json."""
    params.known(*allowed, "f")
    f = request.args.get("f")
    if f is not None and f not in FORMATS:
        raise InputError(f"f must be json (the only format; html and geojson are answered with JSON), got {f!r}")


def _level(level: str) -> str:
    if level not in ALL_LEVELS:
        raise NotFound(f"no collection {level!r}; collections: {', '.join(ALL_LEVELS)}")
    return level


# --- responses ----------------------------------------------------------------------


def _url(endpoint: str, **values) -> str:
    return url_for(endpoint, _external=True, **values)


def _link(href: str, rel: str, type_: str = "application/json", title: str | None = None) -> dict:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


def _json(body, mimetype: str = "application/json", status: int = 200, headers: dict | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.mimetype = mimetype
    response.headers.update(headers or {})
    return response


def _stamp(value: datetime | None) -> str | None:
    return dates.iso(value, settings().timezone)


@bp.get("/", strict_slashes=False)
def landing():
    """The landing page: links to the API definition, the conformance declaration and the collections."""
    _params(())
    return _json(
        {
            "title": "gridmap",
            "description": "Nested governance grids (district → street → community → courtyard → micro-grid, and "
            "special grids) as OGC API – Features, one collection per level.",
            "links": [
                _link(_url("ogc.landing"), "self", title="this document"),
                _link(_url("ogc.api_definition"), "service-desc", OPENAPI, "the API definition (OpenAPI 3.0)"),
                _link(_url("ogc.conformance"), "conformance", title="conformance classes implemented"),
                _link(_url("ogc.collections"), "data", title="the grid levels"),
            ],
        }
    )


@bp.get("/api")
def api_definition():
    """The OpenAPI 3.0 document of the whole app (the OGC routes and the JSON API alike)."""
    _params(())
    return _json(openapi.document(), OPENAPI)


@bp.get("/conformance")
def conformance():
    _params(())
    return _json({"conformsTo": list(CONFORMANCE)})


def _collection(level: str, extent: dict | None) -> dict:
    body = {
        "id": level,
        "title": f"{LABELS[level]} {level}",
        "description": f"the {level} grids; one feature per grid version, id = grid code",
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "links": [
            _link(_url("ogc.collection", level=level), "self"),
            _link(_url("ogc.items", level=level), "items", GEOJSON, f"the {level} grids"),
        ],
    }
    if extent:
        body["extent"] = {}
        if extent["bbox"]:
            body["extent"]["spatial"] = {"bbox": [[round(v, 7) for v in extent["bbox"]]], "crs": CRS84}
        body["extent"]["temporal"] = {"interval": [[_stamp(extent["start"]), _stamp(extent["end"])]], "trs": GREGORIAN}
    return body


@bp.get("/collections")
def collections():
    """One collection per grid level, with the bbox of its current grids and the span of its versions."""
    _params(())
    extents = features.level_extents(engine())
    return _json(
        {
            "links": [_link(_url("ogc.collections"), "self")],
            "collections": [_collection(level, extents.get(level)) for level in ALL_LEVELS],
        }
    )


@bp.get("/collections/<level>")
def collection(level: str):
    _params(())
    _level(level)
    return _json(_collection(level, features.level_extents(engine()).get(level)))


def _page_url(offset: int) -> str:
    args = request.args.to_dict()
    args["offset"] = str(offset)
    return f"{request.base_url}?{urlencode(args)}"


@bp.get("/collections/<level>/items", provide_automatic_options=False)
def items(level: str):
    """A page of one level's grids: ``bbox``, ``datetime``, ``limit`` (default 100, at most 10000) and
    ``offset``; ``next``/``prev`` links page through them."""
    _params(("bbox", "bbox-crs", "crs", "datetime", "limit", "offset"))
    _level(level)
    params.crs84("crs")
    params.crs84("bbox-crs")
    limit = params.integer("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = params.integer("offset", 0, 0, 2**53)
    bbox = params.bbox()
    at, interval = params.datetime_param()
    matched, page = features.items(engine(), level, bbox=bbox, at=at, interval=interval, limit=limit, offset=offset)
    for feature in page:
        feature["links"] = [_link(_url("ogc.item", level=level, code=feature["id"]), "self", GEOJSON)]
    links = [
        _link(request.url, "self", GEOJSON, "this page"),
        _link(_url("ogc.collection", level=level), "collection", title=f"the {level} collection"),
    ]
    if offset + len(page) < matched:
        links.append(_link(_page_url(offset + limit), "next", GEOJSON, "the next page"))
    if offset > 0:
        links.append(_link(_page_url(max(0, offset - limit)), "prev", GEOJSON, "the previous page"))
    return _json(
        {
            "type": "FeatureCollection",
            "features": page,
            "numberMatched": matched,
            "numberReturned": len(page),
            "timeStamp": _stamp(datetime.now(UTC)),
            "links": links,
        },
        GEOJSON,
        headers={"Content-Crs": f"<{CRS84}>"},
    )


@bp.get("/collections/<level>/items/<code>", provide_automatic_options=False)
def item(level: str, code: str):
    """One grid: its current version, or with ``datetime=`` (an instant) the version valid then.
    The ``ETag`` names the version (send it back as ``If-Match`` when changing the grid)."""
    _params(("datetime", "crs"))
    _level(level)
    params.crs84("crs")
    at, _ = params.datetime_param(instant_only=True)
    found = features.item(engine(), level, code, at)
    if found is None:
        when = f" at {at.isoformat()}" if at else ""
        raise NotFound(f"no {level} grid with code {code!r}{when}")
    version, feature = found
    feature["links"] = [
        _link(_url("ogc.item", level=level, code=code), "self", GEOJSON),
        _link(_url("ogc.collection", level=level), "collection"),
    ]
    return _json(feature, GEOJSON, headers={"ETag": boundary_edits.etag(version), "Content-Crs": f"<{CRS84}>"})


# --- Part 4: create, replace, update, delete --------------------------------------------------------
#
# Every write goes through gridmap.services.boundary_edits.apply, the engine behind POST /api/v1/edits and the CLI, so a
# grid created or changed here passes exactly the same checks (inside its parent, no gap, no overlap,
# households) and lands as a new dated version with its edit-log entry.

#: Media types a feature may be sent as; PATCH also takes a JSON merge patch (RFC 7396).
FEATURE_TYPES = ("application/geo+json", "application/json")
PATCH_TYPES = FEATURE_TYPES + ("application/merge-patch+json",)
#: Properties a client may set; the others are the server's (valid_from, valid_to) or fixed (code,
#: level, parent_code: sending them back unchanged is fine, changing them is a 400).
EDITABLE = ("name", "households", "population", "kind")
FIXED = ("code", "level", "parent_code")
SERVER_SET = ("valid_from", "valid_to")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _body(types: tuple[str, ...]) -> dict:
    """The request's JSON object, sent as one of ``types`` (415 otherwise, 400 when not JSON)."""
    if request.mimetype not in types:
        raise UnsupportedMediaType(f"send the feature as {' or '.join(types)}, not {request.mimetype or 'nothing'!r}")
    body = params.parse_json(request.get_data(cache=True))
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object (a GeoJSON Feature)")
    return body


def _feature_parts(body: dict, *, partial: bool) -> tuple[dict | None, dict]:
    """(geometry or None, properties) of a GeoJSON Feature (or, ``partial``, a merge patch of one)."""
    if body.get("type", "Feature" if partial else None) != "Feature":
        raise InputError(f'the body must be a GeoJSON Feature ("type": "Feature"), got type {body.get("type")!r}')
    unknown = sorted(set(body) - {"type", "id", "geometry", "properties", "links", "bbox"})
    if unknown:
        raise InputError(f"unknown Feature member {unknown[0]!r} (a Feature has type, id, geometry, properties)")
    geometry = body.get("geometry")
    if geometry is None and not partial:
        raise InputError("geometry is required: the grid's Polygon or MultiPolygon")
    if geometry is not None and (
        not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon")
    ):
        raise InputError(
            f"geometry must be a GeoJSON Polygon or MultiPolygon, got "
            f"{geometry.get('type') if isinstance(geometry, dict) else geometry!r}"
        )
    props = body.get("properties") or {}
    if not isinstance(props, dict):
        raise InputError(f"properties must be a JSON object, got {shown(props)}")
    unknown = sorted(set(props) - set(EDITABLE) - set(FIXED) - set(SERVER_SET))
    if unknown:
        raise InputError(f"unknown property {unknown[0]!r} (a grid has {', '.join(EDITABLE + FIXED)})")
    return geometry, {k: v for k, v in props.items() if k not in SERVER_SET}


def _write_params(*extra: str) -> tuple[bool, str | None]:
    """The query of a write: only ``dry_run``, ``reason`` and ``extra``; (dry_run, reason)."""
    _params(("dry_run", "reason", *extra))
    return params.flag("dry_run", False), params.text("reason", values.TEXT_MAX)


def _edit(op: dict, dry_run: bool, reason: str | None, *, code: str | None = None) -> dict:
    """Run ``op`` through the shared edit engine with the request's If-Match."""
    header = request.headers.get("If-Match")
    return boundary_edits.apply(
        engine(),
        op,
        actor=current_actor(),
        rules=risk_rules(),
        reason=reason,
        dry_run=dry_run,
        if_match={code: header} if code and header else None,
    )


def _written(level: str, code: str, status: int) -> Response:
    """The grid's new current version, with its ETag (and Location, on create)."""
    version, feature = features.item(engine(), level, code)
    feature["links"] = [_link(_url("ogc.item", level=level, code=code), "self", GEOJSON)]
    response = _json(feature, GEOJSON, status)
    response.headers["ETag"] = boundary_edits.etag(version)
    if status == 201:
        response.headers["Location"] = _url("ogc.item", level=level, code=code)
    return response


def _writes_allowed() -> bool:
    """Whether this caller may write (for ``Allow``): a token of the planner role or above."""
    if not request.headers.get("Authorization"):
        return False
    try:
        return roles.allowed_by_any(authenticate().role, ("planner",))
    except GridmapError:
        return False


def _options(*writes: str) -> Response:
    response = Response(status=204)
    response.headers["Allow"] = ", ".join(["GET", "HEAD", "OPTIONS"] + (list(writes) if _writes_allowed() else []))
    return response


@bp.route("/collections/<level>/items", methods=["OPTIONS"])
def items_options(level: str):
    """The methods this caller may use on a collection's items (POST only with the planner role)."""
    _level(level)
    return _options("POST")


@bp.route("/collections/<level>/items/<code>", methods=["OPTIONS"])
def item_options(level: str, code: str):
    _level(level)
    return _options("PUT", "PATCH", "DELETE")


@bp.post("/collections/<level>/items", provide_automatic_options=False)
@require("planner")
def create_item(level: str):
    """Create a grid from a GeoJSON Feature: its ``id`` (or ``properties.code``) is the code, the parent
    is ``properties.parent_code``.  201 with ``Location`` and ``ETag``; ``dry_run=true``: the report."""
    dry_run, reason = _write_params()
    _level(level)
    body = _body(FEATURE_TYPES)
    geometry, props = _feature_parts(body, partial=False)
    code = body.get("id", props.get("code"))
    if "id" in body and "code" in props and body["id"] != props["code"]:
        raise InputError(f"the Feature's id {body['id']!r} and properties.code {props['code']!r} differ")
    if props.get("level", level) != level:
        raise InputError(f"properties.level {props['level']!r} is not this collection's level {level!r}")
    if code is not None and not isinstance(code, str):
        raise InputError(f"the code (the Feature's id) must be a string, got {code!r}")
    grid = {k: props[k] for k in ("name", "parent_code", "kind", "households", "population") if k in props}
    grid.update(level=level, geometry=geometry)
    if code is not None:
        grid["code"] = code
    report = _edit({"op": "create", "grid": grid}, dry_run, reason)
    if report["dry_run"]:
        return jsonify(report)
    return _written(level, report["opened"][0], 201)


def _current(level: str, code: str) -> dict:
    found = features.item(engine(), level, code)
    if found is None:
        raise NotFound(f"no current {level} grid with code {code!r}")
    return found[1]["properties"]


def _changes(level: str, code: str, props: dict) -> dict:
    """The properties that change: fixed ones must match the grid (400 naming them otherwise), and
    values equal to the current ones are left out, so counts sent back unchanged are recomputed
    for a new outline as in every edit (a changed count wins)."""
    current = _current(level, code)
    out = {}
    for key, value in props.items():
        if key in FIXED:
            if value != current[key]:
                raise InputError(
                    f"{key} cannot change here ({current[key]!r} → {value!r}): it is fixed by the "
                    f"grid's code and collection"
                )
        elif value != current[key]:
            out[key] = value
    return out


def _update(level: str, code: str, *, partial: bool) -> Response:
    dry_run, reason = _write_params("gap_to")
    _level(level)
    body = _body(PATCH_TYPES if partial else FEATURE_TYPES)
    geometry, props = _feature_parts(body, partial=partial)
    if "id" in body and body["id"] != code:
        raise InputError(f"the Feature's id {body['id']!r} is not the grid being changed ({code!r})")
    changes = _changes(level, code, props)
    gap_to = request.args.get("gap_to") or None
    if geometry is None and gap_to is None:
        op = {"op": "update", "code": code, "properties": changes}
    else:
        op = {"op": "replace", "code": code, "properties": changes}
        if geometry is not None:
            op["geometry"] = geometry
        if gap_to is not None:
            op["gap_to"] = gap_to
    report = _edit(op, dry_run, reason, code=code)
    if report["dry_run"]:
        return jsonify(report)
    return _written(level, code, 200)


@bp.put("/collections/<level>/items/<code>", provide_automatic_options=False)
@require("planner")
def replace_item(level: str, code: str):
    """Replace a grid's outline and properties (a new version); ``If-Match`` guards against lost
    updates, ``gap_to`` names the sibling that takes area the new outline gives up."""
    return _update(level, code, partial=False)


@bp.patch("/collections/<level>/items/<code>", provide_automatic_options=False)
@require("planner")
def patch_item(level: str, code: str):
    """Change some properties and/or the outline (a JSON merge patch of the Feature)."""
    return _update(level, code, partial=True)


@bp.delete("/collections/<level>/items/<code>", provide_automatic_options=False)
@require("planner")
def delete_item(level: str, code: str):
    """Retire a grid (its current version ends; history is kept).  In a level that tiles its parent,
    ``gap_to`` must name the sibling taking the area, or the edit is rejected (422) naming the gap."""
    dry_run, reason = _write_params("gap_to")
    _level(level)
    _current(level, code)
    op = {"op": "retire", "code": code}
    if request.args.get("gap_to"):
        op["gap_to"] = request.args["gap_to"]
    report = _edit(op, dry_run, reason, code=code)
    if report["dry_run"]:
        return jsonify(report)
    return Response(status=204)
