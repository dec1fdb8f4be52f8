"""Engines, connections, migrations, and the bulk-write helpers every table module shares."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
from pathlib import Path

import lazy_loader
import numpy as np
import psycopg
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..domain import dates
from ..domain.dates import DEFAULT_TIMEZONE
from ..errors import Busy, DatabaseUnavailable, GridmapError, WorkLimit
from ..geo import STORAGE_SRID
from ..settings import LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS

pd = lazy_loader.load("pandas")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: Every data table (users are kept across `demo load --fresh`).
DATA_TABLES = (
    "grid",
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

_ENGINES: dict[tuple[str, str, int, int], Engine] = {}

#: Transactions this process has committed (through any SQLAlchemy engine): a lookup watch reads the
#: epoch after one of its own process's commits rather than trusting the announcement to have arrived
#: (tens of microseconds, longer than a commit followed at once by a lookup in the same process).
_commits = 0
#: The engines committed through, in this process and (from :func:`note_commits` on) in this thread:
#: a request or command that wrote waits for the servers on those databases to hear of it.
_committed: set[Engine] = set()
_thread = threading.local()


@sa.event.listens_for(Engine, "commit")
def _count_commit(conn) -> None:
    global _commits
    _commits += 1
    _committed.add(conn.engine)
    noted = getattr(_thread, "committed", None)
    if noted is not None:
        noted.add(conn.engine)


def commits() -> int:
    """How many transactions this process has committed so far (see ``_commits``)."""
    return _commits


def note_commits() -> None:
    """Start noting the engines this thread commits through (a web request's start)."""
    _thread.committed = set()


def committed_engines(*, thread: bool) -> list[Engine]:
    """The engines committed through since this thread's :func:`note_commits` (``thread``), or ever in
    this process."""
    return list(getattr(_thread, "committed", ()) if thread else _committed)


def engine(
    url: str,
    timezone: str = DEFAULT_TIMEZONE,
    *,
    statement_ms: int = STATEMENT_TIMEOUT_MS,
    lock_ms: int = LOCK_TIMEOUT_MS,
) -> Engine:
    """A pooled engine for ``url``, one per URL, zone, write bounds and process.  Its sessions run in
    ``timezone`` (the office's), so every time read back carries the office offset and SQL's dates are
    office days; its write transactions are bounded by ``statement_ms`` and ``lock_ms`` (see
    :func:`limit_time`)."""
    key = (url, timezone, statement_ms, lock_ms)
    eng = _ENGINES.get(key)
    if eng is None:
        eng = _ENGINES[key] = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"options": f"-c TimeZone={timezone}"}
        )
        _ZONE_OF[eng] = timezone
        _WRITE_BOUNDS[eng] = (statement_ms, lock_ms)
    return eng


_ZONE_OF: dict[Engine, str] = {}
#: Engine -> (statement_timeout, lock_timeout) in ms of its write transactions.
_WRITE_BOUNDS: dict[Engine, tuple[int, int]] = {}


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


def limit_time(conn: Connection) -> None:
    """Bound the rest of ``conn``'s transaction by its engine's write bounds (settings
    ``statement_timeout_ms`` and ``lock_timeout_ms``): each statement at most so long, each wait for a
    lock at most so long.  PostgreSQL cancels them; :func:`fault` names the error (Busy, WorkLimit)."""
    statement_ms, lock_ms = _WRITE_BOUNDS.get(conn.engine, (STATEMENT_TIMEOUT_MS, LOCK_TIMEOUT_MS))
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


def _csv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    # \r\n ends rows, so the csv writer quotes a value holding a bare \r too (PostgreSQL ends a row there)
    frame.to_csv(buf, index=False, header=False, na_rep="\\N", lineterminator="\r\n")
    return buf.getvalue()


def _copy_sql(table: str, columns: list[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"


def copy_frame(conn: Connection, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """COPY ``frame`` (columns in order) into ``table`` on the connection's transaction."""
    data = _csv(frame)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(_copy_sql(table, columns)) as copy:
        copy.write(data)


def copy_frames(conn: Connection, table: str, columns: list[str], frames, progress=None) -> int:
    """COPY each frame ``frames`` yields (columns in order) into ``table``, as one COPY; the rows
    written.  A thread makes the next frame's CSV while PostgreSQL takes the one before, so the
    caller's work on the rows overlaps the server's; ``progress(n)`` after each frame is sent."""
    cursor = conn.connection.driver_connection.cursor()
    rows = 0
    with cursor.copy(_copy_sql(table, columns)) as copy:
        for data, n in _ahead((_csv(frame[columns]), len(frame)) for frame in frames):
            copy.write(data)
            rows += n
            if progress:
                progress(n)
    return rows


def _ahead(items, depth: int = 1):
    """Yield what ``items`` yields, made ``depth`` ahead in a thread of its own; its error raised here.
    (Not psycopg's queued COPY writer: that one takes everything at once, so a progress bar would
    count the rows made, not those sent.)"""
    box: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(entry) -> bool:  # False once the consumer has gone
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make():
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, which raises it)
            put((done, exc))

    worker = threading.Thread(target=make, name="gridmap-copy-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = box.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        worker.join()


def analyze(conn: Connection) -> None:
    for table in ("grid", "building", "unit", "person", "grid_post", "risk_element", "risk_visit", "report"):
        conn.execute(sa.text(f"ANALYZE {table}"))


def truncate_all(conn: Connection) -> None:
    """Empty every data table (tests and `demo load --fresh`)."""
    conn.execute(sa.text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY"))
