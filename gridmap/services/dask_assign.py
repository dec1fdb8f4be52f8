"""``gridmap assign --engine dask``: the single-process command's rows, computed on a Dask cluster.

The index is built once, here, from PostGIS, and sent to every worker once
(:func:`.dask_cluster.broadcast`); each task reads one partition of the input, runs the same
core as the single-process command (:func:`gridmap.domain.lookup.assign_table`, via
:func:`assign_part`) and writes its part with the same writer, so every row gets the same
columns, statuses and answers.  Parts land in a temporary folder that replaces the output only
when all are written (:mod:`.part_folder`).  A worker lost mid-run has its tasks retried by the
scheduler (``distributed.scheduler.allowed-failures``); when retries run out, or a task fails,
the run stops with one error line and leaves no output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..domain.lookup import assign_table
from ..errors import InputError
from . import dask_cluster, part_folder, point_wkb
from .assignment import by_floor, coordinate_columns, resolve_addresses, rows_crs
from .locator import Locator
from .partitioned_input import open_input, part_rows

#: Rows a worker assigns and writes at a time (bounds its memory whatever the partition size).
PART_CHUNK = 250_000


@dataclass(frozen=True)
class RowSpec:
    """How a partition's rows become points: the columns, the GeoParquet geometry, the CRS."""

    name: str
    lon_col: str | None
    lat_col: str | None
    address_col: str | None
    geometry: str | None
    crs: str
    chunk_rows: int = PART_CHUNK


@dataclass(frozen=True)
class Addresses:
    """What placing rows by address needs on a worker: the gazetteer, and the floors held by each
    micro-grid (None for a past date) for households in towers several micro-grids share."""

    gazetteer: object
    members: object | None


def addresses_of(locator: Locator, address_col, at) -> Addresses | None:
    """The :class:`Addresses` to broadcast when rows are placed by address, else None."""
    if address_col is None:
        return None
    return Addresses(locator.gazetteer(), locator.memberships()[0] if at is None else None)


def assign_part(
    part: pd.DataFrame, spec: RowSpec, index, addresses: Addresses | None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The output rows of one partition and their source coordinates (the single-process core)."""
    frame, lon, lat = part_rows(part, spec.geometry)
    known = homes = None
    if not (spec.geometry and spec.lon_col is None and spec.address_col is None):
        lon, lat = coordinate_columns(frame, spec.name, spec.lon_col, spec.lat_col, spec.address_col)
    if spec.address_col is not None:
        floors = frame["floor"].tolist() if "floor" in frame.columns else None
        lon, lat, known, homes = resolve_addresses(addresses.gazetteer, frame[spec.address_col].tolist(), floors)
    chain = assign_table(index, lon, lat, spec.crs, known)
    if homes is not None and addresses.members is not None:
        by_floor(addresses.members, index, chain, homes)
    return pd.concat([frame, chain], axis=1), lon, lat


def stable_types(out: pd.DataFrame) -> pd.DataFrame:
    """The same Parquet schema in every part, whatever its rows: a column with no value in this
    part (``error`` when every row is good) would be Arrow's null type, and the special grids'
    categories differ per part; both as text, or readers cannot join the parts."""
    for col in out.columns:
        s = out[col]
        if col == "special_codes" or (s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "empty"):
            out[col] = s.astype("str")
    return out


def _run_part(part, number, spec, index, addresses, folder) -> dict:
    """Worker side: assign one partition, a chunk at a time, and write it as part ``number`` (one
    row group per chunk, so a worker holds one chunk's columns at a time); its counts."""
    counts = {"rows": len(part), "placed": 0, "outside": 0, "bad": 0}
    crs = None if spec.crs in ("gcj02", "bd09") else spec.crs

    def chunks():
        for start in range(0, max(len(part), 1), spec.chunk_rows):
            out, lon, lat = assign_part(part.iloc[start : start + spec.chunk_rows], spec, index, addresses)
            for status, n in out["status"].value_counts().items():
                counts[status] += int(n)
            yield stable_types(out), lon, lat

    part_folder.write_part(Path(folder), number, lambda path: point_wkb.write_geoparquet(chunks(), crs, path))
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
    if address_col and (lon_col or lat_col):
        raise InputError("give either --address-col or --lon-col/--lat-col, not both")
    data = open_input(str(src))
    spec = row_spec(data, crs, lon_col, lat_col, address_col, chunk_rows)
    index = locator.index(at)
    addresses = addresses_of(locator, address_col, at)
    with dask_cluster.client(scheduler, workers=workers) as c:
        dask_cluster.announce(c)
        totals = _compute(c, data, spec, index, addresses, dst, progress)
    return {**totals, "crs": spec.crs, "parts": totals.pop("parts")}


def row_spec(data, crs, lon_col, lat_col, address_col, chunk_rows=PART_CHUNK) -> RowSpec:
    """The row spec of a partitioned input, with the columns checked before any task runs."""
    geometry_points = data.geometry is not None and lon_col is None and address_col is None
    if not geometry_points:
        coordinate_columns(data.columns(), data.name, lon_col, lat_col, address_col)
    return RowSpec(
        data.name,
        lon_col if not geometry_points else None,
        lat_col if not geometry_points else None,
        address_col,
        data.geometry,
        rows_crs(crs, data.crs, address_col),
        chunk_rows,
    )


def _compute(c, data, spec, index, addresses, dst, progress) -> dict:
    """Run every partition's task; swap the folder in when all succeeded, else remove it."""
    # deferred: the scale extra (dask)
    from dask import delayed

    index_f = dask_cluster.broadcast(c, index)
    addresses_f = dask_cluster.broadcast(c, addresses) if addresses is not None else None
    tmp = part_folder.start(dst)
    try:
        parts = data.frame.to_delayed()
        run = delayed(_run_part, pure=False)
        tasks = [run(p, i, spec, index_f, addresses_f, str(tmp)) for i, p in enumerate(parts)]
        totals = dask_cluster.sum_counts(c, tasks, progress, f"dask run failed, nothing written to {dst}")
        manifest = {**totals, "parts": len(parts), "crs": spec.crs, "epoch": index.epoch, "source": data.files}
        part_folder.finish(tmp, dst, manifest)
    except BaseException:
        part_folder.abandon(tmp)
        raise
    return {**totals, "parts": len(parts)}
