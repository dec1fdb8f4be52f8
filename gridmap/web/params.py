"""Every request parameter parsed in one place, one behaviour per kind, so every route says the same
thing about the same mistake (pg_featureserv's ``param.go`` is the model).

Query parameters: :func:`known` (unknown keys), :func:`integer`, :func:`number` (finite, ranged),
:func:`flag` (true/false/1/0), :func:`choice`, :func:`bbox`, :func:`basemap_crs`, :func:`at`.
JSON bodies: :func:`json_body` (strict: no NaN or Infinity, numbers that fit a float, nesting at most
:data:`MAX_DEPTH`), :func:`body_keys`, :func:`body_int`, :func:`body_bool`, :func:`body_str`.
Values follow the rules of :mod:`gridmap.domain.values` (lengths, ranges, code formats), shared with
edit files read by the CLI.  Every mistake is an InputError (one line, a 400 through the app's one
error handler) naming the field and showing at most a short prefix of the value.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import orjson
from flask import request

from ..domain import values
from ..domain.dates import parse_at
from ..domain.values import shown
from ..errors import InputError
from .context import settings

#: Deepest nesting of a JSON body (a GeoJSON MultiPolygon needs 4 inside its object).
MAX_DEPTH = 32

#: Frames a response can be drawn in for a base map (RFC 7946 lon/lat, or GCJ-02 for Chinese tiles).
BASEMAP_CRS = ("wgs84", "gcj02")
FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _arg(name: str) -> str | None:
    """The query parameter ``name``; None when absent or empty."""
    value = request.args.get(name)
    return None if value in (None, "") else value


def _unknown(given, allowed, what: str) -> None:
    unknown = sorted(set(given) - set(allowed), key=str)  # a multipart part without a name has the key None
    if unknown:
        raise InputError(f"unknown {what} {shown(unknown[0])} (known: {', '.join(sorted(allowed))})")


def known(*allowed: str) -> None:
    """400 for a query parameter the route does not define."""
    _unknown(request.args, allowed, "query parameter")


def text(name: str, max_len: int = values.NAME_MAX) -> str | None:
    """Query parameter ``name`` as stripped text of at most ``max_len`` characters (absent or blank: None)."""
    return values.text(request.args.get(name), name, max_len=max_len, required=False)


def code(name: str, level: str | None = None) -> str | None:
    """Query parameter ``name`` as a grid code of ``level``'s format (any level's when None; absent: None)."""
    value = _arg(name)
    return None if value is None else values.code(value.strip(), name, level)


def form(allowed) -> dict:
    """The request's form fields (multipart or urlencoded) as stripped text of at most
    :data:`values.TEXT_MAX` characters (blank: None); 400 for a field the route does not define."""
    _unknown(request.form, allowed, "form field")
    return {k: values.text(v, k, max_len=values.TEXT_MAX, required=False) for k, v in request.form.items()}


def integer(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """Query parameter ``name`` as a whole number in ``lo..hi`` (absent or empty: ``default``)."""
    value = _arg(name)
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {shown(value)}") from None
    if not lo <= n <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, got {n}")
    return n


def number(name: str, default: float | None, lo: float = -math.inf, hi: float = math.inf) -> float | None:
    """Query parameter ``name`` as a finite number in ``lo..hi`` (absent or empty: ``default``)."""
    value = _arg(name)
    if value is None:
        return default
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x):
        raise InputError(f"{name} must be a number, got {shown(value)}")
    if not lo <= x <= hi:
        raise InputError(f"{name} must be between {lo:g} and {hi:g}, got {shown(value)}")
    return x


def flag(name: str, default: bool | None = None) -> bool | None:
    """Query parameter ``name`` as true/false (also 1/0, any case); absent or empty: ``default``."""
    value = _arg(name)
    if value is None:
        return default
    if value.lower() not in FLAGS:
        raise InputError(f"{name} must be true or false, got {shown(value)}")
    return FLAGS[value.lower()]


def choice(name: str, allowed) -> str | None:
    """Query parameter ``name``, one of ``allowed`` (None when absent or empty)."""
    value = _arg(name)
    if value is not None and value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {shown(value)}")
    return value


def bbox(name: str = "bbox") -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` (or the 6-number 3D form, heights ignored) in lon/lat degrees:
    finite, lon -180..180, lat -90..90, min <= max; None when absent."""
    text = request.args.get(name)
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (4, 6) or not all(math.isfinite(v) for v in values):
        raise InputError(f"{name} must be 4 numbers minlon,minlat,maxlon,maxlat (or 6 with heights), got {shown(text)}")
    x0, y0, x1, y1 = values if len(values) == 4 else (values[0], values[1], values[3], values[4])
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise InputError(f"{name} must be in lon/lat degrees (lon -180..180, lat -90..90), got {shown(text)}")
    if y0 > y1:
        raise InputError(f"{name}: minlat {y0:g} is above maxlat {y1:g}")
    if x0 > x1:
        raise InputError(
            f"{name}: minlon {x0:g} is east of maxlon {x1:g} (a bbox across the antimeridian is not supported)"
        )
    return x0, y0, x1, y1


