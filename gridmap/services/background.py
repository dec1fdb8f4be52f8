"""Background jobs that must run once across all servers on one database, not once per server.

Every ``gridmap serve`` starts a :class:`Leader` in a process of its own (:func:`start_process`:
spawned, so the server's forked workers never share its lock connection).  It runs the jobs only
while it holds the advisory lock ``gridmap.jobs`` on that connection: one leader however many
servers.
When the leader stops or crashes, its connection ends, PostgreSQL frees the lock, and another
server's Leader takes it at its next try (every ``retry_s``).  Jobs: the risk roll-up refresh
(``overdue`` counts move with the clock), the event centre's clock tick (warnings, escalations,
assessment after the rating window) and the persisted lookup index kept in step with the edits.
They run here, not in the request workers, so a tick over a year of cases, or writing an index,
never holds a worker's interpreter while it answers lookups.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ..store import db, locks
from . import resources, risk_elements

LOCK = "gridmap.jobs"
#: Seconds between the leader's checks that the persisted lookup index follows the epoch.
PERSIST_EVERY = 30.0
#: While edits keep coming, the persisted index is brought up to date at most this often (seconds).
PERSIST_WHILE_EDITING = 600.0


@dataclass(frozen=True)
class Job:
    """A job run every ``every_s`` seconds by the leader; ``run()`` returns what to log."""

    name: str
    every_s: float
    run: Callable[[], object]
    #: Log a run only when it did something (``run()`` returned something true) or took a second.
    quiet: bool = False


class Leader:
    """Runs ``jobs`` in a daemon thread while this process leads (see the module docstring)."""

    def __init__(
        self,
        url: str,
        jobs: list[Job],
        *,
        retry_s: float = 5.0,
        log: Callable[[str], None] = print,
        parent_pid: int | None = None,
    ):
        self.url, self.jobs, self.retry_s, self.log, self.parent_pid = url, jobs, retry_s, log, parent_pid
        self._stop = threading.Event()
        self._conn = None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="gridmap-jobs", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        due = {job.name: 0.0 for job in self.jobs}
        announced = False
        while not self._stop.is_set():
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                break  # the server that started us is gone: so are we (and our lock with us)
            if not self._lead():
                if not announced:
                    self.log("jobs: standing by (another server leads)")
                    announced = True
                self._stop.wait(self.retry_s)
                continue
            announced = False
            now = time.monotonic()
            for job in self.jobs:
                if now >= due[job.name]:
                    self._run(job)
                    due[job.name] = time.monotonic() + job.every_s
            wait = min(due.values()) - time.monotonic() if due else self.retry_s
            self._stop.wait(max(0.05, min(wait, self.retry_s)))
        if self._conn is not None:
            self._conn.close()

    def _lead(self) -> bool:
        """Whether this process leads now: its lock connection is alive, or it just took the lock."""
        try:
            if self._conn is not None:
                locks.alive(self._conn)
                return True
            conn = psycopg.connect(self.url, autocommit=True)
            if locks.try_session_lock(conn, LOCK):
                self._conn = conn
                self.log("jobs: leading")
                return True
            conn.close()
        except psycopg.OperationalError as exc:  # the database went away: lead again once it is back
            if self._conn is not None:
                self.log(f"jobs: lost the lock ({str(exc).strip().splitlines()[0]})")
            self._conn = None
        return False

    def _run(self, job: Job) -> None:
        t = time.perf_counter()
        try:
            result = job.run()
        except Exception as exc:  # a job's failure must not stop the others: say it, retry next time
            self.log(f"job {job.name} failed: {type(exc).__name__}: {exc}")
            return
        took = time.perf_counter() - t
        if result or took >= 1.0 or not job.quiet:
            self.log(f"job {job.name} ran in {took:.2f} s: {result}")


def start_process(
    url: str,
    *,
    rollup_every: float,
    rules_path,
    settings=None,
    tick_every: float = 0,
    retry_s: float = 5.0,
    persist_index: bool = False,
):
    """Start the leader of ``gridmap serve`` in a spawned daemon process (it ends with the server):
    the risk roll-up every ``rollup_every`` s, the event tick every ``tick_every`` s (0: none;
    ``settings``, the server's, name the catalogue and time zone the tick works with) and, with
    ``persist_index``, the lookup index persisted after edits under ``settings.home``."""
    proc = multiprocessing.get_context("spawn").Process(
        target=_leader_main,
        args=(url, rollup_every, str(rules_path), retry_s, os.getpid(), settings, tick_every, persist_index),
        name="gridmap-jobs",
        daemon=True,
    )
    proc.start()
    return proc


def _leader_main(
    url, rollup_every, rules_path, retry_s, parent_pid, settings=None, tick_every=0, persist_index=False
) -> None:
    """The leader process: the server's jobs, run while it holds the lock, at a lower CPU priority
    than the request workers (its start-up and jobs yield to lookups on a busy machine)."""
    os.nice(10)
    engine = db.engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    rules = resources.load_rules(Path(rules_path))
    jobs = []
    if rollup_every > 0:
        jobs.append(Job("risk-rollup", rollup_every, lambda: f"{risk_elements.rollup(engine, rules)[0]} grids"))
    if tick_every > 0 and settings is not None:
        jobs.append(Job("event-tick", tick_every, lambda: _tick(settings, engine), quiet=True))
    if persist_index and settings is not None:
        jobs.append(Job("index-persist", PERSIST_EVERY, _index_persister(engine, settings.home), quiet=True))

    def log(message: str) -> None:
        print(f"gridmap: {message}", file=sys.stderr, flush=True)

    Leader(url, jobs, retry_s=retry_s, log=log, parent_pid=parent_pid)._loop()


def _index_persister(engine, home) -> Callable[[], str]:
    """The job keeping the persisted lookup index in step with the database: once the epoch moved and
    then stood still for a whole run's interval (the edits paused), or at most every
    :data:`PERSIST_WHILE_EDITING` seconds while they go on, a command's locator brings the newest
    index on disk up to date from the change log (as a new worker would) and saves it, so a worker
    starting later loads it and the serving workers never write it.  Saving the Zhengzhou-scale index
    costs ~4 s of CPU and ~400 MB written: done after every edit, it took the edited servers' longest
    edit-to-lookup lag from ~0.2 to ~0.4–0.7 s and their lookups' p99 up ~1 ms (issue #16; a worker
    starting from an older index brings it up to date from the log in about 2 s instead).  The first
    run only notes the epoch (the workers persist the index they load or build at their start); no
    index is held between runs."""
    from .locator import Locator  # deferred: only a leader with lookups by index needs it

    locator = Locator(engine, home=home)
    saved, seen, saved_at = [None], [None], [time.monotonic()]

    def run() -> str:
        epoch = locator.epoch()
        if saved[0] is None or epoch == saved[0]:
            saved[0] = seen[0] = epoch
            return ""
        moving, seen[0] = epoch != seen[0], epoch
        if moving and time.monotonic() - saved_at[0] < PERSIST_WHILE_EDITING:
            return ""  # edits under way: wait until they pause
        saved[0] = seen[0] = locator.index().epoch  # updated (or loaded, or built) and persisted before returning
        saved_at[0] = time.monotonic()
        locator.forget()
        return f"index of epoch {saved[0]} on disk"

    return run


def _tick(settings, engine) -> str:
    """One tick of the event centre's clock with the catalogue in force now (re-read when its
    files change); what it did, or "" when nothing was due."""
    from . import event_clock, events  # deferred: only a leader with the tick on needs the catalogue

    done = event_clock.tick(events.make_centre(settings, engine, None))
    return ", ".join(f"{n} {what}" for what, n in done.items() if n)
