"""Open311 GeoReport v2 (``/open311/v2/…``), as the spec says: services and their definitions,
requests filed (form-urlencoded, ``api_key`` = an ingest token or a staff token) and listed, one
request, tokens; every answer in ``.json`` or ``.xml``; errors as ``[{code, description}]`` with
400/403/404.  Descriptions and media are left out for callers without an event-centre role.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from flask import Blueprint, Response, request

from ..domain import roles
from ..domain.events import open311
from ..errors import GridmapError
from ..services import event_views, events, users
from . import auth, privacy
from .context import centre, engine

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMAT = "<any(json, xml):fmt>"


# --- the spec's two encodings (XML is mandatory in GeoReport v2, JSON optional) --------------------


def _xml_value(parent: ET.Element, key: str, value) -> None:
    el = ET.SubElement(parent, key)
    if isinstance(value, bool):
        el.text = "true" if value else "false"
    elif isinstance(value, list):
        child = key[:-1] if key.endswith("s") else "item"
        for item in value:
            _xml_item(el, child, item)
    elif value is not None:
        el.text = str(value)


def _xml_item(parent: ET.Element, tag: str, item: Mapping) -> None:
    el = ET.SubElement(parent, tag)
    for key, value in item.items():
        _xml_value(el, key, value)


#: Root and item element names of each answer in XML, as the spec's examples have them.
XML_SHAPES = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
    "definition": ("service_definition", None),
}


def encode(payload, shape: str, fmt: str) -> tuple[bytes, str]:
    """(body, content type) of ``payload`` (a list, or a dict for ``definition``) as json or xml."""
    if fmt == "json":
        return json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
    if fmt != "xml":
        raise open311.Open311Error(404, f"format {fmt!r} unknown: use .json or .xml")
    root_tag, item_tag = XML_SHAPES[shape]
    root = ET.Element(root_tag)
    if item_tag is None:
        for key, value in payload.items():
            _xml_value(root, key, value)
    else:
        for item in payload:
            _xml_item(root, item_tag, item)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), "text/xml; charset=utf-8"


def _send(payload, shape: str, fmt: str, status: int = 200) -> Response:
    body, ctype = encode(payload, shape, fmt)
    return Response(body, status=status, content_type=ctype)


@bp.errorhandler(GridmapError)
def _error(exc: GridmapError):
    """Every error of these routes in the spec's shape, in the format the URL asked for."""
    fmt = "xml" if request.path.endswith(".xml") else "json"
    status = exc.status if exc.status in (400, 403, 404) else (400 if exc.status < 500 else exc.status)
    return _send([{"code": status, "description": exc.message}], "errors", fmt, status)


def _caller_role() -> str | None:
    """The role behind ``api_key`` (form or query) or a bearer token, None when neither is sent."""
    key = request.form.get("api_key") or request.args.get("api_key")
    if key:
        found = users.authenticate(engine(), key)
        if found is None or found["refused"]:
            raise open311.Open311Error(
                403, "invalid api_key: use an ingest token (gridmap users add NAME --role ingest)"
            )
        return found["role"]
    return auth.authenticate().role if request.headers.get("Authorization") else None


@bp.get(f"/services.{FORMAT}")
@auth.public
def services(fmt: str):
    """Every matter of the catalogue as a service."""
    return _send(open311.services(centre().catalogue), "services", fmt)


@bp.get(f"/services/<code>.{FORMAT}")
@auth.public
def definition(code: str, fmt: str):
    """A service's attributes; 404 for an unknown code."""
    return _send(open311.definition(centre().catalogue, code), "definition", fmt)


@bp.post(f"/requests.{FORMAT}")
@auth.public
def create(fmt: str):
    """File a request (form fields as the spec names them); 403 without a good api_key."""
    role = _caller_role()
    if role is None:
        raise open311.Open311Error(403, "api_key is required to create a request")
    if not roles.allowed_by_any(role, ("ingest", "viewer")):
        raise open311.Open311Error(403, f"the api_key's role {role} may not create requests")
    got = open311.parse_post(request.form.to_dict(flat=False), centre().catalogue)
    return _send(event_views.create(centre(), got, actor="open311"), "requests", fmt, 201)


@bp.get(f"/requests.{FORMAT}")
@auth.public
def listing(fmt: str):
    """Requests by the spec's filters (and ``page``/``page_size``), newest first."""
    query = open311.parse_query(request.args.to_dict(flat=False), centre().tz)
    personal = privacy.role_sees(_caller_role(), privacy.CASE_READERS)
    return _send(event_views.requests(centre(), query, personal=personal), "requests", fmt)


@bp.get(f"/requests/<int:case_id>.{FORMAT}")
@auth.public
def one(case_id: int, fmt: str):
    """One request as a one-item list; 404 in the spec's shape."""
    personal = privacy.role_sees(_caller_role(), privacy.CASE_READERS)
    return _send(event_views.request(centre(), case_id, personal=personal), "requests", fmt)


@bp.get(f"/tokens/<token>.{FORMAT}")
@auth.public
def token(token: str, fmt: str):
    """The request a token (the reporter key handed out when it was filed) stands for."""
    found = events.case_of_key(centre(), token)
    if found is None:
        raise open311.Open311Error(404, "token not found")
    return _send([{"service_request_id": found, "token": token}], "requests", fmt)