def basemap_crs(default: str = "wgs84", name: str = "crs") -> str:
    """``crs=`` of a response drawn on a base map: wgs84 or gcj02 (absent: ``default``)."""
    value = _arg(name) or default
    if value not in BASEMAP_CRS:
        raise InputError(f"{name} must be wgs84 or gcj02 (the base map's frame), got {shown(value)}")
    return value


def at(name: str = "at", value=None, *, end_of_day: bool = True) -> datetime | None:
    """``at=``: an ISO date or date-time (:func:`gridmap.domain.dates.parse_at`: a date alone is the end
    of that day in the office zone, or its start with ``end_of_day=False``; a time without a zone is
    office time); None when absent.  ``value``: the same from a JSON body instead of the query string."""
    try:
        return parse_at(request.args.get(name) if value is None else value, settings().timezone, end_of_day=end_of_day)
    except InputError as exc:
        raise InputError(f"{name}: {exc.message}") from None


CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def crs84(name: str) -> None:
    """``crs``/``bbox-crs`` of OGC API – Features (clients such as GDAL send them when a collection names
    its storage CRS): only CRS84, the one CRS served there."""
    value = request.args.get(name)
    if value is not None and value.strip("<>") not in (CRS84, "OGC:CRS84"):
        raise InputError(f"{name} must be {CRS84} (the only CRS served), got {shown(value)}")


def _instant(text: str, *, end_of_day: bool = True) -> datetime:
    try:
        return parse_at(text, settings().timezone, end_of_day=end_of_day)
    except InputError:
        raise InputError(
            f"datetime: {shown(text)} is not an RFC 3339 date-time such as 2026-01-31T08:00:00Z, "
            f"nor an interval such as 2026-01-01T00:00:00Z/.."
        ) from None


def datetime_param(*, instant_only: bool = False):
    """OGC ``datetime=``: (instant, None), (None, (start, end)) with None for an open end, or (None, None)."""
    text = request.args.get("datetime")
    if text is None:
        return None, None
    if "/" not in text:
        if text in ("", ".."):
            raise InputError(f"datetime: {shown(text)} is neither an instant nor an interval")
        return _instant(text), None
    if instant_only:
        raise InputError(f"datetime must be an instant here (an item is one version), got the interval {shown(text)}")
    parts = text.split("/")
    if len(parts) != 2:
        raise InputError(f"datetime: an interval has one '/', got {shown(text)}")
    start, end = (None if p in ("", "..") else _instant(p, end_of_day=i == 1) for i, p in enumerate(parts))
    if start is not None and end is not None and start > end:
        raise InputError(f"datetime: the interval {shown(text)} ends before it starts")
    return None, (start, end)


# --- JSON bodies ----------------------------------------------------------------------------


def json_body(kind: type | tuple, hint: str):
    """The request's JSON body when it is a ``kind`` (dict and/or list); InputError ``hint`` otherwise,
    or naming what is wrong with the JSON.  Parsed by orjson (a 10,000-point lookup batch in a few
    milliseconds, not tens); what orjson refuses is parsed again strictly to say why."""
    if not request.is_json:
        raise InputError(hint)
    data = request.get_data(cache=True)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = parse_json(data)
    else:
        _check_depth(body)
    if not isinstance(body, kind):
        raise InputError(hint)
    return body


