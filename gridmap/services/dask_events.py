"""``gridmap events import --engine dask``: a hotline archive filed as cases on a Dask cluster,
all rows or none.

Each task takes one partition (:mod:`.partitioned_input`) a chunk at a time through the
single-process code: located (:func:`.dask_assign.locate_chunk`), checked row by row
(:func:`.event_import.check_rows`), routed and given its clock (:func:`.event_import.case_rows`,
the departments read by the worker from PostGIS), and copied, ``BATCH`` rows per COPY, into a
staging table in a transaction of its own (a retried partition replaces its rows).  A partition
with a bad row copies nothing more and reports its problems.

When every partition is in, one transaction decides and stores: the workers' problems, external ids
repeated in the file and ids already received from the channel (both found in the staging table)
are renumbered over the whole file and rejected together as the single-process import does;
otherwise the staged rows get case ids in file order and move into ``report``, with the three log
entries of each case (reported → filed → dispatched) and its reporter written by PostgreSQL from
them, and the staging table is dropped (:mod:`gridmap.store.staging`).  A failed run drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lazy_loader
import numpy as np

from ..store import cases, db, staging
from . import event_import
from .assignment import count_status, located_frame, places_of
from .dask_assign import RowSpec, locate_chunk, row_spec, run_partitions, worker_index
from .events import Centre
from .ingest import MAX_LISTED, Problems
from .partitioned_input import open_input, part_table

pd = lazy_loader.load("pandas")

#: Rows per COPY from a worker (bounds what one statement sends).
BATCH = 50_000


@dataclass(frozen=True)
class Job:
    """What every task needs besides its partition: the database, the staging table and its
    columns, the catalogue, the time zone, the channel, the matter column, the clocks, the time."""

    url: str
    stage: str
    columns: tuple[str, ...]
    catalogue: object
    tz: str
    channel: str
    matter_col: str
    clock: dict
    now: object


def _stage_part(part, number, source, places, spec: RowSpec, job: Job) -> dict:
    """Worker side: check, locate, route and stage partition ``number``; its counts and problems
    (row in the partition from 0, problem: the first MAX_LISTED) and how many."""
    index = worker_index(source)
    table = part_table(part, spec.schema)
    result = {"rows": 0, "placed": 0, "outside": 0, "bad": 0, "part": number, "problems": []}
    result.update(dispatched=0, queued=0, problem_count=0)

    def batches(conn):
        for start in range(0, table.num_rows, spec.chunk_rows):
            found = locate_chunk(table.slice(start, spec.chunk_rows), spec, index, places)
            for key, n in count_status(found.answers.status).items():
                result[key] += n
            frame = located_frame(found)
            problems = Problems(Path(spec.name))
            reported, ext = event_import.check_rows(job.catalogue, job.tz, frame, job.matter_col, problems)
            result["problem_count"] += len(problems.items)
            room = MAX_LISTED - len(result["problems"])  # a whole bad archive must not travel back
            result["problems"] += [(start + p["row"] - 1, p["problem"]) for p in problems.items[:room]]
            seq = np.arange(start, start + len(frame))
            if result["problem_count"]:  # the run is rejected: the rest is checked, only ids staged (for repeats)
                ids = pd.DataFrame(dict.fromkeys(job.columns), index=pd.RangeIndex(len(frame)), dtype=object)
                if ext is not None:
                    ids["external_id"] = ext.astype(object).where(ext.notna(), None).to_numpy()
                yield ids.assign(seq=seq)
                continue
            out = event_import.case_rows(
                job.catalogue, conn, frame, reported, ext, found.lon, found.lat, job.channel, job.clock, job.now
            )  # fmt: skip
            result["dispatched"] += int(out["state"].eq("dispatched").sum())
            result["queued"] += int(out["state"].eq("filed").sum())
            out["seq"] = seq
            for i in range(0, len(out), BATCH):
                yield out.iloc[i : i + BATCH]

    with db.engine(job.url).begin() as conn:
        staging.copy_part(conn, job.stage, list(job.columns), number, batches(conn))
    return result


def import_dask(
    centre: Centre,
    src: str,
    *,
    actor: str,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    matter_col: str = "matter",
    channel: str = "hotline",
    scheduler=None,
    workers=None,
    progress=None,
) -> dict:
    """:func:`.event_import.import_file` on Dask: the same cases, routes, clocks, log and reporters,
    or ImportRejected with the same problems and nothing written."""
    locator = centre.locator
    data = open_input(str(src))
    spec, _ = row_spec(data, crs, lon_col, lat_col, address_col)
    event_import.check_matter_column(data.schema.names, matter_col, Problems(Path(data.name)))
    index = locator.index(None)
    places = places_of(locator, address_col, None)
    now = centre.now()
    url = centre.engine.url.render_as_string(hide_password=False)
    columns = (*event_import.CASE_COLUMNS, *event_import.CONTACT)
    with centre.engine.begin() as conn:
        stage = staging.create(
            conn, "report", list(event_import.CASE_COLUMNS), extra=dict.fromkeys(event_import.CONTACT, "text")
        )
    job = Job(
        url, stage, columns, centre.catalogue, centre.tz, channel, matter_col, event_import.clocks(centre, now), now
    )
    results: list = []
    try:
        totals = run_partitions(
            locator, index, places, data, _stage_part, (spec, job), scheduler=scheduler, workers=workers,
            progress=progress, failed="dask run failed, nothing filed", results=results,
        )  # fmt: skip
        with centre.engine.begin() as conn:
            written = _store(conn, data.name, stage, results, channel, actor, now)
    finally:
        with centre.engine.begin() as conn:
            staging.drop(conn, stage)
    return {**written, "rows": totals["rows"], "outside": totals["outside"] + totals["bad"]}


def _store(conn, name: str, stage: str, results: list, channel: str, actor: str, now) -> dict:
    """Reject the run with every problem, numbered over the whole file, or move the staged cases in."""
    results = sorted(results, key=lambda r: r["part"])
    offset = dict(zip([r["part"] for r in results], np.cumsum([0] + [r["rows"] for r in results]).tolist()))
    problems = Problems(Path(name))
    for r in results:
        for seq, problem in r["problems"]:
            problems.add(offset[r["part"]] + seq + 1, problem)
        problems.unlisted += r["problem_count"] - len(r["problems"])
    for part, seq, value in staging.repeats(conn, stage, "external_id"):
        problems.add(offset[part] + seq + 1, f"external_id {value!r} appears twice in the file")
    for part, seq, value in cases.staged_known_ids(conn, stage, channel):
        problems.add(offset[part] + seq + 1, f"external_id {value!r} was already received from {channel}")
    problems.raise_if_any()
    first, last, n, contacts = cases.move_staged(conn, stage, list(event_import.CASE_COLUMNS), channel)
    steps = event_import.log_steps(actor)
    logged = cases.log_copied(conn, first, last, channel, now, steps, {"import": name}) if n else 0
    return {
        "cases": n,
        "dispatched": sum(r["dispatched"] for r in results),
        "queued": sum(r["queued"] for r in results),
        "log": logged,
        "contacts": contacts,
        "first_id": first if n else None,
    }
