"""The grid change log (``grid_change``, migration 0009): which grid codes each epoch changed."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: Logged for TRUNCATE: everything changed.
EVERYTHING = "*"


def codes_since(conn: Connection, epoch: int, until: int) -> set[str] | None:
    """Codes changed after ``epoch`` up to ``until``; None when everything may have (a TRUNCATE, or
    the log no longer reaches back to ``epoch``)."""
    rows = conn.execute(
        sa.text("SELECT DISTINCT code FROM grid_change WHERE epoch > :e AND epoch <= :u"), {"e": epoch, "u": until}
    ).scalars()
    codes = set(rows)
    if EVERYTHING in codes:
        return None
    oldest = conn.execute(sa.text("SELECT min(id), min(epoch) FROM grid_change")).one()
    if oldest[0] is not None and oldest[0] > 1 and oldest[1] > epoch + 1:  # pruned past the index's epoch
        return None
    return codes
