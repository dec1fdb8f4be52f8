"""The event centre's part of the OpenAPI document: ``/api/v1/matters``, ``/api/v1/departments``,
``/api/v1/events…`` and Open311 GeoReport v2 under ``/open311/v2`` (see :mod:`.openapi`)."""

from __future__ import annotations

from ..domain.events.catalogue import LEVELS_UP
from ..domain.events.intake import CHANNELS, MAX_TEXT
from ..domain.events.loop import ACTIONS
from ..domain.events.open311 import POST_KEYS


def _p(name, schema, description):
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


JSON_OBJ = {"type": "object"}
ERROR = {"$ref": "#/components/schemas/Error"}
FMT = _p(
    "fmt",
    {"type": "string", "enum": ["json", "xml"]},
    "the answer's encoding (the spec requires XML; JSON is the common one)",
)
CASE = _p("case_id", {"type": "integer", "minimum": 1}, "a case (service request) id")
OPEN311_ERROR = {
    "type": "array",
    "items": {"type": "object", "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}},
}


def _q(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _resp(
    ok: str, schema=JSON_OBJ, status: str = "200", errors=(400,), error_schema=ERROR, types=("application/json",)
):
    out = {status: {"description": ok, "content": {t: {"schema": schema} for t in types}}}
    for s in errors:
        out[str(s)] = {
            "description": "the error, naming the problem",
            "content": {t: {"schema": error_schema} for t in types},
        }
    return out


def _op(summary, responses, params=(), body=None, security=False, tag="events"):
    op = {"summary": summary, "tags": [tag], "parameters": list(params), "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if security:
        op["security"] = [{"bearer": []}]
    return op


REPORT = {
    "type": "object",
    "required": ["matter"],
    "additionalProperties": False,
    "properties": {
        "matter": {"type": "string"},
        "lon": {"type": "number"},
        "lat": {"type": "number"},
        "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09", "cgcs2000"]},
        "address": {"type": "string"},
        "text": {"type": "string", "maxLength": MAX_TEXT},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "external_id": {"type": "string"},
        "reported_at": {"type": "string", "format": "date-time"},
        "contact": {"type": "object", "properties": {k: {"type": "string"} for k in ("name", "phone", "email")}},
        "media_urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
        "attributes": {"type": "object"},
    },
}
ACTION_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "note": {"type": "string"},
        "version": {"type": "integer"},
        "department": {"type": "string"},
        "matter": {"type": "string"},
        "target": {"type": "integer"},
        "rating": {"type": "integer"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "lon": {"type": "number"},
        "lat": {"type": "number"},
        "children": {"type": "array", "items": {"type": "object"}},
        "media_urls": {"type": "array", "items": {"type": "string"}},
    },
}


