"""Open311 GeoReport v2 as pure functions: the catalogue as services, cases as service
requests, POST bodies and GET filters checked, errors as the spec's ``[{code, description}]``.  No
HTTP here: the web layer (``web/open311.py``) encodes these as JSON or XML and sends them.

Mapping: a matter is a service (``group`` = its category, ``type`` = realtime); a case is a
service request whose ``status`` is ``open`` until it is closed, assessed, merged or cancelled,
with the loop's stage in ``status_notes`` and the handling department in ``agency_responsible``.
``crs`` (wgs84, gcj02, bd09) is an extension for phones on Chinese map SDKs; the spec's lat/long
are WGS84.  Personal fields (names, phone, e-mail, the description) are the caller's business:
the web layer drops them for callers without a role.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from ...errors import GridmapError, InputError
from .. import values
from .catalogue import Catalogue
from .loop import STATES

CLOSED_STATES = ("closed", "assessed", "merged", "cancelled")
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
POST_KEYS = (
    "api_key",
    "jurisdiction_id",
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
    "crs",
)
MAX_DESCRIPTION = values.TEXT_MAX  # report texts' limit everywhere (domain/values.py)
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000  # the spec's default cap is 1000 requests
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ATTRIBUTE = re.compile(r"attribute\[([^\]]+)\]")


class Open311Error(GridmapError):
    """An Open311 request the spec refuses: ``status`` (400, 403, 404) and its description."""

    code = "open311"

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status

    def body(self) -> list[dict]:
        """The spec's error list."""
        return [{"code": self.status, "description": self.message}]


@dataclass(frozen=True)
class Intake:
    """A checked POST requests body."""

    service_code: str
    lat: float | None = None
    long: float | None = None
    address: str | None = None
    address_id: str | None = None
    crs: str = "wgs84"
    description: str = ""
    media_url: str | None = None
    attributes: dict = field(default_factory=dict)
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    device_id: str | None = None
    account_id: str | None = None


