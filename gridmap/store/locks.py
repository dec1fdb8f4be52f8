"""PostgreSQL advisory locks shared by every server on the database: who leads the background jobs."""

from __future__ import annotations


def try_session_lock(dbapi_conn, name: str) -> bool:
    """Take the session-level advisory lock ``name`` on a psycopg connection if it is free; held
    until :func:`unlock` or until the connection ends (a crashed server frees it)."""
    return dbapi_conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (name,)).fetchone()[0]


def unlock(dbapi_conn, name: str) -> None:
    dbapi_conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


def alive(dbapi_conn) -> None:
    """Raise psycopg.OperationalError when the connection (and with it the lock) is gone."""
    dbapi_conn.execute("SELECT 1").fetchone()