def paths() -> dict:
    """Every event-centre and Open311 operation."""
    grid = _q("grid", {"type": "string"}, "a grid code: its subtree")
    return {
        "/api/v1/matters": {
            "get": _op(
                "the matter catalogue in force",
                _resp("the matters"),
                [_q("category", {"type": "string"}, "only this category")],
            )
        },
        "/api/v1/departments": {
            "get": _op(
                "departments with member counts",
                _resp("the departments", errors=()),
                [_q("grid", {"type": "string"}, "one grid's departments")],
            )
        },
        "/api/v1/events": {
            "post": _op(
                "file a report: located, duplicate-checked, routed; the reporter key comes back",
                _resp("the case, why it went where it went, duplicates", status="201", errors=(400, 401, 403)),
                body={"required": True, "content": {"application/json": {"schema": REPORT}}},
                security=True,
            ),
            "get": _op(
                "the dispatchers' queue: open cases below a grid, by deadline",
                _resp("a page of cases", errors=(400, 401, 403, 404)),
                [
                    grid,
                    _q("matter", {"type": "string"}, "a matter code"),
                    _q("state", {"type": "string"}, "comma list of open states"),
                    _q("overdue", {"type": "boolean"}, "overdue or not"),
                    _q("sort", {"type": "string", "enum": ["deadline", "-deadline"]}, "deadline order"),
                    _q("page", {"type": "integer", "minimum": 1}, "page"),
                    _q("page_size", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                ],
                security=True,
            ),
        },
        "/api/v1/events/route": {
            "get": _op(
                "where a report would go, without filing it",
                _resp("the route and why", errors=(400, 404)),
                [
                    _q("matter", {"type": "string"}, "a matter code", True),
                    _q("lon", {"type": "number"}, "longitude"),
                    _q("lat", {"type": "number"}, "latitude"),
                    _q("crs", {"type": "string"}, "wgs84, gcj02, bd09"),
                    _q("address", {"type": "string"}, "an address instead of lon/lat"),
                ],
            )
        },
        "/api/v1/events/near": {
            "get": _op(
                "the open case nearest to a point of the map within a radius (the map's click)",
                _resp("{id, distance_m}, or {id: null}"),
                [
                    _q("lon", {"type": "number", "minimum": -180, "maximum": 180}, "longitude", True),
                    _q("lat", {"type": "number", "minimum": -90, "maximum": 90}, "latitude", True),
                    _q("radius_m", {"type": "number", "minimum": 0.1, "maximum": 500}, "metres (default 20)"),
                    _q("crs", {"type": "string", "enum": ["wgs84", "gcj02"]}, "the map's frame"),
                ],
            )
        },
        "/api/v1/events/stats": {
            "get": _op(
                "assessment: cases, on-time rate, median hours, escalations, reopen rate, satisfaction",
                _resp("the figures (or CSV)", errors=(400, 404)),
                [
                    grid,
                    _q("group", {"type": "string", "enum": [*LEVELS_UP, "department"]}, "per what"),
                    _q("since", {"type": "string"}, "received from (ISO)"),
                    _q("until", {"type": "string"}, "received before"),
                    _q("format", {"type": "string", "enum": ["json", "csv"]}, "json (default) or csv"),
                ],
            )
        },
        "/api/v1/events/{case_id}": {
            "get": _op(
                "a case and its timeline (texts, names, photos only for the event centre's roles)",
                _resp("the case", errors=(404,)),
                [CASE],
            )
        },
        "/api/v1/events/{case_id}/duplicates": {
            "get": _op(
                "open cases of the same matter near this one",
                _resp("the candidates", errors=(401, 403, 404)),
                [CASE],
                security=True,
            )
        },
        "/api/v1/events/{case_id}/followers": {
            "post": _op(
                "follow an open case instead of filing a duplicate",
                _resp("the number of followers", status="201", errors=(400, 401, 403, 404, 409)),
                [CASE],
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "contact": {"type": "object"},
                                    "channel": {"type": "string", "enum": list(CHANNELS)},
                                },
                            }
                        }
                    },
                },
                security=True,
            )
        },
        "/api/v1/events/{case_id}/{action}": {
            "post": _op(
                "take an action of the loop (the answer names the allowed ones when refused)",
                _resp("the new state and version", errors=(400, 403, 404, 409, 412)),
                [
                    CASE,
                    _p("action", {"type": "string", "enum": list(ACTIONS)}, "an action of the loop"),
                    {
                        "name": "X-Reporter-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "the reporter's key (to rate)",
                    },
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "the case version acted on",
                    },
                ],
                body={"required": False, "content": {"application/json": {"schema": ACTION_BODY}}},
                security=True,
            )
        },
        "/api/v1/events/{case_id}/media/{media_id}": {
            "get": _op(
                "a stored photo of a case",
                {"200": {"description": "the image", "content": {"image/*": {}}}, **_resp("", errors=(401, 403, 404))},
                [
                    CASE,
                    _p("media_id", {"type": "integer"}, "the photo"),
                ],
                security=True,
            )
        },
        "/events": {
            "get": _op(
                "the dispatchers' queue page (HTML; its script asks for a token)",
                {"200": {"description": "the page", "content": {"text/html": {}}}},
            )
        },
        **_open311(),
    }


def _open311() -> dict:
    t, types = "Open311 GeoReport v2", ("application/json", "text/xml")
    resp = {"error_schema": OPEN311_ERROR, "types": types}
    post = {
        "type": "object",
        "required": ["service_code"],
        "properties": {k: {"type": "number"} if k in ("lat", "long") else {"type": "string"} for k in POST_KEYS},
    }
    return {
        "/open311/v2/services.{fmt}": {
            "get": _op(
                "every matter as a service", _resp("services", {"type": "array"}, errors=(), **resp), [FMT], tag=t
            )
        },
        "/open311/v2/services/{code}.{fmt}": {
            "get": _op(
                "a service's attributes",
                _resp("the definition", errors=(404,), **resp),
                [
                    _p("code", {"type": "string"}, "service_code"),
                    FMT,
                ],
                tag=t,
            )
        },
        "/open311/v2/requests.{fmt}": {
            "get": _op(
                "service requests by the spec's filters and page/page_size",
                _resp("requests", {"type": "array"}, errors=(400,), **resp),
                [
                    FMT,
                    *(
                        _q(k, {"type": "string"}, k)
                        for k in (
                            "service_request_id",
                            "service_code",
                            "start_date",
                            "end_date",
                            "status",
                            "jurisdiction_id",
                        )
                    ),
                    _q("page", {"type": "integer", "minimum": 1}, "page"),
                    _q("page_size", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
                ],
                tag=t,
            ),
            "post": _op(
                "file a request (api_key: an ingest token)",
                _resp(
                    "[{service_request_id, service_notice, account_id, token}]",
                    {"type": "array"},
                    status="201",
                    errors=(400, 403),
                    **resp,
                ),
                [FMT],
                body={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": post}}},
                tag=t,
            ),
        },
        "/open311/v2/requests/{case_id}.{fmt}": {
            "get": _op(
                "one request", _resp("a one-item list", {"type": "array"}, errors=(404,), **resp), [CASE, FMT], tag=t
            )
        },
        "/open311/v2/tokens/{token}.{fmt}": {
            "get": _op(
                "the request a token stands for",
                _resp("[{service_request_id, token}]", {"type": "array"}, errors=(404,), **resp),
                [
                    _p("token", {"type": "string"}, "the token from POST requests"),
                    FMT,
                ],
                tag=t,
            )
        },
    }
