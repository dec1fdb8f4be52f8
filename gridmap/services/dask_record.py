"""``gridmap record reports|residents --engine dask``: rows placed on a Dask cluster, written to
PostGIS with COPY from the workers, all or nothing.

The index reaches the workers as for ``assign`` (:func:`.dask_assign.index_source`), and so do the
gazetteer and towers' floors for addresses.  Each task places one partition a chunk at a time with
the single-process code (:func:`.dask_assign.locate_chunk`, then
:func:`.report_intake.check_reports` or :func:`.assignment.resident_rows`) and copies the rows,
``BATCH`` per COPY, into a staging table in one transaction of its own (a retried partition
replaces its rows).  When every partition is staged, one transaction stores them: reports by
(source, id) as the single-process intake does (a repeated id, which only the staging table sees
across partitions, is rejected there), residents appended in file order; and drops the staging
table (:mod:`gridmap.store.staging`).  A failed run drops it, and the table never saw a row.
"""

from __future__ import annotations

from pathlib import Path

import lazy_loader
import numpy as np

from ..errors import InputError
from ..store import db, points, staging
from . import point_files
from .assignment import located_frame, places_of
from .assignment import resident_rows as make_resident_rows
from .dask_assign import RowSpec, locate_chunk, row_spec, run_partitions, worker_index
from .locator import Locator
from .partitioned_input import Partitioned, open_input, part_table
from .report_intake import REASON, Columns, check_reports, write_rejects

pd = lazy_loader.load("pandas")

#: Rows per COPY from a worker: bounds what a worker holds and what one statement sends.
BATCH = 50_000


def _stage_part(part, number, source, places, spec: RowSpec, kind, stage, url) -> dict:
    """Worker side: place partition ``number`` a chunk at a time and COPY its rows into the staging
    table; its counts (and for reports the rows rejected, with their row in the partition)."""
    index = worker_index(source)
    table = part_table(part, spec.schema)
    columns = points.columns(kind["table"])
    counts = {"rows": table.num_rows, "placed": 0, "outside": 0, "bad": 0, "part": number, "rejected": []}

    def batches():
        for start in range(0, table.num_rows, spec.chunk_rows):
            found = locate_chunk(table.slice(start, spec.chunk_rows), spec, index, places)
            out = located_frame(found)
            seq = np.arange(start, start + len(out))
            if kind["table"] == "report":
                checked = check_reports(
                    out, kind["columns"], spec.name, kind["tz"], found.crs, found.lon, found.lat,
                    spec.address_col, repeats=False,
                )  # fmt: skip
                rows, status, seq_kept = checked.frame, found.answers.status[checked.keep], seq[checked.keep]
                if len(checked.rejected):
                    counts["rejected"].append(checked.rejected.assign(_seq=seq[~checked.keep]))
            else:
                rows = make_resident_rows(out, spec.address_col, places.gazetteer)
                status, seq_kept = found.answers.status, seq
            for key, n in zip(("placed", "outside", "bad"), np.bincount(status.astype(np.int64), minlength=3)):
                counts[key] += int(n)
            for i in range(0, len(rows), BATCH):
                piece = rows.iloc[i : i + BATCH]
                yield piece.assign(seq=seq_kept[i : i + len(piece)])

    with db.engine(url).begin() as conn:
        staging.copy_part(conn, stage, columns, number, batches())
    return counts


def _run(locator: Locator, data: Partitioned, spec: RowSpec, kind: dict, at, scheduler, workers, progress):
    """Stage every partition, then store it all in one transaction with ``store(conn, stage)``;
    the summed counts and the tasks' results.  InputError when a partition fails for good."""
    index = locator.index(at)
    places = places_of(locator, spec.address_col, at)
    url = locator.engine.url.render_as_string(hide_password=False)
    columns = points.columns(kind["table"])
    with locator.engine.begin() as conn:
        stage = staging.create(conn, kind["table"], columns)
    results: list = []
    try:
        totals = run_partitions(
            locator, index, places, data, _stage_part, (spec, kind, stage, url), scheduler=scheduler,
            workers=workers, progress=progress, failed="dask run failed, nothing stored", results=results,
        )  # fmt: skip
        with locator.engine.begin() as conn:
            stored = kind["store"](conn, stage, results)
            staging.drop(conn, stage)
    except BaseException:
        with locator.engine.begin() as conn:
            staging.drop(conn, stage)
        raise
    return totals, stored, results


