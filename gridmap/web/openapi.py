"""The OpenAPI 3.0 document of the whole app, served at ``/api/v1/openapi.json`` and ``/ogc/api``.

Written as a Python dict, not generated: apispec (the well-kept generator) earns its keep by turning
marshmallow schemas or view docstrings into the document, and gridmap has neither: its views check
their input by hand with messages naming the problem.  Here apispec would only be a dict builder.
What keeps this hand-written document honest is ``tests/test_openapi.py``: every route of
``app.url_map`` (each method but HEAD and Flask's automatic OPTIONS) must be described here, and
schemathesis sends requests generated from the parameters and bodies below to the real app.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, has_app_context, has_request_context, jsonify, request

from ..domain.boundaries import OPS
from ..domain.levels import ALL_LEVELS, LEVELS, SPECIAL_KINDS
from ..domain.risk import COLOURS, KINDS
from ..domain.scan import MAX_TEXT, MIN_TEXT
from ..services.layers import tile_layers
from ..settings import Settings
from . import openapi_events
from .context import settings

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"


@bp.get("/api/v1/openapi.json")
def openapi_json():
    """This document."""
    return jsonify(document())


# --- building blocks ------------------------------------------------------------------


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _q(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _path(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _header(name: str, description: str) -> dict:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": description}


def _content(schema: dict, *types: str) -> dict:
    return {t: {"schema": schema} for t in (types or ("application/json",))}


def _ok(
    description: str, schema: dict | None = None, *types: str, status: str = "200", headers: dict | None = None
) -> dict:
    response = {"description": description}
    if schema is not None:
        response["content"] = _content(schema, *types)
    if headers:
        response["headers"] = headers
    return {status: response}


#: Responses any route may give whatever it does, described once under ``components/responses``:
#: the request guard's (:mod:`.guard`) for a body too large (413) or too slow (408), and the faults'
#: (:mod:`.faults`) when the database cannot be reached, another write holds the grids, or the work
#: ran past its time (503), and the sign-in throttle's (429).
SHARED = {
    408: "RequestTimeout",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    503: "Unavailable",
}


def _shared_responses() -> dict:
    def retry_after(what: str) -> dict:
        return {"Retry-After": {"description": what, "schema": {"type": "integer", "minimum": 0}}}

    def error(description: str, headers: dict | None = None) -> dict:
        return {"description": description, "content": _content(_ref("Error"))} | (
            {"headers": headers} if headers else {}
        )

    return {
        "RequestTimeout": error(
            "the request body did not arrive within the body timeout (GRIDMAP_BODY_TIMEOUT, default 10 s)"
        ),
        "PayloadTooLarge": error(
            "too large: a body over the size limit (GRIDMAP_MAX_BODY, default 4 MiB; refused from its "
            "Content-Length before it is read), or more points or vertices than a request may carry"
        ),
        "TooManyRequests": error(
            "too many attempts of one kind in a while, nothing was done: failed sign-ins from this client "
            "address or for this user name (too_many_attempts; GRIDMAP_SIGN_IN_LIMIT, default 10 per 5 "
            "minutes), or reports and number reveals from one phone or on one grid on the QR page "
            "(rate_limited)",
            retry_after("seconds until another attempt may be made"),
        ),
        "Unavailable": error(
            "try again later: the database cannot be reached (database_unavailable), another write holds the "
            "grids past the lock timeout (busy), or the work ran past its time limit (work_limit); nothing "
            "was written",
            retry_after("seconds to wait before trying again"),
        ),
    }


def _with_shared(paths: dict) -> dict:
    """Every operation may answer 503; one with a body also 408 and 413 (the guard reads every body)."""
    for operations in paths.values():
        for op in operations.values():
            responses = op["responses"]
            wanted = [503] + ([408, 413] if "requestBody" in op else [])
            for status in wanted:
                responses.setdefault(str(status), _shared(status))
    return paths


def _shared(status: int) -> dict:
    return {"$ref": f"#/components/responses/{SHARED[status]}"}


def _errors(*statuses: int) -> dict:
    text = {
        400: "bad input: the message names the parameter and the problem",
        401: "no usable token",
        403: "the token's role may not do this",
        404: "no such object",
        409: "a grid code that was retired or issued for another level: a code is never issued again",
        410: "the grid was retired: detail has its last version, when and by which edit, and where its area went",
        412: "If-Match names a version that is no longer current",
        415: "not a JSON body",
        422: "rejected: the problems are listed",
        428: "If-Match is required",
    }
    return {
        str(s): _shared(s) if s in SHARED else {"description": text[s], "content": _content(_ref("Error"))}
        for s in statuses
    }


def _op(
    summary: str,
    tag: str,
    responses: dict,
    params=(),
    body: dict | None = None,
    security: bool = False,
    description: str | None = None,
) -> dict:
    op = {"summary": summary, "tags": [tag], "parameters": list(params), "responses": responses}
    if description:
        op["description"] = description
    if body is not None:
        op["requestBody"] = body
    if security:
        op["security"] = [{"bearer": []}]
    return op


AT = _q("at", {"type": "string"}, "an ISO date or date-time: the version valid then (default: now)")
CRS_OUT = _q(
    "crs",
    {"type": "string", "enum": ["wgs84", "gcj02"]},
    "the base map's frame for the geometries (default wgs84, RFC 7946)",
)
BBOX = _q("bbox", {"type": "string"}, "minlon,minlat,maxlon,maxlat")
LEVEL = {"type": "string", "enum": list(ALL_LEVELS)}
CODE = _path("code", {"type": "string"}, "a grid code")


def _schemas() -> dict:
    ring = {
        "type": "array",
        "minItems": 4,
        "items": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "number"}},
    }
    polygon = {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"type": "string", "enum": ["Polygon"]},
            "coordinates": {"type": "array", "items": ring},
        },
    }
    multipolygon = {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"type": "string", "enum": ["MultiPolygon"]},
            "coordinates": {"type": "array", "items": {"type": "array", "items": ring}},
        },
    }
    grid_props = {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "level": LEVEL,
        "kind": {"type": "string", "enum": list(SPECIAL_KINDS), "nullable": True},
        "parent_code": {"type": "string", "nullable": True},
        "households": {"type": "integer", "minimum": 0},
        "population": {"type": "integer", "minimum": 0},
        "valid_from": {"type": "string", "format": "date-time"},
        "valid_to": {"type": "string", "format": "date-time", "nullable": True},
    }
    link = {
        "type": "object",
        "required": ["href", "rel"],
        "properties": {
            "href": {"type": "string"},
            "rel": {"type": "string"},
            "type": {"type": "string"},
            "title": {"type": "string"},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "detail": {}},
                }
            },
        },
        "Link": link,
        "Polygon": polygon,
        "MultiPolygon": multipolygon,
        "GridGeometry": {"oneOf": [_ref("Polygon"), _ref("MultiPolygon")]},
        "GridFeature": {
            "type": "object",
            "required": ["type", "id", "geometry", "properties"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "id": {"type": "string"},
                "geometry": _ref("GridGeometry"),
                "properties": {"type": "object", "properties": grid_props},
                "links": {"type": "array", "items": _ref("Link")},
            },
        },
        "FeatureCollection": {
            "type": "object",
            "required": ["type", "features"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": {"type": "object"}},
            },
        },
        "GridItems": {
            "type": "object",
            "required": ["type", "features", "links", "numberReturned"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": _ref("GridFeature")},
                "numberMatched": {"type": "integer", "minimum": 0},
                "numberReturned": {"type": "integer", "minimum": 0},
                "timeStamp": {"type": "string", "format": "date-time"},
                "links": {"type": "array", "items": _ref("Link")},
            },
        },
        # What a client sends to create a grid (OGC POST): the code is the feature's id or properties.code.
        "NewGridFeature": {
            "type": "object",
            "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "id": {"type": "string"},
                "geometry": _ref("GridGeometry"),
                "properties": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "parent_code": {"type": "string"},
                        "kind": {"type": "string", "enum": list(SPECIAL_KINDS)},
                        "households": {"type": "integer", "minimum": 0},
                        "population": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
        # PUT: the whole grid again (code, level, parent and kind cannot change).
        "ReplaceGridFeature": {
            "type": "object",
            "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "id": {"type": "string"},
                "geometry": _ref("GridGeometry"),
                "properties": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "households": {"type": "integer", "minimum": 0},
                        "population": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
        # PATCH: a JSON merge patch (RFC 7396) of the feature: any of geometry and properties.
        "GridPatch": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "geometry": _ref("GridGeometry"),
                "properties": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "households": {"type": "integer", "minimum": 0},
                        "population": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
        "EditReport": {
            "type": "object",
            "description": "the edit engine's report: what changed (or would, "
            "on a dry run), the impact, the new versions",
        },
        "Point": {
            "type": "object",
            "required": ["lon", "lat"],
            "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}, "id": {}},
        },
    }


def _api_paths() -> dict:
    t = "JSON API"
    return {
        "/api/v1/openapi.json": {"get": _op("this OpenAPI document", t, _ok("the document", {"type": "object"}))},
        "/api/v1/grids/{code}": {
            "get": _op(
                "one grid as a GeoJSON Feature with its parent chain; its people (properties.people) with a viewer "
                "token, phones masked below dispatcher",
                t,
                {**_ok("the grid", _ref("GridFeature")), **_errors(400, 404, 410)},
                [CODE, AT, CRS_OUT],
            )
        },
        "/api/v1/grids": {
            "get": _op(
                "the current grids of one level as a FeatureCollection",
                t,
                {**_ok("the grids", _ref("FeatureCollection")), **_errors(400)},
                [
                    _q("level", LEVEL, "the level", required=True),
                    BBOX,
                    _q("simplify_m", {"type": "number"}, "simplification tolerance in metres (default: the layer's)"),
                ],
            )
        },
        "/api/v1/stats": {
            "get": _op(
                "grids, households and population per level",
                t,
                {**_ok("the counts", {"type": "object"}), **_errors(400)},
                [AT],
            )
        },
        "/api/v1/labels": {
            "get": _op(
                "where the map writes grid names: a point inside each grid of a level in a box",
                t,
                {**_ok("code, name, lon, lat per grid", {"type": "object"}), **_errors(400)},
                [
                    _q("level", LEVEL, "a grid level", required=True),
                    {**BBOX, "required": True},
                    AT,
                    CRS_OUT,
                ],
            )
        },
        "/api/v1/lookup": {
            "get": _op(
                "the grid chain of one point or address (the micro-grid's grid workers with a viewer token, phones "
                "masked below dispatcher)",
                t,
                {**_ok("the chain", {"type": "object"}), **_errors(400)},
                [
                    _q("lon", {"type": "number"}, "longitude"),
                    _q("lat", {"type": "number"}, "latitude"),
                    _q("crs", {"type": "string"}, "wgs84, cgcs2000, gcj02, bd09 or EPSG:n"),
                    _q("address", {"type": "string"}, "a household address instead of lon/lat"),
                    AT,
                ],
            ),
            "post": _op(
                "the grid chains of many points (at most 10,000)",
                t,
                {**_ok("one answer per point", {"type": "object"}), **_errors(400, 413)},
                body={
                    "required": True,
                    "content": _content(
                        {
                            "oneOf": [
                                {"type": "array", "items": _ref("Point"), "maxItems": 10000},
                                {
                                    "type": "object",
                                    "required": ["points"],
                                    "properties": {
                                        "points": {"type": "array", "items": _ref("Point"), "maxItems": 10000},
                                        "crs": {"type": "string"},
                                        "at": {"type": "string"},
                                    },
                                },
                            ]
                        }
                    ),
                },
            ),
        },
        "/api/v1/partition": {
            "post": _op(
                "micro-grids of min..max households for a courtyard, a community or all; a dry run unless commit",
                t,
                {**_ok("the report (and the proposal as GeoJSON)", {"type": "object"}), **_errors(400, 401, 403, 404)},
                body={
                    "required": True,
                    "content": _content(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "courtyard": {"type": "string"},
                                "community": {"type": "string"},
                                "all": {"type": "boolean"},
                                "min": {"type": "integer"},
                                "max": {"type": "integer"},
                                "policy": {"type": "string", "enum": ["keep", "over", "under"]},
                                "seed": {"type": "integer"},
                                "commit": {"type": "boolean"},
                                "reason": {"type": "string"},
                            },
                        }
                    ),
                },
                security=True,
            )
        },
        "/api/v1/grids/{code}/panel": {
            "get": _op(
                "what the map's info panel shows for one current grid (people with a viewer token, phones masked "
                "below dispatcher)",
                t,
                {**_ok("the panel", {"type": "object"}), **_errors(404, 410)},
                [CODE],
            )
        },
        "/api/v1/search": {
            "get": _op(
                "grids by code or name, retired codes (type retired: when, where their area went), and addresses",
                t,
                {**_ok("the hits", {"type": "object"}), **_errors(400)},
                [
                    _q("q", {"type": "string"}, "a code, a name or an address", required=True),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, "at most this many"),
                    CRS_OUT,
                ],
            )
        },
        "/api/v1/reports": {
            "get": _op(
                "reports with a point, as GeoJSON",
                t,
                {**_ok("the reports", _ref("FeatureCollection")), **_errors(400)},
                [
                    BBOX,
                    _q("status", {"type": "string", "enum": ["open", "closed"]}, "open or closed"),
                    _q(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 50000, "default": 5000},
                        "at most this many",
                    ),
                    CRS_OUT,
                ],
            )
        },
        "/api/v1/stats/micro-households": {
            "get": _op(
                "histogram of households per micro-grid",
                t,
                {**_ok("the histogram", {"type": "object"}), **_errors(400)},
                [_q("bin", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5}, "bin width"), AT],
            )
        },
    }


def _risk_paths() -> dict:
    t = "risk"
    return {
        "/api/v1/risk/elements": {
            "get": _op(
                "risk elements below a grid, by kind, colour and overdue state",
                t,
                {**_ok("the elements", _ref("FeatureCollection")), **_errors(400)},
                [
                    _q("grid", {"type": "string"}, "a grid code of any level"),
                    _q("kind", {"type": "string", "enum": list(KINDS)}, "the element kind"),
                    _q("colour", {"type": "string", "enum": list(COLOURS)}, "the colour"),
                    _q("overdue", {"type": "boolean"}, "overdue for a visit or not"),
                    BBOX,
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}, "page size"),
                    _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "page start"),
                    AT,
                ],
            )
        },
        "/api/v1/risk/grids/{code}": {
            "get": _op(
                "the live colour and counts below one current grid",
                t,
                {**_ok("the roll-up", {"type": "object"}), **_errors(400, 404)},
                [CODE, AT],
            )
        },
        "/api/v1/risk/summary": {
            "get": _op(
                "counts by colour, kind and overdue",
                t,
                {**_ok("the summary", {"type": "object"}), **_errors(400)},
                [AT],
            )
        },
        "/api/v1/risk/rules": {
            "get": _op("the visiting rule, thresholds and styles", t, _ok("the rules", {"type": "object"}))
        },
        "/api/v1/risk/visits": {
            "post": _op(
                "record one visit to a risk element",
                t,
                {**_ok("the element's new state", {"type": "object"}, status="201"), **_errors(400, 401, 403, 404)},
                body={
                    "required": True,
                    "content": _content(
                        {
                            "type": "object",
                            "required": ["element", "visitor"],
                            "additionalProperties": False,
                            "properties": {
                                "element": {"type": "integer"},
                                "visitor": {"type": "string"},
                                "visited_at": {"type": "string", "format": "date-time"},
                                "note": {"type": "string"},
                            },
                        }
                    ),
                },
                security=True,
            )
        },
    }


def _edit_paths() -> dict:
    t = "edits"
    geometry = _ref("GridGeometry")
    return {
        "/api/v1/edits": {
            "post": _op(
                "one boundary edit: a dry run returns the impact preview; a commit needs If-Match (or if_match)",
                t,
                {
                    **_ok("the dry run's impact preview", _ref("EditReport")),
                    **_ok("committed: the report with the new versions' ETags", _ref("EditReport"), status="201"),
                    **_errors(400, 401, 403, 404, 409, 412, 422, 428),
                },
                [_header("If-Match", "the ETag of the version of the edited grid (code) the edit is based on")],
                {
                    "required": True,
                    "content": _content(
                        {
                            "type": "object",
                            "required": ["op"],
                            "properties": {
                                "op": {"type": "string", "enum": list(OPS)},
                                "code": {"type": "string"},
                                "codes": {"type": "array", "items": {"type": "string"}},
                                "other": {"type": "string"},
                                "gap_to": {"type": "string"},
                                "name": {"type": "string"},
                                "geometry": geometry,
                                "line": {
                                    "type": "object",
                                    "required": ["type", "coordinates"],
                                    "properties": {
                                        "type": {"type": "string", "enum": ["LineString"]},
                                        "coordinates": {
                                            "type": "array",
                                            "items": {"type": "array", "items": {"type": "number"}},
                                        },
                                    },
                                },
                                "parts": {"type": "array", "items": {"type": "object"}},
                                "names": {"type": "array", "items": {"type": "string"}},
                                "properties": {"type": "object"},
                                "grid": {"type": "object"},
                                "carve": {"type": "boolean"},
                                "crs": {"type": "string"},
                                "dry_run": {"type": "boolean"},
                                "reason": {"type": "string"},
                                "if_match": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                        }
                    ),
                },
                security=True,
            )
        },
        "/api/v1/grids/{code}/history": {
            "get": _op(
                "every version of a grid with its ETag and outline, and the edits that named it",
                t,
                {**_ok("the history", {"type": "object"}), **_errors(404)},
                [CODE],
            )
        },
        "/api/v1/edits/{edit_id}": {
            "get": _op(
                "one logged edit with its stored impact report",
                t,
                {**_ok("the edit", {"type": "object"}), **_errors(404)},
                [_path("edit_id", {"type": "integer", "minimum": 0}, "the edit's id")],
            )
        },
    }


def _session_paths() -> dict:
    t = "map"
    me = {
        "type": "object",
        "required": ["name", "role", "may_edit"],
        "properties": {"name": {"type": "string"}, "role": {"type": "string"}, "may_edit": {"type": "boolean"}},
    }
    credentials = {
        "type": "object",
        "required": ["name", "password"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "password": {"type": "string"}},
    }
    return {
        "/api/v1/session": {
            "get": _op("who the token belongs to", t, {**_ok("name and role", me), **_errors(401)}, security=True),
            "post": _op(
                "sign in with a user name and password: a fresh expiring token",
                t,
                {**_ok("the token, name and role", {"type": "object"}, status="201"), **_errors(400, 401, 429)},
                body={"required": True, "content": _content(credentials)},
            ),
            "delete": _op(
                "sign out: the token is revoked", t, {**_ok("signed out", status="204"), **_errors(401)}, security=True
            ),
        }
    }


def _page_paths(layers_dir: Path) -> dict:
    t = "map"
    return {
        "/": {"get": _op("the map page (HTML)", t, _ok("the page", {"type": "string"}, "text/html"))},
        "/static/{filename}": {
            "get": _op(
                "the map page's scripts, styles and images",
                t,
                {**_ok("the file"), **_errors(404)},
                [_path("filename", {"type": "string"}, "a file under gridmap/web/static")],
            )
        },
        "/tiles/{layer}/{z}/{x}/{y}.pbf": {
            "get": _op(
                "a Mapbox vector tile of a grid level or overlay",
                t,
                {
                    **_ok(
                        "the tile (empty outside the layer's zooms)",
                        {"type": "string", "format": "binary"},
                        "application/vnd.mapbox-vector-tile",
                    ),
                    **_errors(400, 404),
                },
                [
                    _path("layer", {"type": "string", "enum": sorted(tile_layers(layers_dir))}, "the layer"),
                    _path("z", {"type": "integer", "minimum": 0}, "zoom"),
                    _path("x", {"type": "integer", "minimum": 0}, "column"),
                    _path("y", {"type": "integer", "minimum": 0}, "row"),
                    _q("crs", {"type": "string", "enum": ["wgs84", "gcj02"]}, "the base map's frame"),
                ],
            )
        },
    }


def _ogc_paths() -> dict:
    t = "OGC API – Features"
    geo = "application/geo+json"
    f = _q("f", {"type": "string", "enum": ["json", "geojson", "html"]}, "the format: always JSON")
    collection = _path("collectionId", LEVEL, "a grid level")
    feature_id = _path("featureId", {"type": "string"}, "a grid code")
    etag = {"ETag": {"description": "the grid version (send it back as If-Match)", "schema": {"type": "string"}}}
    allow = {"Allow": {"description": "the methods allowed here for this caller", "schema": {"type": "string"}}}
    dry_run = _q("dry_run", {"type": "boolean", "default": False}, "only report what the edit would do")
    reason = _q("reason", {"type": "string"}, "why (kept in the edit log)")
    gap_to = _q("gap_to", {"type": "string"}, "the sibling grid that takes the area this edit leaves")
    if_match = _header("If-Match", "the ETag of the version this edit is based on")
    writes = _errors(400, 401, 403, 404, 409, 412, 415, 422, 428)
    item_body = {"required": True, "content": _content(_ref("ReplaceGridFeature"), geo, "application/json")}
    return {
        "/ogc/": {
            "get": _op(
                "landing page",
                t,
                _ok("links to the API, conformance and collections", {"type": "object", "required": ["links"]}),
                [f],
            )
        },
        "/ogc/api": {
            "get": _op(
                "this OpenAPI document",
                t,
                _ok("the document", {"type": "object"}, "application/vnd.oai.openapi+json;version=3.0"),
                [f],
            )
        },
        "/ogc/conformance": {
            "get": _op(
                "the conformance classes implemented",
                t,
                _ok(
                    "the classes",
                    {
                        "type": "object",
                        "required": ["conformsTo"],
                        "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}},
                    },
                ),
                [f],
            )
        },
        "/ogc/collections": {
            "get": _op(
                "one collection per grid level",
                t,
                _ok("the collections", {"type": "object", "required": ["collections"]}),
                [f],
            )
        },
        "/ogc/collections/{collectionId}": {
            "get": _op(
                "one grid level", t, {**_ok("the collection", {"type": "object"}), **_errors(400, 404)}, [collection, f]
            )
        },
        "/ogc/collections/{collectionId}/items": {
            "get": _op(
                "a page of one level's grids",
                t,
                {**_ok("the grids", _ref("GridItems"), geo), **_errors(400, 404)},
                [
                    collection,
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}, "page size"),
                    _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "page start"),
                    _q(
                        "bbox",
                        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
                        "minlon,minlat,maxlon,maxlat (CRS84)",
                    )
                    | {"style": "form", "explode": False},
                    _q(
                        "datetime",
                        {"type": "string"},
                        "an instant (the versions valid then) or an interval "
                        "a/b, ../b, a/.. (the versions overlapping it)",
                    ),
                    f,
                ],
            ),
            "post": _op(
                "create a grid (the same checks as every edit)",
                t,
                {
                    **_ok(
                        "created",
                        _ref("GridFeature"),
                        geo,
                        status="201",
                        headers={"Location": {"schema": {"type": "string"}, "description": "the new grid"}, **etag},
                    ),
                    **_ok("the dry run's report", _ref("EditReport")),
                    **writes,
                },
                [collection, dry_run, reason],
                {"required": True, "content": _content(_ref("NewGridFeature"), geo, "application/json")},
                security=True,
            ),
            "options": _op(
                "the methods allowed on the collection's items",
                t,
                _ok("no content", status="204", headers=allow),
                [collection],
            ),
        },
        "/ogc/collections/{collectionId}/items/{featureId}": {
            "get": _op(
                "one grid (its current version, or the one valid at datetime)",
                t,
                {**_ok("the grid", _ref("GridFeature"), geo, headers=etag), **_errors(400, 404)},
                [collection, feature_id, _q("datetime", {"type": "string"}, "an instant"), f],
            ),
            "put": _op(
                "replace a grid's geometry and properties",
                t,
                {**_ok("the new version", _ref("GridFeature"), geo, headers=etag), **writes},
                [collection, feature_id, dry_run, reason, gap_to, if_match],
                item_body,
                security=True,
            ),
            "patch": _op(
                "change some of a grid's properties or its geometry (JSON merge patch)",
                t,
                {**_ok("the new version", _ref("GridFeature"), geo, headers=etag), **writes},
                [collection, feature_id, dry_run, reason, gap_to, if_match],
                {
                    "required": True,
                    "content": _content(_ref("GridPatch"), "application/merge-patch+json", geo, "application/json"),
                },
                security=True,
            ),
            "delete": _op(
                "retire a grid (gap_to names the sibling that takes its area)",
                t,
                {**_ok("retired", status="204"), **_ok("the dry run's report", _ref("EditReport")), **writes},
                [collection, feature_id, dry_run, reason, gap_to, if_match],
                security=True,
            ),
            "options": _op(
                "the methods allowed on one grid",
                t,
                _ok("no content", status="204", headers=allow),
                [collection, feature_id],
            ),
        },
    }


def _people_paths() -> dict:
    """Grid people, party organisations, QR codes, and the page a QR code opens (issue 13)."""
    t, post = "people", _path("post_id", {"type": "integer"}, "a post's id")
    read = {**_errors(400, 401, 403)}
    edit = {**_errors(400, 401, 403, 404, 422)}
    signed = [
        _path("code", {"type": "string"}, "a grid, building or unit-entrance code"),
        _q("s", {"type": "string"}, "the code's signature", required=True),
        _q("k", {"type": "string", "enum": ["g", "b", "u"]}, "grid (default), building or unit entrance"),
        _q("v", {"type": "integer", "minimum": 1}, "the signing key's version (default 1)"),
    ]
    row = {"type": "object", "description": "grid or building (+ unit), role, name, phone, id_card, org, valid_from"}
    form = {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "minLength": MIN_TEXT, "maxLength": MAX_TEXT},
            "matter": {"type": "string"},
            "phone": {"type": "string"},
            "lon": {"type": "number"},
            "lat": {"type": "number"},
            "photo": {"type": "string", "format": "binary"},
        },
    }
    return {
        "/api/v1/people": {
            "get": _op(
                "posts (who holds which role where), phones masked below dispatcher",
                t,
                {**_ok("the posts", {"type": "object"}), **read},
                [
                    _q("grid", {"type": "string"}, "a grid code"),
                    _q("role", {"type": "string"}, "a role"),
                    AT,
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "at most"),
                ],
                security=True,
            ),
            "post": _op(
                "add roster rows, all or none",
                t,
                {**_ok("what was written", {"type": "object"}, status="201"), **edit},
                body={
                    "required": True,
                    "content": _content(
                        {
                            "type": "object",
                            "required": ["rows"],
                            "additionalProperties": False,
                            "properties": {"rows": {"type": "array", "items": row}, "replace": {"type": "boolean"}},
                        }
                    ),
                },
                security=True,
            ),
        },
        "/api/v1/people/{person_id}/history": {
            "get": _op(
                "every post one person has held",
                t,
                {**_ok("the posts", {"type": "object"}), **_errors(401, 403, 404)},
                [_path("person_id", {"type": "integer"}, "a person's id")],
                security=True,
            )
        },
        "/api/v1/people/coverage": {
            "get": _op(
                "grids with no grid worker or party organisation, and each worker's load",
                t,
                {**_ok("summary, gaps and load", {"type": "object"}), **read},
                [
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 100000}, "rows of each list"),
                    _q("max_households", {"type": "integer", "minimum": 1}, "the overload threshold"),
                ],
                security=True,
            )
        },
        "/api/v1/grids/{code}/people": {
            "get": _op(
                "the people and party organisations of one grid",
                t,
                {**_ok("posts and organisations", {"type": "object"}), **_errors(400, 401, 403, 404)},
                [CODE, AT],
                security=True,
            )
        },
        "/api/v1/posts/{post_id}": {
            "patch": _op(
                "move a post to another grid (the old one ends now)",
                t,
                {**_ok("the move", {"type": "object"}), **edit},
                [post],
                body={"required": True, "content": _content({"type": "object", "required": ["grid"]})},
                security=True,
            ),
            "delete": _op("end a post now", t, {**_ok("ended", {"type": "object"}), **edit}, [post], security=True),
        },
        "/api/v1/qr/{code}": {
            "get": _op(
                "one QR code to print",
                t,
                {**_ok("the code", {"type": "string"}, "image/svg+xml", "image/png"), **_errors(400, 401, 403, 404)},
                [
                    CODE,
                    _q("kind", {"type": "string", "enum": ["g", "b", "u"]}, "grid, building or unit entrance"),
                    _q("format", {"type": "string", "enum": ["svg", "png"]}, "the image format"),
                ],
                security=True,
            )
        },
        "/g/{code}": {
            "get": _op(
                "the page a QR code opens (HTML, Chinese first)",
                t,
                {**_ok("the page", {"type": "string"}, "text/html"), **_errors(400, 403, 404)},
                signed,
            )
        },
        "/g/{code}/report": {
            "post": _op(
                "file a report from the scanned page (channel qr)",
                t,
                {
                    **_ok("the case", {"type": "object"}, status="201"),
                    **_errors(400, 403, 404, 413, 429),
                },
                signed,
                body={"required": True, "content": _content(form, "multipart/form-data")},
            )
        },
        "/g/{code}/call": {
            "post": _op(
                "the tel: link of one person serving the place",
                t,
                {**_ok("the link", {"type": "object"}), **_errors(400, 403, 404, 429)},
                [*signed, _q("post", {"type": "integer"}, "the person's post id on the page", required=True)],
            )
        },
    }


def document() -> dict:
    """The whole app's OpenAPI 3.0 document (its tile layers: the app's, or the environment's outside one)."""
    server = request.url_root if has_request_context() else "/"
    layers_dir = (settings() if has_app_context() else Settings.from_env()).layers_dir
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "gridmap",
            "version": "1.0.0",
            "description": "Nested governance grids (levels " + " → ".join(LEVELS) + ", and special "
            "grids): the JSON API, three-colour risk elements, vector tiles, and OGC API – "
            "Features (Part 1 read, Part 4 transactions) under /ogc. Errors are "
            '{"error": {"code", "message"}}.',
        },
        "servers": [{"url": server}],
        "tags": [
            {"name": n}
            for n in (
                "JSON API",
                "risk",
                "edits",
                "people",
                "events",
                "Open311 GeoReport v2",
                "map",
                "OGC API – Features",
            )
        ],
        "paths": _with_shared(
            {
                **_api_paths(),
                **_risk_paths(),
                **_edit_paths(),
                **_people_paths(),
                **_page_paths(layers_dir),
                **_session_paths(),
                **_ogc_paths(),
                **openapi_events.paths(),
            }
        ),
        "components": {
            "schemas": _schemas(),
            "responses": _shared_responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a gridmap API token (gridmap users add NAME --role ROLE)",
                }
            },
        },
    }
