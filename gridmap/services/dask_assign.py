"""``gridmap assign --engine dask``: the single-process command's rows, computed on a Dask cluster.

Each task turns one partition of the input back into the Arrow table the single-process reader
gets (:mod:`.partitioned_input`) and runs the single-process code on it, a chunk at a time:
:func:`.point_files.points_of`, :func:`.assignment.locate_points` (``assign_arrays`` on the
index), :func:`.assignment.output_table`, and :func:`.point_files.write_parquet`.  So every row
gets the same columns, statuses and answers, and GeoParquet in gives GeoParquet out.

The index is resolved once, here, at the database's epoch, and reaches every worker once
(:func:`index_source`).  Parts land in a temporary folder that replaces the output only when all
are written (:mod:`.part_folder`).  A worker lost mid-run has its tasks retried by the scheduler
(``distributed.scheduler.allowed-failures``); when retries run out, or a task fails, the run
stops with one error line and leaves no output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from ..domain.lookup import GridIndex
from ..errors import InputError
from . import dask_cluster, part_folder, point_files
from .assignment import (
    Located,
    Places,
    check_columns_given,
    count_status,
    locate_points,
    output_table,
    places_of,
    rows_crs,
)
from .locator import Locator, load_index
from .partitioned_input import Partitioned, open_input, part_table

#: Rows a worker assigns and writes at a time (bounds its memory whatever the partition size).
PART_CHUNK = 250_000


@dataclass(frozen=True)
class RowSpec:
    """How a partition's rows become points, as the single-process reader makes them: the input's
    name, the columns, ``--crs``, the Arrow schema and GeoParquet metadata of the input."""

    name: str
    lon_col: str | None
    lat_col: str | None
    address_col: str | None
    crs: str | None
    schema: pa.Schema
    geo_meta: dict | None
    chunk_rows: int = PART_CHUNK


def row_spec(data: Partitioned, crs, lon_col, lat_col, address_col, chunk_rows=PART_CHUNK) -> tuple[RowSpec, str]:
    """The row spec of a partitioned input and the rows' CRS, with the columns checked (by the
    single-process reader, on no rows) before any task runs."""
    check_columns_given(lon_col, lat_col, address_col)
    spec = RowSpec(data.name, lon_col, lat_col, address_col, crs, data.schema, data.geo_meta, chunk_rows)
    return spec, rows_crs(_points(data.empty(), spec), crs, address_col)


def _points(table: pa.Table, spec: RowSpec) -> point_files.Points:
    return point_files.points_of(table, Path(spec.name), spec.lon_col, spec.lat_col, spec.address_col, spec.geo_meta)


def locate_chunk(table: pa.Table, spec: RowSpec, index: GridIndex, places: Places | None) -> Located:
    """Some rows of a partition answered by the single-process core."""
    return locate_points(index, _points(table, spec), crs=spec.crs, address_col=spec.address_col, places=places)


# --- the index on the workers ---------------------------------------------------------------
@dataclass(frozen=True)
class OnDisk:
    """The persisted index ``key`` under the data folder ``home``, as the workers load it."""

    home: str
    key: str


#: Per worker process: the index last loaded, and what it was loaded from.
_LOADED: dict = {}


def worker_index(source) -> GridIndex:
    """The run's index in a worker: loaded once per worker process from ``source``, an
    :class:`OnDisk` or the index's state (meta, arrays) sent by :func:`index_source`."""
    held = _LOADED.get("source")
    if held is not None and (held is source or (isinstance(source, OnDisk) and held == source)):
        return _LOADED["index"]
    if isinstance(source, OnDisk):
        index = load_index(Path(source.home), source.key)
        if index is None:
            raise InputError(f"the lookup index {source.key} is not readable under {source.home} on this worker")
    else:
        index = GridIndex.from_state(*source)
    _LOADED.clear()
    _LOADED.update(source=source, index=index)
    return index


def _loads(source: OnDisk) -> bool:
    """Worker side: whether the persisted index loads here (and load it now, before the tasks)."""
    try:
        worker_index(source)
    except InputError:
        return False
    return True


