"""Staging tables: a distributed import's rows are copied here by many workers, then moved into
their table in one transaction, so the table gets every row of a run or none.

A staging table holds the target's columns (types copied from it) plus ``part`` and ``seq``,
the partition and row it came from: a retried partition replaces its own rows, and the rows
reach the table in file order.  UNLOGGED: it is scratch, rebuilt by a rerun after a crash.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .db import copy_frame

PREFIX = "gridmap_stage_"


def create(conn: Connection, table: str, columns: list[str], extra: dict[str, str] | None = None) -> str:
    """A new staging table for ``columns`` of ``table`` (and ``extra`` columns: name -> type); its name."""
    name = f"{PREFIX}{table}_{uuid.uuid4().hex[:12]}"
    cols = ", ".join(columns)
    conn.execute(sa.text(f"CREATE UNLOGGED TABLE {name} AS SELECT {cols} FROM {table} WITH NO DATA"))
    more = "".join(f", ADD COLUMN {column} {kind}" for column, kind in (extra or {}).items())
    conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN part int NOT NULL, ADD COLUMN seq int NOT NULL{more}"))
    return name


def copy_part(conn: Connection, name: str, columns: list[str], part: int, batches) -> int:
    """Replace partition ``part``'s rows with ``batches`` (frames of ``columns`` and ``seq``), each
    one COPY, on the caller's transaction; the rows copied."""
    conn.execute(sa.text(f"DELETE FROM {name} WHERE part = :part"), {"part": part})
    n = 0
    for frame in batches:
        frame = frame.assign(part=part)
        copy_frame(conn, name, [*columns, "seq", "part"], frame[[*columns, "seq", "part"]])
        n += len(frame)
    return n


def repeated(conn: Connection, name: str, keys: list[str], present: tuple[str, ...] = ()) -> list[tuple]:
    """Remove the staged rows whose ``keys`` (all not null) an earlier row (by part, seq) has too, on
    the caller's transaction; each as (part, seq, the earlier row's part, its seq, then whether each
    column of ``present`` is not null), in file order."""
    cols = ", ".join(keys)
    flags = "".join(f", t.{c} IS NOT NULL" for c in present)
    rows = conn.execute(
        sa.text(f"""
        WITH ranked AS (
            SELECT part, seq, row_number() OVER w AS k, first_value(part) OVER w AS p0, first_value(seq) OVER w AS s0
            FROM {name} WHERE {" AND ".join(f"{k} IS NOT NULL" for k in keys)}
            WINDOW w AS (PARTITION BY {cols} ORDER BY part, seq))
        DELETE FROM {name} t USING ranked r WHERE r.k > 1 AND t.part = r.part AND t.seq = r.seq
        RETURNING r.part, r.seq, r.p0, r.s0{flags}""")
    ).all()
    return sorted(tuple(r) for r in rows)


def repeats(conn: Connection, name: str, key: str) -> list[tuple]:
    """(part, seq, value) of every staged row whose ``key`` (not null) an earlier row (by part, seq)
    has too, in file order; nothing removed."""
    rows = conn.execute(
        sa.text(f"""
        SELECT part, seq, {key} FROM (
            SELECT part, seq, {key}, row_number() OVER (PARTITION BY {key} ORDER BY part, seq) AS k
            FROM {name} WHERE {key} IS NOT NULL) t
        WHERE k > 1 ORDER BY part, seq""")
    ).all()
    return [tuple(r) for r in rows]


def count(conn: Connection, name: str) -> int:
    return conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()


def move_into(conn: Connection, name: str, table: str, columns: list[str]) -> int:
    """Insert the staged rows into ``table`` in (part, seq) order and drop the staging table, on
    the caller's transaction; the rows moved."""
    cols = ", ".join(columns)
    moved = conn.execute(sa.text(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name} ORDER BY part, seq"))
    conn.execute(sa.text(f"DROP TABLE {name}"))
    return moved.rowcount


def drop(conn: Connection, name: str) -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
