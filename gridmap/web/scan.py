"""The page a QR code on a wall opens: ``/g/<code>?s=<signature>`` (``&k=b|u`` for buildings and unit
entrances).  Public, no login, Chinese first, phone-sized, no script or font from elsewhere.

A link that is malformed, forged, copied to another grid or out of date gets a page that says so
(400/403/404) and files nothing.  The report and call endpoints answer JSON.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify, render_template, request, url_for

from ..domain import scan as rules
from ..errors import GridmapError, InputError
from ..services import scan as service
from . import params
from .auth import public
from .context import centre, engine
from .privacy import public_page

bp = Blueprint("scan", __name__, template_folder="templates")
#: The whole request may carry the form and one photo, a little over the photo limit.
MAX_REQUEST = rules.MAX_PHOTO + 64 * 1024
#: The report route and its body limit, for the server's guard (its own limit may be lower).
UPLOAD = (re.compile(r"/g/[^/]+/report"), MAX_REQUEST)
#: What a signed link carries: signature, kind (b, u; g when absent), key version.
LINK_ARGS = ("s", "k", "v")
#: The report form's fields (the photo comes as a file).
FORM_FIELDS = ("text", "matter", "phone", "lon", "lat")


def _link_args() -> dict:
    return {k: request.args[k] for k in LINK_ARGS if k in request.args}


def _who() -> dict:
    """What tells one phone from another for the limits (kept only as a keyed pseudonym)."""
    return {"remote": request.remote_addr or "", "agent": request.headers.get("User-Agent", "")}


def public_matters() -> list[tuple[str, str]]:
    """The matters a resident may choose (code, name): the catalogue's ``public`` list; when it is
    empty the page shows no choice and its reports are kept ``reported`` without a matter (outside
    the dispatchers' queue, which lists cases with a matter)."""
    return centre().catalogue.public_matters()


@bp.get("/g/<code>")
@public
def page(code: str):
    """The scanned page; a clear error page when the link cannot be trusted or is out of date."""
    try:
        params.known(*LINK_ARGS)
        data = service.open_page(engine(), code, request.args)
    except GridmapError as exc:
        return render_template("scan.html", error=exc.message, page=None), exc.status
    public_page(data["people"], names=("name",), phones=("phone",))  # the same masks for everyone
    public_page(data["orgs"], names=("secretary",))
    args = _link_args()
    config = {
        "call_url": url_for("scan.call", code=code, **args),
        "min_text": rules.MIN_TEXT,
        "max_photo": rules.MAX_PHOTO,
    }
    html = render_template(
        "scan.html",
        page=data,
        error=None,
        matters=public_matters(),
        js_config=config,
        report_url=url_for("scan.report", code=code, **args),
        max_text=rules.MAX_TEXT,
        max_photo_mb=rules.MAX_PHOTO // 1048576,
    )
    return html, 200, {"Cache-Control": "no-store", "Content-Language": "zh-CN"}


@bp.post("/g/<code>/report")
@public
def report(code: str):
    """File a report (multipart: ``text``, optional ``matter``, ``photo``, ``phone``, ``lon``/``lat``)."""
    request.max_content_length = MAX_REQUEST
    params.known(*LINK_ARGS)
    form = params.form(FORM_FIELDS)
    photo = request.files.get("photo")
    data = photo.read() if photo and photo.filename else None
    result = service.submit(centre(), code, request.args, form, data, **_who())
    return jsonify(result), 201


@bp.post("/g/<code>/call")
@public
def call(code: str):
    """The ``tel:`` link of one person serving this place (``post``: the id on the page)."""
    params.known(*LINK_ARGS, "post")
    post = params.integer("post", None, 1, 2**63 - 1)
    if post is None:
        raise InputError("post must be the number of a person on the page")
    limiter = current_app.extensions.setdefault("gridmap.call_limiter", service.CallLimiter())
    return jsonify({"tel": service.call_number(engine(), code, request.args, post, **_who(), limiter=limiter)})