def index_source(c, locator: Locator, index: GridIndex):
    """What the tasks get to find the run's index: the persisted index on disk when every worker
    can read it, else its state, sent once to every worker.

    The persisted index (``GRIDMAP_HOME/index``, keyed by the version set the run resolved at its
    epoch) is the cheaper way when the workers share the disk (a local cluster; a shared mount): each
    worker memory-maps the same ``.npy`` files, so nothing is pickled or sent, the pages are shared
    through the page cache by every worker process of a machine, and a worker decodes only the
    micro-grids its points reach.  Sending the state instead pickles every array (a city's cell grid
    is ~100 MB), copies it to each worker over TCP and each holds its own copy.  The state is a dict
    of arrays, not the GridIndex object: it rebuilds with the same ``from_state`` as from disk."""
    if locator.persist(index):  # a no-op when it is on disk already
        ref = OnDisk(str(locator.home), index.key)
        readable = c.run(_loads, ref)
        if readable and all(readable.values()):
            return ref
    return dask_cluster.broadcast(c, index.state())


# --- the run --------------------------------------------------------------------------------
def run_partitions(locator, index, places, data: Partitioned, task, args: tuple, *, scheduler, workers, progress,
                   failed: str, results: list | None = None) -> dict:  # fmt: skip
    """Run ``task(part, number, source, places, *args)`` for every partition of ``data`` on the
    cluster (``source``: the index as :func:`index_source` sends it; ``places``: broadcast once, or
    None); the summed counts (each task's result appended to ``results``).  InputError ``failed: …``
    when a task fails for good.  For the commands that write to PostGIS (:mod:`.dask_record`,
    :mod:`.dask_events`)."""
    # deferred: the scale extra (dask)
    from dask import delayed

    with dask_cluster.client(scheduler, workers=workers) as c:
        dask_cluster.announce(c)
        source = index_source(c, locator, index)
        places_f = dask_cluster.broadcast(c, places) if places is not None else None
        run = delayed(task, pure=False)
        tasks = [run(p, i, source, places_f, *args) for i, p in enumerate(data.frame.to_delayed())]
        return dask_cluster.sum_counts(c, tasks, progress, failed, results)


def _run_part(part, number, spec: RowSpec, source, places, folder) -> dict:
    """Worker side: assign one partition, a chunk at a time, and write it as part ``number`` (one
    row group per chunk, so a worker holds one chunk's columns at a time); its counts."""
    index = worker_index(source)
    table = part_table(part, spec.schema)
    counts = {"rows": 0, "placed": 0, "outside": 0, "bad": 0}

    def tables():
        for start in range(0, max(table.num_rows, 1), spec.chunk_rows):
            found = locate_chunk(table.slice(start, spec.chunk_rows), spec, index, places)
            for key, n in count_status(found.answers.status).items():
                counts[key] += n
            yield output_table(found)

    part_folder.write_part(Path(folder), number, lambda path: point_files.write_parquet(tables(), path, spec.geo_meta))
    return counts


def assign_dask(
    locator: Locator,
    src: str,
    dst,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    at: datetime | None = None,
    progress=None,
    chunk_rows: int = PART_CHUNK,
) -> dict:
    """Assign every row of ``src`` (Parquet file or folder, GeoParquet, CSV glob) on Dask and write
    the folder ``dst`` of Parquet parts; the summary.  InputError for bad input or a failed run
    (nothing written then)."""
    dst = part_folder.check_destination(Path(dst))
    data = open_input(str(src))
    spec, source_crs = row_spec(data, crs, lon_col, lat_col, address_col, chunk_rows)
    index = locator.index(at)
    places = places_of(locator, address_col, at)
    with dask_cluster.client(scheduler, workers=workers) as c:
        dask_cluster.announce(c)
        totals = _compute(c, locator, data, spec, index, places, dst, progress, source_crs)
    return {**totals, "crs": source_crs}


def _compute(c, locator, data, spec, index, places, dst, progress, source_crs) -> dict:
    """Run every partition's task; swap the folder in when all succeeded, else remove it."""
    # deferred: the scale extra (dask)
    from dask import delayed

    source = index_source(c, locator, index)
    places_f = dask_cluster.broadcast(c, places) if places is not None else None
    tmp = part_folder.start(dst)
    try:
        parts = data.frame.to_delayed()
        run = delayed(_run_part, pure=False)
        tasks = [run(p, i, spec, source, places_f, str(tmp)) for i, p in enumerate(parts)]
        totals = dask_cluster.sum_counts(c, tasks, progress, f"dask run failed, nothing written to {dst}")
        manifest = {**totals, "parts": len(parts), "crs": source_crs, "epoch": index.epoch, "source": data.files}
        part_folder.finish(tmp, dst, manifest)
    except BaseException:
        part_folder.abandon(tmp)
        raise
    return {**totals, "parts": len(parts)}