def record_residents_dask(
    locator: Locator, src: str, *, address_col: str, crs=None, scheduler=None, workers=None, progress=None
) -> dict:
    """:func:`.assignment.record_residents` on Dask: every row of ``src`` stored, or none."""
    if not address_col:
        raise InputError("residents are recorded by their address: give --address-col")
    data = open_input(str(src))
    spec, source_crs = row_spec(data, crs, None, None, address_col)

    def store(conn, stage, results):
        return {"stored": staging.move_into(conn, stage, "resident", points.columns("resident"))}

    kind = {"table": "resident", "store": store}
    totals, _, _ = _run(locator, data, spec, kind, None, scheduler, workers, progress)
    return {**totals, "crs": source_crs}


def record_reports_dask(
    locator: Locator,
    src: str,
    *,
    columns: Columns = Columns(),
    rejects=None,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    scheduler=None,
    workers=None,
    progress=None,
) -> dict:
    """:func:`.report_intake.record_reports` on Dask: the same rows stored (by source and id), the
    same rejects, in one transaction; nothing stored when a partition fails."""
    data = open_input(str(src))
    spec, source_crs = row_spec(data, crs, lon_col, lat_col, address_col)
    if columns.text not in data.schema.names:
        raise InputError(f"{data.name}: no column {columns.text!r} with the report's text (use --text-col)")
    id_name = columns.id or "id"
    repeats: list[tuple] = []

    def store(conn, stage, results):
        # placed: a micro-grid; outside: a point but none; bad: no point (as the worker counted them)
        repeats.extend(staging.repeated(conn, stage, ["source", "external_id"], ("micro_code", "geom")))
        n = staging.count(conn, stage)
        return points.upsert_reports_from(conn, stage, n, order="part, seq")

    kind = {"table": "report", "columns": columns, "tz": db.zone_of(locator.engine), "store": store}
    totals, stored, results = _run(locator, data, spec, kind, None, scheduler, workers, progress)
    rejected = _rejected(data, spec, results, repeats, id_name)
    summary = {**totals, **stored, "crs": source_crs}
    summary.update(rejected=len(rejected), source=columns.source, ids=id_name in data.schema.names)
    for _, _, _, _, placed, point in repeats:  # counted as stored by their worker: they are not
        summary["placed" if placed else "outside" if point else "bad"] -= 1
    summary["rejects"] = write_rejects(rejected.drop(columns=["_part", "_seq"]), _beside(data), rejects)
    return summary


def _rejected(data: Partitioned, spec: RowSpec, results: list, repeats: list, id_name: str) -> pd.DataFrame:
    """Every rejected row in file order: those the workers rejected, and the repeated ids the staging
    table found (read again from their partitions: they are few), with the reason as the
    single-process intake words it (rows numbered from 1 over the whole input)."""
    results = sorted(results, key=lambda r: r["part"])
    offset = dict(zip([r["part"] for r in results], np.cumsum([0] + [r["rows"] for r in results])))
    frames = [f.assign(_part=r["part"]) for r in results for f in r["rejected"]]
    for part in sorted({r[0] for r in repeats}):
        mine = [(s, p0, s0) for p, s, p0, s0, *_ in repeats if p == part]
        table = part_table(data.frame.get_partition(part).compute(), spec.schema)
        own = point_files.plain(table.take([s for s, _, _ in mine])).to_pandas()  # as the worker's rejects
        own = own[[c for c in own.columns if c != REASON]]
        own[REASON] = [
            f"duplicate {id_name} {v} (also row {offset[p0] + s0 + 1})" for v, (_, p0, s0) in zip(own[id_name], mine)
        ]
        frames.append(own.assign(_part=part, _seq=[s for s, _, _ in mine]))
    if not frames:
        return pd.DataFrame(columns=[*data.schema.names, REASON, "_part", "_seq"])
    return pd.concat(frames, ignore_index=True).sort_values(["_part", "_seq"], kind="stable").reset_index(drop=True)


def _beside(data: Partitioned) -> Path:
    """Where the default rejects file goes: beside the input (a folder's or a glob's folder gets a
    sibling ``<folder>.rejected.csv``, never a file the same glob would read again)."""
    first = Path(data.files[0])
    return first if len(data.files) == 1 else first.parent
