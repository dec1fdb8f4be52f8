"""What a report must say to become a case, from any channel (JSON API, map page, hotline import,
Open311): checked into one :class:`Report`, or InputError naming the field.  Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ...errors import InputError
from .. import values
from ..lookup import SWAPPED, looks_swapped
from .catalogue import Catalogue

#: Where reports come from: the 12345 hotline, the 郑好办 app's 随手拍, the WeChat mini-program, grid
#: workers on patrol, a grid's QR code, Open311 clients, the map page, anything else.
CHANNELS = ("hotline", "app", "wechat", "patrol", "qr", "open311", "map", "api")
MAX_TEXT = values.TEXT_MAX  # report texts' limit everywhere (domain/values.py)
#: At most this many media URLs and attributes on one report.
MAX_MEDIA = 10
MAX_ATTRIBUTES = 50
#: Names of frames whose lon/lat are degrees (anything else, e.g. EPSG:4547 metres: finite numbers).
DEGREES = ("wgs84", "gcj02", "bd09", "cgcs2000", "crs84", "4326", "4490", "epsg:4326", "epsg:4490")
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


def _number(value, key: str, bound: float) -> float:
    """A finite number (JSON number or numeric text, as forms send) of at most ``bound`` in absolute value."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"{key} must be a number, got {values.shown(value)}") from None
    return values.number(value, key, -bound, bound)


def _point(lon, lat, degrees: bool) -> tuple[float | None, float | None]:
    """``lon``, ``lat`` as numbers (both None when absent); in degrees, a point of China given
    latitude first is named as the lookup names it (:data:`~gridmap.domain.lookup.SWAPPED`)."""
    if lon is None:
        return None, None
    if not degrees:
        return _number(lon, "lon", 1e8), _number(lat, "lat", 1e8)
    try:
        swapped = looks_swapped(float(lon), float(lat))
    except (TypeError, ValueError, OverflowError):
        swapped = False  # not numbers: named below
    if swapped:
        raise InputError(f"{SWAPPED}: lon={values.shown(lon)}, lat={values.shown(lat)}")
    return _number(lon, "lon", 180), _number(lat, "lat", 90)


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
        raise InputError(f"unknown matter {values.shown(matter)} (GET /api/v1/matters lists them)")
    lon, lat = body.get("lon"), body.get("lat")
    if (lon is None) != (lat is None):
        raise InputError("lon and lat must be given together")
    crs = values.text(body.get("crs"), "crs", required=False)
    address = values.text(body.get("address"), "address", required=body.get("address") is not None)
    if lon is None and address is None:
        raise InputError("a location is required: lon and lat, or address")
    degrees = crs is None or crs.lower() in DEGREES
    text = values.text(body.get("text"), "text", max_len=MAX_TEXT, required=False) or ""
    channel = check_channel(body.get("channel", "api"))
    reported = body.get("reported_at")
    if reported is not None:
        try:
            reported = datetime.fromisoformat(values.text(reported, "reported_at"))
        except ValueError:
            raise InputError(
                f"reported_at must be an ISO 8601 time with its zone, got {values.shown(reported)}"
            ) from None
        if reported.tzinfo is None:
            raise InputError(
                f"reported_at must state its time zone (e.g. +08:00), got {values.shown(body['reported_at'])}"
            )
    contact = check_contact(body.get("contact"))
    media = check_media_urls(body.get("media_urls"))
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InputError("attributes must be an object")
    if len(attributes) > MAX_ATTRIBUTES:
        raise InputError(f"attributes has {len(attributes)} entries; at most {MAX_ATTRIBUTES} are allowed")
    for key, value in attributes.items():
        values.text(key, "an attribute's name")
        if isinstance(value, str):
            values.text(value, f"attributes.{key}", max_len=values.TEXT_MAX, required=False)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values.number(value, f"attributes.{key}")
        elif value is not None and not isinstance(value, bool):
            raise InputError(f"attributes.{key} must be text, a number or true/false, got {values.shown(value)}")
    external = body.get("external_id")
    if isinstance(external, int) and not isinstance(external, bool):
        external = str(external)
    return Report(
        matter,
        *_point(lon, lat, degrees),
        crs,
        address,
        text,
        channel,
        values.text(external, "external_id", required=False),
        reported,
        contact,
        media,
        attributes,
    )


def check_media_urls(value) -> tuple[str, ...]:
    """At most :data:`MAX_MEDIA` http(s) URLs of at most ``values.TEXT_MAX`` characters each."""
    media = value or []
    if not isinstance(media, list) or any(
        not isinstance(u, str) or not u.lower().startswith(("http://", "https://")) for u in media
    ):
        raise InputError("media_urls must be a list of http(s) URLs")
    if len(media) > MAX_MEDIA:
        raise InputError(f"media_urls has {len(media)} URLs; at most {MAX_MEDIA} are allowed")
    return tuple(values.text(u, "a media URL", max_len=values.TEXT_MAX) for u in media)


def check_channel(value) -> str:
    """A channel of :data:`CHANNELS`; InputError naming them otherwise."""
    if value not in CHANNELS:
        raise InputError(f"channel {value!r} unknown (choose from {', '.join(CHANNELS)})")
    return value


def check_contact(value) -> dict:
    """A reporter's contact (some of :data:`CONTACT_KEYS`, as text of at most ``values.NAME_MAX``
    characters; a phone may come as a number); InputError naming the field otherwise."""
    contact = value or {}
    if not isinstance(contact, dict) or set(contact) - set(CONTACT_KEYS):
        raise InputError(f"contact must be an object with some of: {', '.join(CONTACT_KEYS)}")
    out = {}
    for key, item in contact.items():
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        item = values.text(item, f"contact.{key}", required=False)
        if item is not None:
            out[key] = item
    return out
