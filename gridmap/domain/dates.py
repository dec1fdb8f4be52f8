"""Dates and times: the ``at=`` / ``--at`` of every read of past versions, and the one way every
time is shown or exported: ISO 8601 with its offset, in the office's zone (``Settings.timezone``,
GRIDMAP_TZ, default Asia/Shanghai).

The database session runs in the office zone too (:func:`gridmap.store.db.engine`), so times read
from PostgreSQL already carry the office offset; :func:`iso` converts the others.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import lazy_loader

from ..errors import InputError

pd = lazy_loader.load("pandas")

#: The office zone when GRIDMAP_TZ is unset (Zhengzhou).
DEFAULT_TIMEZONE = "Asia/Shanghai"


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; InputError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r}: give an IANA name such as Asia/Shanghai") from None


def iso(value, tz: str = DEFAULT_TIMEZONE) -> str | None:
    """``value`` (an aware datetime or Timestamp; None/NaT) as ISO 8601 in zone ``tz`` with its offset:
    ``2026-11-29T13:05:00.123456+08:00`` (microseconds kept: a version's valid_from is a usable at=)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if value.tzinfo is None:  # gridmap stores aware times only; a naive one is UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone(tz)).isoformat()


def iso_column(values: pd.Series, tz: str = DEFAULT_TIMEZONE) -> pd.Series:
    """A column of times as :func:`iso` text (None for missing)."""
    return pd.Series([iso(v, tz) for v in values], index=values.index, dtype=object)


def parse_at(value: str | None, tz: str = DEFAULT_TIMEZONE, *, end_of_day: bool = True) -> datetime | None:
    """An ISO date or date-time; InputError when malformed.  A date alone is that day in the office zone
    ``tz``: its last instant (``at=2026-12-01``: as the day ended, so today's date shows today's grids),
    or its first with ``end_of_day=False`` (the start of a ``since`` range).  A date-time without a
    zone is office time, as in :func:`parse_instants`."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):  # from a JSON body
        raise InputError(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None:
        clock = time.max if end_of_day else time.min
        return datetime.combine(day, clock, tzinfo=zone(tz))
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00") from None
    return at if at.tzinfo else at.replace(tzinfo=zone(tz))


def parse_instants(texts, tz: str = DEFAULT_TIMEZONE) -> tuple[pd.Series, list[int]]:
    """ISO texts as UTC Timestamps (NaT for missing) and the positions of the unreadable ones.  A time
    without a zone is office time (``tz``): a hotline export says 14:05, meaning 14:05 in the office."""
    out, bad = [], []
    for i, text in enumerate(texts):
        text = None if text is None or pd.isna(text) else str(text).strip()
        if not text:
            out.append(pd.NaT)
            continue
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            out.append(pd.NaT)
            bad.append(i)
            continue
        out.append(pd.Timestamp(at if at.tzinfo else at.replace(tzinfo=zone(tz))).tz_convert(UTC))
    return pd.Series(out, dtype="datetime64[ns, UTC]"), bad
