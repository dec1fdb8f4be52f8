"""``gridmap lookup``, ``gridmap assign`` and ``gridmap record``: points and files placed in their grids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..services.assignment import assign_file, record_file
from ..services.dask_assign import assign_dask
from ..services.dask_record import record_dask
from ..services.locator import Locator
from .common import AT, CRS, engine


@click.command("lookup")
@click.argument("lon", required=False)
@click.argument("lat", required=False)
@CRS
@click.option("--address", help="Look up a standard address (e.g. 二里岗街道宇通花园1号楼1单元) instead.")
@AT
def lookup_cmd(lon, lat, crs, address, at):
    """The chain of grids (district .. micro-grid), special grids and people for one point."""
    locator = Locator(engine())
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


ENGINE_OPTIONS = [
    click.option(
        "--engine",
        "run_engine",
        type=click.Choice(["single", "dask"]),
        default="single",
        show_default=True,
        help="dask: partitioned input and output on a Dask cluster (README 'Beyond one machine').",
    ),
    click.option("--scheduler", default=None, help="With --engine dask: a running scheduler (tcp://host:8786)."),
    click.option(
        "--workers", type=click.IntRange(1), default=None, help="With --engine dask and no scheduler: local workers."
    ),
]


def _engine_options(fn):
    for option in reversed(ENGINE_OPTIONS):
        fn = option(fn)
    return fn


def _check_engine(run_engine, scheduler, workers):
    if run_engine != "dask" and (scheduler or workers):
        raise click.UsageError("--scheduler and --workers go with --engine dask")


@click.command("assign")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@_rows_options
@AT
@_engine_options
def assign_cmd(src, dst, crs, lon_col, lat_col, address_col, at, run_engine, scheduler, workers):
    """Add the grid chain to every row of SRC (CSV, GeoJSON, GeoPackage, Parquet) and write DST.

    With --engine dask, SRC is a Parquet file or folder, a GeoParquet dataset or a CSV glob
    (quoted), and DST a folder of Parquet parts."""
    _check_engine(run_engine, scheduler, workers)
    rows = dict(crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col, at=at)
    with tqdm(desc="assign", unit=" rows", file=sys.stderr, disable=None) as bar:
        if run_engine == "dask":
            summary = assign_dask(
                Locator(engine()), str(src), dst, scheduler=scheduler, workers=workers, progress=bar.update, **rows
            )
        else:
            summary = assign_file(Locator(engine()), src, dst, progress=bar.update, **rows)
    click.echo(_summary_line(summary, dst), err=True)


@click.command("record")
@click.argument("what", type=click.Choice(["reports", "residents"]))
@click.argument("src", type=click.Path(path_type=Path))
@_rows_options
@click.option("--text-col", default="text", show_default=True, help="Reports: the column with the report text.")
@_engine_options
def record_cmd(what, src, crs, lon_col, lat_col, address_col, text_col, run_engine, scheduler, workers):
    """Store reports or residents from SRC with their micro-grid (all rows or none).

    With --engine dask, SRC is read in partitions as for assign, and the workers COPY the rows
    into a staging table moved into place in one transaction."""
    _check_engine(run_engine, scheduler, workers)
    rows = dict(crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col, text_col=text_col)
    if run_engine == "dask":
        with tqdm(desc="record", unit=" rows", file=sys.stderr, disable=None) as bar:
            summary = record_dask(
                Locator(engine()),
                what[:-1],
                str(src),
                scheduler=scheduler,
                workers=workers,
                progress=bar.update,
                **rows,
            )
    else:
        summary = record_file(Locator(engine()), what[:-1], src, **rows)
    click.echo(f"recorded {what}: " + _summary_line(summary), err=True)
