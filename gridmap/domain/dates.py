"""As-of dates: the ``at=`` / ``--at`` of every read of past versions."""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import InputError


def parse_at(value: str | None) -> datetime | None:
    """An ISO date or datetime (UTC when no zone is given); InputError when malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):  # from a JSON body
        raise InputError(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
