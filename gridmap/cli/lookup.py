"""``gridmap lookup``, ``gridmap assign`` and ``gridmap record``: points and files placed in their grids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..services.locator import Locator
from .common import AT, CRS, ENCODING, EXIT_PROBLEMS, check_engine, engine, engine_options, settings


@click.command("lookup")
@click.argument("lon", required=False)
@click.argument("lat", required=False)
@CRS
@click.option("--address", help="Look up a standard address (e.g. 二里岗街道宇通花园1号楼1单元) instead.")
@AT
def lookup_cmd(lon, lat, crs, address, at):
    """The chain of grids (district .. micro-grid), special grids and people for one point."""
    locator = Locator(engine(), home=settings().home)
    if address and (lon is not None or lat is not None):
        raise click.UsageError("give LON LAT or --address TEXT, not both")
    if address:
        body = locator.lookup_address(address, at=at)
    elif lon is None or lat is None:
        raise click.UsageError("give LON LAT, or --address TEXT")
    else:
        body = locator.lookup(lon, lat, crs=crs, at=at)
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))


ROWS_OPTIONS = [
    CRS,
    click.option("--lon-col", default=None, help="Longitude column (default: lon, or the geometry of a geo file)."),
    click.option("--lat-col", default=None, help="Latitude column (default: lat)."),
    click.option("--address-col", default=None, help="Place rows by this address column instead of coordinates."),
]


def _rows_options(fn):
    for option in reversed(ROWS_OPTIONS):
        fn = option(fn)
    return fn


def _summary_line(summary, dst=None):
    tail = f" -> {dst}" if dst else ""
    return (
        f"{summary['rows']} rows: {summary['placed']} placed, {summary['outside']} outside, {summary['bad']} bad{tail}"
    )


@click.command("assign")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@_rows_options
@AT
@ENCODING
@engine_options
def assign_cmd(src, dst, crs, lon_col, lat_col, address_col, at, encoding, run_engine, scheduler, workers):
    """Add the grid chain to every row of SRC (CSV, Excel, Parquet, GeoJSON, GeoPackage) and write DST.

    With --engine dask, SRC is a Parquet file or folder, a GeoParquet dataset or a CSV glob
    (quoted), and DST a folder of Parquet parts."""
    check_engine(run_engine, scheduler, workers)
    rows = dict(crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col, at=at)
    locator = Locator(engine(), home=settings().home)
    with tqdm(desc="assign", unit=" rows", file=sys.stderr, disable=None) as bar:
        if run_engine == "dask":
            from ..services.dask_assign import assign_dask  # deferred: dask and Arrow, not for `lookup`

            summary = assign_dask(
                locator, str(src), dst, scheduler=scheduler, workers=workers, progress=bar.update, **rows
            )
        else:
            from ..services.assignment import assign_file  # deferred: Arrow and the file readers, not for `lookup`

            summary = assign_file(locator, src, dst, progress=bar.update, encoding=encoding, **rows)
    click.echo(_summary_line(summary, dst), err=True)


@click.group("record")
def record_cmd():
    """Store reports or residents from a file with their micro-grid (one transaction)."""


@record_cmd.command("reports")
@click.argument("src", type=click.Path(path_type=Path))
@_rows_options
@click.option("--text-col", default="text", show_default=True, help="The column with the report's text.")
@click.option("--id-col", default=None, help="The column with the report's id in its source (default: id, if present).")
@click.option(
    "--time-col", default=None, help="The column with the report's own time (default: reported_at, if present)."
)
@click.option(
    "--source", default="file", show_default=True, help="The channel the file comes from (ids are per source)."
)
@click.option(
    "--rejects", type=click.Path(path_type=Path), help="Write rejected rows here (default: SRC.rejected.csv)."
)
@engine_options
def record_reports_cmd(
    src, crs, lon_col, lat_col, address_col, text_col, id_col, time_col, source, rejects, run_engine, scheduler, workers
):
    """Store the reports of SRC; a re-run updates changed ones and skips the rest.  Exit 1 when rows
    were rejected (written, with the reason, to a CSV this command reads back).

    With --engine dask, SRC is read in partitions as for assign, and the workers COPY the rows
    into a staging table stored in one transaction."""
    check_engine(run_engine, scheduler, workers)
    # deferred: Arrow and the file readers, as in assign
    from ..services.report_intake import Columns, record_reports, summary_line

    options = dict(
        columns=Columns(text=text_col, id=id_col, time=time_col, source=source),
        rejects=rejects,
        crs=crs,
        lon_col=lon_col,
        lat_col=lat_col,
        address_col=address_col,
    )
    locator = Locator(engine(), home=settings().home)
    if run_engine == "dask":
        from ..services.dask_record import record_reports_dask  # deferred: dask, only for --engine dask

        with tqdm(desc="record", unit=" rows", file=sys.stderr, disable=None) as bar:
            summary = record_reports_dask(
                locator, str(src), scheduler=scheduler, workers=workers, progress=bar.update, **options
            )
    else:
        summary = record_reports(locator, src, **options)
    click.echo(summary_line(summary), err=True)
    if summary["rejected"]:
        click.get_current_context().exit(EXIT_PROBLEMS)


@record_cmd.command("residents")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--address-col", required=True, help="The column with the household's address.")
@CRS
@engine_options
def record_residents_cmd(src, address_col, crs, run_engine, scheduler, workers):
    """Store residents from SRC placed by their address (optional name column).

    With --engine dask, as for reports: partitions on the workers, one transaction."""
    check_engine(run_engine, scheduler, workers)
    locator = Locator(engine(), home=settings().home)
    if run_engine == "dask":
        from ..services.dask_record import record_residents_dask  # deferred: dask, only for --engine dask

        with tqdm(desc="record", unit=" rows", file=sys.stderr, disable=None) as bar:
            summary = record_residents_dask(
                locator, str(src), address_col=address_col, crs=crs, scheduler=scheduler, workers=workers,
                progress=bar.update,
            )  # fmt: skip
    else:
        from ..services.assignment import record_residents  # deferred: Arrow and the file readers, as in assign

        summary = record_residents(locator, src, address_col=address_col, crs=crs)
    click.echo("recorded residents: " + _summary_line(summary), err=True)
