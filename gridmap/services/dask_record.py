"""``gridmap record reports|residents --engine dask``: rows placed on a Dask cluster, written to
PostGIS with COPY from the workers, all or nothing.

The index (and for addresses the gazetteer and towers' floors) is built once and broadcast, as
for ``assign`` (:mod:`.dask_assign`).  Each task places one partition with the single-process code
(:func:`.assignment.record_rows`) and copies it, ``BATCH`` rows per COPY, into a staging table
in one transaction of its own (a retried partition replaces its rows).  When every partition
is staged, one transaction moves the rows into the table in file order and drops the staging
table (:mod:`gridmap.store.staging`); a failed run drops it, and the table never saw a row.
"""

from __future__ import annotations

from datetime import datetime

from ..errors import InputError
from ..store import db, points, staging
from . import dask_cluster
from .assignment import record_rows
from .dask_assign import RowSpec, addresses_of, assign_part, row_spec
from .locator import Locator
from .partitioned_input import open_input

#: Rows per COPY from a worker: bounds what a worker holds and what one statement sends.
BATCH = 50_000


def _stage_part(part, number, spec: RowSpec, table, stage, url, texts, index, addresses) -> dict:
    """Worker side: place partition ``number`` a chunk at a time and COPY it into the staging table."""
    text_col, name_col = texts
    counts = {"rows": len(part), "placed": 0, "outside": 0, "bad": 0}
    columns = points.columns(table)

    def batches():
        for start in range(0, len(part), spec.chunk_rows):
            out, lon, lat = assign_part(part.iloc[start : start + spec.chunk_rows], spec, index, addresses)
            for status, n in out["status"].value_counts().items():
                counts[status] += int(n)
            rows = record_rows(
                table,
                out,
                lon,
                lat,
                spec.crs,
                spec.name,
                spec.address_col,
                text_col,
                name_col,
                addresses and addresses.gazetteer,
            )
            for i in range(0, len(rows), BATCH):
                piece = rows.iloc[i : i + BATCH]
                yield piece.assign(seq=range(start + i, start + i + len(piece)))

    with db.engine(url).begin() as conn:
        staging.copy_part(conn, stage, columns, number, batches())
    return counts


def record_dask(
    locator: Locator,
    table: str,
    src: str,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    text_col="text",
    name_col="name",
    at: datetime | None = None,
    progress=None,
) -> dict:
    """Store every row of ``src`` as a report or resident, placed on Dask; all rows or none.
    InputError for bad input or a failed run (nothing stored then)."""
    if table == "resident" and not address_col:
        raise InputError("residents are recorded by their address: give --address-col")
    data = open_input(str(src))
    spec = row_spec(data, crs, lon_col, lat_col, address_col)
    if table == "report" and text_col not in data.columns().columns:
        raise InputError(f"{data.name}: no column {text_col!r} with the report's text")
    index = locator.index(at)
    addresses = addresses_of(locator, address_col, at)
    url = locator.engine.url.render_as_string(hide_password=False)
    columns = points.columns(table)
    with locator.engine.begin() as conn:
        stage = staging.create(conn, table, columns)
    try:
        with dask_cluster.client(scheduler, workers=workers) as c:
            dask_cluster.announce(c)
            totals = _stage_all(c, data, spec, table, stage, url, (text_col, name_col), index, addresses, progress)
        with locator.engine.begin() as conn:
            staging.move_into(conn, stage, table, columns)
    except BaseException:
        with locator.engine.begin() as conn:
            staging.drop(conn, stage)
        raise
    return {**totals, "crs": spec.crs}


def _stage_all(c, data, spec, table, stage, url, texts, index, addresses, progress) -> dict:
    """Run every partition's staging task; InputError naming the failure when one fails for good."""
    # deferred: the scale extra (dask)
    from dask import delayed

    index_f = dask_cluster.broadcast(c, index)
    addresses_f = dask_cluster.broadcast(c, addresses) if addresses is not None else None
    run = delayed(_stage_part, pure=False)
    parts = data.frame.to_delayed()
    tasks = [run(p, i, spec, table, stage, url, texts, index_f, addresses_f) for i, p in enumerate(parts)]
    return dask_cluster.sum_counts(c, tasks, progress, "dask run failed, nothing stored")