@dataclass(frozen=True)
class Query:
    """Checked GET requests filters (page is 1-based)."""

    ids: tuple[int, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE


def service(matter) -> dict:
    """One entry of ``services``."""
    return {
        "service_code": matter.code,
        "service_name": matter.name,
        "description": matter.description or f"{matter.category}: {matter.name}",
        "metadata": True,
        "type": "realtime",
        "keywords": f"{matter.category}, {matter.name}",
        "group": matter.category,
    }


def services(catalogue: Catalogue) -> list[dict]:
    return [service(m) for m in catalogue.matters.values()]


def definition(catalogue: Catalogue, code: str) -> dict:
    """``services/{code}``: the matter's attributes; 404 for an unknown code."""
    matter = catalogue.matters.get(code)
    if matter is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    attrs = [
        {
            "variable": True,
            "code": a.code,
            "datatype": a.datatype,
            "required": a.required,
            "datatype_description": "" if a.values else f"a {a.datatype}",
            "order": a.order,
            "description": a.description,
            "values": [{"key": k, "name": n} for k, n in a.values],
        }
        for a in catalogue.attributes_for(matter)
    ]
    return {"service_code": code, "attributes": attrs}


def _one(form: Mapping, key: str, max_len: int = values.NAME_MAX) -> str | None:
    """Field ``key`` once, stripped, at most ``max_len`` characters (domain/values.py's rule); None when
    absent or blank."""
    value = form.get(key)
    if isinstance(value, (list, tuple)):
        if len(value) > 1:
            raise Open311Error(400, f"{key} given {len(value)} times")
        value = value[0] if value else None
    value = None if value is None else str(value).strip()
    if value and len(value) > max_len:
        raise Open311Error(400, f"{key} is {len(value)} characters long; at most {max_len} are allowed")
    return value or None


def _coordinate(form: Mapping, key: str, bound: float) -> float | None:
    text = _one(form, key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Open311Error(400, f"{key} must be a number, got {values.shown(text)}") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise Open311Error(400, f"{key} must be between -{bound:g} and {bound:g}, got {values.shown(text)}")
    return value


def parse_post(form: Mapping, catalogue: Catalogue) -> Intake:
    """A POST requests body (form fields; lists for repeated keys) checked against the spec.

    Open311Error 400 naming the first problem: no or unknown service_code, half a point, a bad
    lat/long, no location at all, a missing or bad attribute, an over-long description.
    """
    code = _one(form, "service_code")
    if code is None:
        raise Open311Error(400, "service_code is required")
    matter = catalogue.matters.get(code)
    if matter is None:
        raise Open311Error(400, f"service_code {code!r} not found (see services.json)")
    lat, lon = _coordinate(form, "lat", 90), _coordinate(form, "long", 180)
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long must be given together")
    address, address_id = _one(form, "address_string"), _one(form, "address_id")
    if address_id is not None:  # our requests' address_id is the case's grid code
        try:
            values.code(address_id, "address_id")
        except InputError as exc:
            raise Open311Error(400, exc.message) from None
    if lat is None and address is None:
        raise Open311Error(
            400,
            "a location is required: lat and long, or address_string"
            + (" (address_id, a grid, does not place a request by itself)" if address_id else ""),
        )
    crs = (_one(form, "crs") or "wgs84").lower()
    if crs not in ("wgs84", "gcj02", "bd09"):
        raise Open311Error(400, f"crs must be wgs84, gcj02 or bd09, got {crs!r}")
    description = _one(form, "description", MAX_DESCRIPTION) or ""
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters")
    media = _one(form, "media_url", values.TEXT_MAX)
    if media is not None and not media.lower().startswith(("http://", "https://")):
        raise Open311Error(400, f"media_url must be an http(s) URL, got {values.shown(media)}")
    email = _one(form, "email")
    if email is not None and not _EMAIL.fullmatch(email):
        raise Open311Error(400, f"email {values.shown(email)} is not an e-mail address")
    given = {_ATTRIBUTE.fullmatch(k).group(1): _one(form, k, values.TEXT_MAX) for k in form if _ATTRIBUTE.fullmatch(k)}
    unknown = [k for k in form if k not in POST_KEYS and not _ATTRIBUTE.fullmatch(k)]
    if unknown:
        raise Open311Error(400, f"unknown field {unknown[0]!r}")
    return Intake(
        code,
        lat,
        lon,
        address,
        address_id,
        crs,
        description,
        media,
        _attributes(catalogue, matter, given),
        email,
        _one(form, "phone"),
        _one(form, "first_name"),
        _one(form, "last_name"),
        _one(form, "device_id"),
        _one(form, "account_id"),
    )


def _attributes(catalogue: Catalogue, matter, given: dict) -> dict:
    """``attribute[code]`` values checked against the matter's attributes."""
    wanted = {a.code: a for a in catalogue.attributes_for(matter)}
    for code in given:
        if code not in wanted:
            raise Open311Error(400, f"attribute[{code[: values.SHOWN]}] is not an attribute of service {matter.code}")
    out = {}
    for code, attr in wanted.items():
        value = given.get(code)
        if value is None:
            if attr.required:
                raise Open311Error(400, f"attribute[{code}] is required for service {matter.code}")
            continue
        keys = [k for k, _ in attr.values]
        if attr.datatype == "singlevaluelist" and value not in keys:
            raise Open311Error(400, f"attribute[{code}] must be one of {', '.join(keys)}, got {values.shown(value)}")
        if attr.datatype == "number":
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise Open311Error(400, f"attribute[{code}] must be a finite number, got {values.shown(value)}")
        out[code] = value
    return out


def _when(text: str | None, key: str, tz: ZoneInfo, end: bool) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Open311Error(400, f"{key} must be a W3C date-time like 2026-05-01T08:00:00+08:00, got {text!r}") from None
    if len(text) == 10 and end:  # a bare date as end_date covers that whole day
        value = datetime.combine(date.fromisoformat(text), time.max)
    return value if value.tzinfo else value.replace(tzinfo=tz)


def parse_query(args: Mapping, tz: str = "Asia/Shanghai") -> Query:
    """GET requests filters: service_request_id, service_code, start_date, end_date, status, page, page_size."""
    zone = ZoneInfo(tz)
    ids = []
    for part in (_one(args, "service_request_id") or "").split(","):
        if part.strip():
            if not _ascii_digits(part.strip()) or int(part) >= 2**63:
                raise Open311Error(400, f"service_request_id must be case numbers, got {part.strip()!r}")
            ids.append(int(part))
    codes = tuple(c.strip() for c in (_one(args, "service_code") or "").split(",") if c.strip())
    statuses = tuple(s.strip() for s in (_one(args, "status") or "").split(",") if s.strip())
    for s in statuses:
        if s not in ("open", "closed"):
            raise Open311Error(400, f"status must be open or closed, got {s!r}")
    start, end = (
        _when(_one(args, "start_date"), "start_date", zone, False),
        _when(_one(args, "end_date"), "end_date", zone, True),
    )
    if start and end and end < start:
        raise Open311Error(400, "end_date is before start_date")
    page, size = _whole(args, "page", 1, 10**9), _whole(args, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    unknown = [
        k
        for k in args
        if k
        not in (
            "service_request_id",
            "service_code",
            "start_date",
            "end_date",
            "status",
            "page",
            "page_size",
            "jurisdiction_id",
            "api_key",
        )
    ]
    if unknown:
        raise Open311Error(400, f"unknown parameter {unknown[0]!r}")
    return Query(tuple(ids), codes, start, end, statuses, page, size)


def _ascii_digits(text: str) -> bool:
    """``text`` is 0-9 only: str.isdigit also takes '³' (which int() refuses) and '١' (which it reads)."""
    return text.isascii() and text.isdigit()


def _whole(args: Mapping, key: str, default: int, top: int) -> int:
    text = _one(args, key)
    if text is None:
        return default
    if not _ascii_digits(text) or not 1 <= int(text) <= top:
        raise Open311Error(400, f"{key} must be a whole number from 1 to {top}, got {text!r}")
    return int(text)


def status_of(state: str) -> str:
    """The spec's two statuses for one of the loop's states."""
    return "closed" if state in CLOSED_STATES else "open"


def _stamp(value, tz: ZoneInfo) -> str | None:
    return value.astimezone(tz).isoformat(timespec="seconds") if isinstance(value, datetime) else None


def request(case: Mapping, tz: str = "Asia/Shanghai", *, personal: bool = False) -> dict:
    """A case (a mapping with the store's case fields) as a GeoReport service request.

    ``personal`` False (web/privacy.py's rule says the caller may not read personal data) leaves the
    description, the address the reporter gave and the media empty: report text and addresses may name
    people, as they do in ``/api/v1/reports``.  The spec's fields stay, null.
    """
    zone = ZoneInfo(tz)
    state = case["state"]
    notes = f"{state} ({STATES.get(state, state)})" + (f": {case['note']}" if personal and case.get("note") else "")
    out = {
        "service_request_id": case["id"],
        "status": status_of(state),
        "status_notes": notes,
        "service_name": case.get("matter_name"),
        "service_code": case["matter"],
        "description": case.get("description") if personal else None,
        "agency_responsible": case.get("agency"),
        "service_notice": case.get("notice"),
        "requested_datetime": _stamp(case.get("reported_at"), zone),
        "updated_datetime": _stamp(case.get("updated_at"), zone),
        "expected_datetime": _stamp(case.get("due_at"), zone),
        "address": case.get("address") if personal else None,
        "address_id": case.get("grid_code"),
        "zipcode": None,
        "lat": case.get("lat"),
        "long": case.get("lon"),
        "media_url": case.get("media_url") if personal else None,
    }
    return out
