"""Every request parameter parsed in one place, one behaviour per kind, so every route says the same
thing about the same mistake (pg_featureserv's ``param.go`` is the model).

Query parameters: :func:`known` (unknown keys), :func:`integer`, :func:`number` (finite, ranged),
:func:`flag` (true/false/1/0), :func:`choice`, :func:`bbox`, :func:`basemap_crs`, :func:`at`.
JSON bodies: :func:`json_body`, :func:`body_keys`, :func:`body_int`, :func:`body_bool`, :func:`body_str`.
Every mistake is an InputError (one line, a 400 through the app's one error handler).
"""

from __future__ import annotations

import math
from datetime import datetime

from flask import request

from ..domain.dates import parse_at
from ..errors import InputError

#: Frames a response can be drawn in for a base map (RFC 7946 lon/lat, or GCJ-02 for Chinese tiles).
BASEMAP_CRS = ("wgs84", "gcj02")
FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _arg(name: str) -> str | None:
    """The query parameter ``name``; None when absent or empty."""
    value = request.args.get(name)
    return None if value in (None, "") else value


def _unknown(given, allowed, what: str) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(f"unknown {what} {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def known(*allowed: str) -> None:
    """400 for a query parameter the route does not define."""
    _unknown(request.args, allowed, "query parameter")


def integer(name: str, default: int | None, lo: int, hi: int) -> int | None:
    """Query parameter ``name`` as a whole number in ``lo..hi`` (absent or empty: ``default``)."""
    value = _arg(name)
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {value!r}") from None
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
        raise InputError(f"{name} must be a number, got {value!r}")
    if not lo <= x <= hi:
        raise InputError(f"{name} must be between {lo:g} and {hi:g}, got {value}")
    return x


def flag(name: str, default: bool | None = None) -> bool | None:
    """Query parameter ``name`` as true/false (also 1/0, any case); absent or empty: ``default``."""
    value = _arg(name)
    if value is None:
        return default
    if value.lower() not in FLAGS:
        raise InputError(f"{name} must be true or false, got {value!r}")
    return FLAGS[value.lower()]


def choice(name: str, allowed) -> str | None:
    """Query parameter ``name``, one of ``allowed`` (None when absent or empty)."""
    value = _arg(name)
    if value is not None and value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
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
        raise InputError(f"{name} must be 4 numbers minlon,minlat,maxlon,maxlat (or 6 with heights), got {text!r}")
    x0, y0, x1, y1 = values if len(values) == 4 else (values[0], values[1], values[3], values[4])
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise InputError(f"{name} must be in lon/lat degrees (lon -180..180, lat -90..90), got {text!r}")
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
        raise InputError(f"{name} must be wgs84 or gcj02 (the base map's frame), got {value!r}")
    return value


def at(name: str = "at", value=None) -> datetime | None:
    """``at=``: an ISO date or date-time (UTC when no zone is given); None when absent.  ``value``: the
    same from a JSON body instead of the query string."""
    try:
        return parse_at(request.args.get(name) if value is None else value)
    except InputError as exc:
        raise InputError(f"{name}: {exc.message}") from None


CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def crs84(name: str) -> None:
    """``crs``/``bbox-crs`` of OGC API – Features (clients such as GDAL send them when a collection names
    its storage CRS): only CRS84, the one CRS served there."""
    value = request.args.get(name)
    if value is not None and value.strip("<>") not in (CRS84, "OGC:CRS84"):
        raise InputError(f"{name} must be {CRS84} (the only CRS served), got {value!r}")


def _instant(text: str) -> datetime:
    try:
        return parse_at(text)
    except InputError:
        raise InputError(
            f"datetime: {text!r} is not an RFC 3339 date-time such as 2026-01-31T08:00:00Z, "
            f"nor an interval such as 2026-01-01T00:00:00Z/.."
        ) from None


def datetime_param(*, instant_only: bool = False):
    """OGC ``datetime=``: (instant, None), (None, (start, end)) with None for an open end, or (None, None)."""
    text = request.args.get("datetime")
    if text is None:
        return None, None
    if "/" not in text:
        if text in ("", ".."):
            raise InputError(f"datetime: {text!r} is neither an instant nor an interval")
        return _instant(text), None
    if instant_only:
        raise InputError(f"datetime must be an instant here (an item is one version), got the interval {text!r}")
    parts = text.split("/")
    if len(parts) != 2:
        raise InputError(f"datetime: an interval has one '/', got {text!r}")
    start, end = (None if p in ("", "..") else _instant(p) for p in parts)
    if start is not None and end is not None and start > end:
        raise InputError(f"datetime: the interval {text!r} ends before it starts")
    return None, (start, end)


# --- JSON bodies ----------------------------------------------------------------------------


def json_body(kind: type | tuple, hint: str):
    """The request's JSON body when it is a ``kind`` (dict and/or list); InputError ``hint`` otherwise."""
    body = request.get_json(silent=True)
    if not isinstance(body, kind):
        raise InputError(hint)
    return body


def body_keys(body: dict, allowed) -> None:
    """400 for a field of a JSON object body the route does not define."""
    _unknown(body, allowed, "field")


def body_int(body: dict, key: str, default: int | None = None) -> int | None:
    """Field ``key`` as a whole number (absent or null: ``default``)."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{key} must be a whole number, got {value!r}")
    return value


def body_bool(body: dict, key: str, default: bool = False) -> bool:
    """Field ``key`` as true or false (absent: ``default``)."""
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {value!r}")
    return value


def body_str(body: dict, key: str) -> str | None:
    """Field ``key`` as a string (absent or null: None)."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{key} must be a string, got {value!r}")
    return value
