"""The Dask cluster a distributed command runs on: a running ``dask.distributed`` scheduler named
by its address, or a local cluster of this machine's cores; and the index sent to its workers once.

Dask and distributed are imported inside the functions: they are the ``scale`` extra, and a plain
``gridmap assign`` should not pay their import time.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import InputError

#: Local workers, measured here on a 1M-row partition (README "Beyond one machine"): Dask's
#: statistical profiler (a thread sampling every stack every 10 ms) and the nanny's
#: MALLOC_TRIM_THRESHOLD_ (which turns off glibc's adaptive mmap threshold, so every large NumPy
#: temporary is mapped and zeroed afresh) made a task 1.6-2.4x slower than the same call in a
#: plain process; without both, 1.3-1.5x.  OMP/MKL/OpenBLAS stay at one thread per worker.
LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
}


@contextlib.contextmanager
def client(scheduler: str | None = None, *, workers: int | None = None, memory_limit: str = "2GB"):
    """A ``distributed.Client`` for the run, closed (and a local cluster stopped) afterwards.

    ``scheduler``: the address of a running scheduler (``tcp://host:8786``); None starts a local
    cluster of ``workers`` processes (default: this machine's cores), one thread each, since the
    lookup core is NumPy/GEOS work that holds the GIL in parts.  Raises InputError when the
    scheduler cannot be reached or the scale extra is missing.
    """
    try:
        # deferred: the scale extra (dask, distributed), imported only by commands that run on Dask
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--engine dask needs the scale extra: pip install 'gridmap[scale]'") from None
    if scheduler:
        try:
            c = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield c
        finally:
            c.close()
        return
    n = workers or os.cpu_count() or 1
    with dask.config.set(LOCAL_WORKER_CONFIG):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",  # any free port: several runs may share a machine
        )
    try:
        with Client(cluster) as c:
            yield c
    finally:
        cluster.close()


def announce(c) -> None:
    """Say on stderr where the run goes and where its dashboard is (when there is one)."""
    workers = len(c.scheduler_info().get("workers", {}))
    link = c.dashboard_link if _has_bokeh() else None
    tail = f"; dashboard {link}" if link else ""
    print(f"gridmap: dask: {workers} workers at {c.scheduler.address}{tail}", file=sys.stderr)


def broadcast(c, value):
    """A future of ``value`` held by every worker: sent once, not pickled into each task."""
    return c.scatter(value, broadcast=True, hash=False)


def sum_counts(c, tasks, progress, failed: str, results: list | None = None) -> dict:
    """Compute ``tasks`` (delayed, each returning its partition's row counts) as they finish, and
    add the counts up (each task's whole result appended to ``results`` when given).
    InputError ``failed: <the error>`` when a task fails for good (its own
    error, or KilledWorker once the scheduler's retries of a lost worker ran out)."""
    # deferred: the scale extra (distributed)
    from distributed import as_completed

    totals = {"rows": 0, "placed": 0, "outside": 0, "bad": 0}
    try:
        for future in as_completed(c.compute(tasks)):
            counts = future.result()
            if results is not None:
                results.append(counts)
            for key in totals:
                totals[key] += counts[key]
            if progress:
                progress(counts["rows"])
    except InputError as exc:  # a partition's bad rows or columns, as the single-process command says them
        raise InputError(f"{failed}: {exc.message}") from None
    except Exception as exc:  # whatever else a task raised: one line, the type and its first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"{failed}: {type(exc).__name__}: {first}") from None
    return totals


def _has_bokeh() -> bool:
    try:
        # deferred: the dashboard needs bokeh; without it Dask runs the same, unseen
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True
