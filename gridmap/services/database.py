"""The database gridmap talks to: the local PostGIS cluster (``gridmap db``), migrations, and an
engine checked to be reachable and migrated before a command uses it."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ..errors import DatabaseUnavailable, GridmapError
from ..settings import Settings
from ..store import cluster, db


def engine(settings: Settings) -> Engine:
    """The pooled engine of the configured database (not checked)."""
    return db.engine(settings.database_url, settings.timezone)


def _hint(settings: Settings) -> str:
    return (
        "check GRIDMAP_DATABASE_URL"
        if settings.external_database_url
        else "set GRIDMAP_DATABASE_URL or run `gridmap db start`"
    )


def ready_engine(settings: Settings) -> Engine:
    """The configured database's engine; DatabaseUnavailable with a hint when it cannot be reached or
    has no schema."""
    eng = engine(settings)
    db.check(eng, _hint(settings))
    if not db.has_schema(eng):
        raise DatabaseUnavailable("the database has no gridmap schema: run `gridmap db upgrade`")
    return eng


def fault(exc: BaseException) -> GridmapError | None:
    """The gridmap error a database exception stands for (503s), None for a bug (see
    :func:`gridmap.store.db.fault`)."""
    return db.fault(exc)


def migrate(settings: Settings) -> str:
    """Bring the configured database's schema to the newest migration; the revision."""
    db.check(engine(settings), _hint(settings))
    return db.migrate(settings.database_url)


def start(settings: Settings) -> dict:
    """Create (first time) and start the local cluster with its database (see :mod:`gridmap.store.cluster`)."""
    return cluster.start(settings)


def stop(settings: Settings) -> dict:
    return cluster.stop(settings)


def status(settings: Settings) -> dict:
    return cluster.status(settings)
