"""Grids as OGC API – Features reads: collection extents, pages of items, one item's version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from ..store import features


def level_extents(eng: Engine) -> dict[str, dict]:
    """Per level: the bbox of its current grids and the span of its versions."""
    with eng.connect() as conn:
        return features.level_extents(conn)


def items(
    eng: Engine, level: str, *, bbox=None, at: datetime | None = None, interval=None, limit: int, offset: int
) -> tuple[int, list[dict]]:
    """(number matched, one page of features) of one level's grid versions."""
    with eng.connect() as conn:
        return features.items(conn, level, bbox=bbox, at=at, interval=interval, limit=limit, offset=offset)


def item(eng: Engine, level: str, code: str, at: datetime | None = None) -> tuple[int, dict] | None:
    """(version id, feature) of grid ``code`` of ``level`` valid at ``at`` (current when None); None
    when there is none."""
    with eng.connect() as conn:
        return features.item(conn, level, code, at)