def parse_json(data: bytes):
    """Strict JSON: InputError for malformed text, NaN/Infinity, numbers beyond a float, or nesting
    deeper than :data:`MAX_DEPTH`."""
    try:
        body = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise InputError(f"the JSON body is nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError:
        raise InputError("the JSON body is not UTF-8 text") from None
    except ValueError as exc:  # JSONDecodeError, and ours: its message names the place, not the text
        raise InputError(f"the body is not valid JSON: {str(exc)[:120]}") from None
    _check_depth(body)
    return body


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"the number {text[:40]} is beyond a float's range")
    return x


def _check_depth(body) -> None:
    level, depth = [body] if isinstance(body, (dict, list)) else [], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise InputError(f"the JSON body is nested more than {MAX_DEPTH} levels deep")
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]


def body_keys(body: dict, allowed) -> None:
    """400 for a field of a JSON object body the route does not define."""
    _unknown(body, allowed, "field")


def body_int(body: dict, key: str, default: int | None = None, lo: int = -(2**63), hi: int = 2**63 - 1) -> int | None:
    """Field ``key`` as a whole number in ``lo..hi`` (absent or null: ``default``)."""
    value = body.get(key)
    if value is None:
        return default
    return values.whole(value, key, lo, hi)


def body_bool(body: dict, key: str, default: bool = False) -> bool:
    """Field ``key`` as true or false (absent: ``default``)."""
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {shown(value)}")
    return value


def body_code(body: dict, key: str, level: str | None = None) -> str | None:
    """Field ``key`` as a grid code of ``level``'s format (absent or null: None)."""
    value = body.get(key)
    return None if value is None else values.code(value, key, level)


def body_str(body: dict, key: str, max_len: int = values.TEXT_MAX, *, required: bool = False) -> str | None:
    """Field ``key`` as stripped text of at most ``max_len`` characters (absent, null or blank: None,
    unless ``required``)."""
    return values.text(body.get(key), key, max_len=max_len, required=required)


#: The media type of a Parquet answer (``Accept`` of ``POST /api/v1/lookup``).
PARQUET = "application/vnd.apache.parquet"
BATCH_FORMATS = ("objects", "columns", "parquet")


def batch_format(options: dict) -> str:
    """How a batch lookup answers: ``parquet`` when the client accepts only that, else ``format``
    (body, then query string), default ``objects``; InputError for another value."""
    if request.accept_mimetypes.best == PARQUET:
        return "parquet"
    value = options.get("format") or request.args.get("format") or "objects"
    if value not in BATCH_FORMATS:
        raise InputError(f"format must be one of {', '.join(BATCH_FORMATS)}, got {str(value)[:40]!r}")
    return value


def point_columns(body: dict):
    """(lon, lat, ids, problems) of a columnar batch ``{"lon": [..], "lat": [..], "id"?: [..]}``."""
    body_keys(body, ("lon", "lat", "id", "crs", "at", "format"))
    lon, lat, ids = body.get("lon"), body.get("lat"), body.get("id")
    if not isinstance(lon, list) or not isinstance(lat, list) or len(lon) != len(lat):
        raise InputError("lon and lat must be lists of the same length (or send points: [{lon, lat}, ...])")
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(lon)):
        raise InputError("id must be a list as long as lon and lat")
    problems = np.full(len(lon), None, dtype=object)
    values = [_floats(lon), _floats(lat)]
    if not (_all_numbers(lon) and _all_numbers(lat)):  # the rare bad batch: find its rows
        bad = [i for i, (a, b) in enumerate(zip(lon, lat)) if not _is_number(a) or not _is_number(b)]
        problems[bad] = "lon and lat must be numbers"
    return values[0], values[1], ids if ids is not None else [None] * len(lon), problems


def _all_numbers(column: list) -> bool:
    """Every entry an int or a float (not a bool, a string or null), checked at C speed."""
    return set(map(type, column)) <= {int, float}


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _floats(column: list) -> np.ndarray:
    try:
        return np.array(column, dtype="float64")
    except (TypeError, ValueError):  # some entry is not a number: those rows fail, not the request
        return np.array([float(v) if _is_number(v) else float("nan") for v in column], dtype="float64")
