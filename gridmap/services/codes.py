"""New grid codes: beyond every code ever issued under the parent, so a code is never issued twice.

The database enforces the same rule (migration 0007: ``grid_code`` and its trigger); picking codes
here keeps the refusal from being the normal path.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from ..domain.levels import CODE_SUFFIX, new_codes
from ..store import grids


def issue(conn: Connection, parent_code: str, level: str, n: int) -> list[str]:
    """``n`` fresh codes for ``level`` grids under ``parent_code``. Raises InputError (see new_codes)."""
    suffix, width = CODE_SUFFIX.get(level, ("", 0))
    prefix = parent_code + suffix
    last = grids.last_numbers(conn, [prefix], width)[prefix] if width else 0
    return new_codes(parent_code, level, last, n)


def issue_many(conn: Connection, wanted: dict[str, int], level: str) -> dict[str, list[str]]:
    """Fresh codes for several parents at once (one query): ``{parent_code: n}`` → their codes."""
    suffix, width = CODE_SUFFIX[level]
    last = grids.last_numbers(conn, [p + suffix for p in wanted], width)
    return {p: new_codes(p, level, last[p + suffix], n) for p, n in wanted.items()}
