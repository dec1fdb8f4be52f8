"""Engines, connections and migrations."""
from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import config
from ..errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


_ENGINES: dict[str, Engine] = {}


def engine(url: str | None = None) -> Engine:
    """A pooled engine for ``url`` (default: the database configured now), one per URL and process."""
    url = url or config.database_url()
    eng = _ENGINES.get(url)
    if eng is None:
        eng = _ENGINES[url] = sa.create_engine(url, pool_pre_ping=True)
    return eng


def _forget_inherited_connections() -> None:
    """In a forked child (a server worker), drop the parent's pooled connections without closing
    them: one socket used by two processes garbles both conversations."""
    for eng in _ENGINES.values():
        eng.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def check(eng: Engine) -> None:
    """Raise DatabaseUnavailable with a hint when the database cannot be reached."""
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        hint = ("set GRIDMAP_DATABASE_URL or run `gridmap db start`" if not config.external_database_url()
                else "check GRIDMAP_DATABASE_URL")
        raise DatabaseUnavailable(f"cannot reach the database {eng.url.render_as_string(hide_password=True)}: "
                                  f"{str(exc.orig).strip().splitlines()[0]}; {hint}") from None


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> str:
    """Bring the schema to the newest migration; return the revision."""
    from alembic import command

    url = url or config.database_url()
    check(engine(url))
    command.upgrade(alembic_config(url), "head")
    with engine(url).connect() as conn:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def raw_connection(eng: Engine):
    """The psycopg connection under a pooled SQLAlchemy connection (for COPY)."""
    return eng.raw_connection()
