"""What a report must say to become a case, from any channel (JSON API, map page, hotline import,
Open311): checked into one :class:`Report`, or InputError naming the field.  Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from ...errors import InputError
from .catalogue import Catalogue

#: Where reports come from: the 12345 hotline, the 郑好办 app's 随手拍, the WeChat mini-program, grid
#: workers on patrol, a grid's QR code, Open311 clients, the map page, anything else.
CHANNELS = ("hotline", "app", "wechat", "patrol", "qr", "open311", "map", "api")
MAX_TEXT = 4000
CONTACT_KEYS = ("name", "phone", "email", "account_id", "device_id")
KEYS = (
    "matter",
    "lon",
    "lat",
    "crs",
    "address",
    "text",
    "channel",
    "external_id",
    "reported_at",
    "contact",
    "media_urls",
    "attributes",
)
#: The loop's roles a user's role gives (``reporter`` comes with a case's reporter key, ``system`` is the server).
LOOP_ROLES = {
    "dispatcher": frozenset({"dispatcher"}),
    "planner": frozenset({"dispatcher"}),
    "handler": frozenset({"handler"}),
    "verifier": frozenset({"verifier"}),
    "supervisor": frozenset({"supervisor", "dispatcher"}),
    "admin": frozenset({"dispatcher", "handler", "verifier", "supervisor"}),
}
#: Roles that may read personal data of cases (names, phones, report texts, photos).
PERSONAL_READERS = frozenset(LOOP_ROLES)


@dataclass(frozen=True)
class Report:
    """A checked report: a matter, a location (point or address), the text and who sent it."""

    matter: str
    lon: float | None = None
    lat: float | None = None
    crs: str | None = None
    address: str | None = None
    text: str = ""
    channel: str = "api"
    external_id: str | None = None
    reported_at: datetime | None = None
    contact: dict = field(default_factory=dict)
    media_urls: tuple[str, ...] = ()
    attributes: dict = field(default_factory=dict)


def _number(value, key: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise InputError(f"{key} must be a finite number, got {value!r}")
    return out


def check(body, catalogue: Catalogue) -> Report:
    """A report from a JSON object; InputError naming the first bad or missing field."""
    if not isinstance(body, dict):
        raise InputError("the report must be a JSON object")
    unknown = sorted(set(body) - set(KEYS))
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} (fields: {', '.join(KEYS)})")
    matter = body.get("matter")
    if not isinstance(matter, str) or not matter:
        raise InputError("matter is required: a code from the catalogue (GET /api/v1/matters)")
    if matter not in catalogue.matters:
        raise InputError(f"unknown matter {matter!r} (GET /api/v1/matters lists them)")
    lon, lat = body.get("lon"), body.get("lat")
    if (lon is None) != (lat is None):
        raise InputError("lon and lat must be given together")
    address = body.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise InputError("address must be a non-empty string")
    if lon is None and address is None:
        raise InputError("a location is required: lon and lat, or address")
    text = body.get("text", "")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise InputError(f"text must be a string of at most {MAX_TEXT} characters")
    channel = check_channel(body.get("channel", "api"))
    reported = body.get("reported_at")
    if reported is not None:
        try:
            reported = datetime.fromisoformat(str(reported))
        except ValueError:
            raise InputError(f"reported_at must be an ISO 8601 time with its zone, got {reported!r}") from None
        if reported.tzinfo is None:
            raise InputError(f"reported_at must state its time zone (e.g. +08:00), got {body['reported_at']!r}")
    contact = check_contact(body.get("contact"))
    media = body.get("media_urls") or []
    if not isinstance(media, list) or any(
        not isinstance(u, str) or not u.lower().startswith(("http://", "https://")) for u in media
    ):
        raise InputError("media_urls must be a list of http(s) URLs")
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InputError("attributes must be an object")
    return Report(
        matter,
        None if lon is None else _number(lon, "lon"),
        None if lat is None else _number(lat, "lat"),
        body.get("crs"),
        address.strip() if address else None,
        text,
        channel,
        None if body.get("external_id") is None else str(body["external_id"]),
        reported,
        contact,
        tuple(media),
        attributes,
    )


def check_channel(value) -> str:
    """A channel of :data:`CHANNELS`; InputError naming them otherwise."""
    if value not in CHANNELS:
        raise InputError(f"channel {value!r} unknown (choose from {', '.join(CHANNELS)})")
    return value


def check_contact(value) -> dict:
    """A reporter's contact (some of :data:`CONTACT_KEYS`, as strings); InputError otherwise."""
    contact = value or {}
    if not isinstance(contact, dict) or set(contact) - set(CONTACT_KEYS):
        raise InputError(f"contact must be an object with some of: {', '.join(CONTACT_KEYS)}")
    return {k: str(v) for k, v in contact.items() if v is not None}
