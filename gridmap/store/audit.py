"""The edit log: every write says who, when, what, why, and which grid codes it touched.

This is the only module that writes ``edit_log``; a grid's history finds its entries by ``codes``.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def log(conn: Connection, actor: str, action: str, reason: str | None, detail: dict, codes=()) -> int:
    """Write one entry on the caller's transaction; its id.  ``codes``: the grids the write closed,
    opened or re-parented (empty for writes that change no grid)."""
    return conn.execute(
        sa.text("INSERT INTO edit_log (actor, action, reason, detail, codes) VALUES (:a, :b, :r, :d, :c) RETURNING id"),
        {
            "a": actor,
            "b": action,
            "r": reason,
            "d": json.dumps(detail, ensure_ascii=False, default=str),
            "c": sorted(set(codes)),
        },
    ).scalar_one()


def entries_for(conn: Connection, code: str) -> list[dict]:
    """Every logged write that touched grid ``code``, oldest first."""
    rows = (
        conn.execute(
            sa.text("""
        SELECT id, at, actor, action, reason, codes FROM edit_log
        WHERE codes @> ARRAY[CAST(:code AS text)] ORDER BY at, id"""),
            {"code": code},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def entry(conn: Connection, edit_id: int) -> dict | None:
    row = (
        conn.execute(
            sa.text("SELECT id, at, actor, action, reason, detail FROM edit_log WHERE id = :i"), {"i": edit_id}
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
