"""Engines, connections, migrations, and the bulk-write helpers every table module shares."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..domain import dates
from ..domain.dates import DEFAULT_TIMEZONE
from ..errors import Busy, DatabaseUnavailable, GridmapError, WorkLimit
from ..geo import STORAGE_SRID

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: Every data table (users are kept across `demo load --fresh`).
DATA_TABLES = (
    "grid",
    "grid_person",
    "building",
    "unit",
    "edit_log",
    "resident",
    "report",
    "risk_visit",
    "risk_element",
    "grid_risk",
    "grid_code",
    "grid_change",
    "grid_share",
    "report_log",
    "report_media",
    "report_contact",
    "department_member",
    "department",
    "grid_post",
    "party_org_grid",
    "party_org",
    "person",
)

_ENGINES: dict[tuple[str, str], Engine] = {}


def engine(url: str, timezone: str = DEFAULT_TIMEZONE) -> Engine:
    """A pooled engine for ``url``, one per URL, zone and process.  Its sessions run in ``timezone``
    (the office's), so every time read back carries the office offset and SQL's dates are office days."""
    eng = _ENGINES.get((url, timezone))
    if eng is None:
        eng = _ENGINES[url, timezone] = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-c TimeZone={timezone}"}
        )
        _ZONE_OF[eng] = timezone
    return eng


_ZONE_OF: dict[Engine, str] = {}


def zone_of(bind: Engine | Connection) -> str:
    """The office zone the engine (or a connection's engine) was made with."""
    return _ZONE_OF.get(bind.engine if isinstance(bind, Connection) else bind, DEFAULT_TIMEZONE)


def iso(bind: Engine | Connection, value) -> str | None:
    """A time as ISO 8601 in the office zone of ``bind`` (see :func:`gridmap.domain.dates.iso`)."""
    return dates.iso(value, zone_of(bind))


def _forget_inherited_connections() -> None:
    """In a forked child (a server worker), drop the parent's pooled connections without closing
    them: one socket used by two processes garbles both conversations."""
    for eng in _ENGINES.values():
        eng.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def check(eng: Engine, hint: str) -> None:
    """Raise DatabaseUnavailable ending in ``hint`` when the database cannot be reached."""
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database {eng.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).strip().splitlines()[0]}; {hint}"
        ) from None


def limit_time(conn: Connection, *, statement_ms: int, lock_ms: int) -> None:
    """Bound the rest of ``conn``'s transaction: each statement at most ``statement_ms``, each wait for
    a lock at most ``lock_ms`` (PostgreSQL cancels them; see :func:`gridmap.store.db.fault`)."""
    conn.execute(
        sa.text("SELECT set_config('statement_timeout', :s, true), set_config('lock_timeout', :l, true)"),
        {"s": str(statement_ms), "l": str(lock_ms)},
    )


def fault(exc: BaseException) -> GridmapError | None:
    """The gridmap error for a database failure: Busy for a lock wait past ``lock_timeout``,
    WorkLimit for a statement past ``statement_timeout``, DatabaseUnavailable when the database cannot
    be reached or the connection broke; None for anything else (a bug, left to propagate)."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, psycopg.errors.LockNotAvailable):
        return Busy("the grids this needs are being changed by another request; try again in a few seconds")
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return WorkLimit("a database statement ran past its time limit and was cancelled; nothing was written")
    unreachable = isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )
    if unreachable or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return DatabaseUnavailable("the database cannot be reached just now; try again shortly")
    return None


@contextlib.contextmanager
def translated():
    """Run the block with database failures raised as the gridmap errors :func:`fault` names (the
    others, bugs, as they are)."""
    try:
        yield
    except (sa.exc.SQLAlchemyError, psycopg.Error) as exc:
        error = fault(exc)
        if error is None:
            raise
        raise error from None


def has_schema(eng: Engine) -> bool:
    with eng.connect() as conn:
        return conn.execute(sa.text("SELECT to_regclass('grid')")).scalar() is not None


def migrate(url: str) -> str:
    """Bring the schema to the newest migration; return the revision."""
    # deferred: alembic adds ~0.1 s to every command's start, and only migrations need it
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
    with engine(url).connect() as conn:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def now(conn: Connection):
    """The transaction's clock (every version a transaction writes starts at the same instant)."""
    return conn.execute(sa.text("SELECT now()")).scalar_one()


def close_versions(conn: Connection, table: str, codes, at) -> int:
    """End the current versions of ``codes`` in the dated ``table`` (grid, building) at ``at``; how many."""
    return conn.execute(
        sa.text(f"UPDATE {table} SET valid_to = :at WHERE valid_to IS NULL AND code = ANY(:codes)"),
        {"at": at, "codes": list(codes)},
    ).rowcount


def ewkb_hex(geoms) -> np.ndarray:
    """Geometries as hex EWKB in the storage SRID (for COPY and ST_GeomFromEWKB)."""
    return shapely.to_wkb(shapely.set_srid(np.asarray(geoms, dtype=object), STORAGE_SRID), hex=True, include_srid=True)


def copy_frame(conn: Connection, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """COPY ``frame`` (columns in order) into ``table`` on the connection's transaction."""
    buf = io.StringIO()
    # \r\n ends rows, so the csv writer quotes a value holding a bare \r too (PostgreSQL ends a row there)
    frame.to_csv(buf, index=False, header=False, na_rep="\\N", lineterminator="\r\n")
    data = buf.getvalue()
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
        copy.write(data)


def analyze(conn: Connection) -> None:
    for table in ("grid", "building", "unit", "grid_person", "risk_element", "risk_visit", "report"):
        conn.execute(sa.text(f"ANALYZE {table}"))


def truncate_all(conn: Connection) -> None:
    """Empty every data table (tests and `demo load --fresh`)."""
    conn.execute(sa.text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY"))
