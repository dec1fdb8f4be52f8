"""Keys shared by every server on one database (``app_secret``): made once, never served."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

KEY_BYTES = 32


def get_or_create(conn: Connection, name: str) -> bytes:
    """The secret ``name``, made from 256 random bits the first time it is asked for (racing servers
    agree: the first insert wins and every caller reads it back)."""
    conn.execute(
        sa.text("INSERT INTO app_secret (name, value) VALUES (:n, :v) ON CONFLICT (name) DO NOTHING"),
        {"n": name, "v": secrets.token_bytes(KEY_BYTES)},
    )
    return bytes(conn.execute(sa.text("SELECT value FROM app_secret WHERE name = :n"), {"n": name}).scalar_one())


def versions(conn: Connection, prefix: str) -> dict[int, bytes]:
    """Every key of a versioned secret: ``prefix`` is version 1, ``prefix.vN`` version N."""
    rows = conn.execute(
        sa.text("SELECT name, value FROM app_secret WHERE name = :p OR name LIKE :like"),
        {"p": prefix, "like": prefix + ".v%"},
    )
    out = {}
    for name, value in rows:
        tail = name[len(prefix) + 2 :]
        if name == prefix:
            out[1] = bytes(value)
        elif tail.isdigit():
            out[int(tail)] = bytes(value)
    return out
