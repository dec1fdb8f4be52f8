"""``gridmap events``: the event centre from the command line: import a hotline export, simulate
routing, run the clock's tick (for cron), the queue, statistics, departments."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from tqdm import tqdm

from ..domain.events.intake import Report
from ..errors import InputError
from ..services import event_clock, event_import, event_views, events
from ..services.locator import Locator
from .common import CRS, check_engine, engine, engine_options, settings


def _centre():
    eng = engine()
    # the persisted index (GRIDMAP_HOME/index): an import locates its rows without building the city's
    return events.make_centre(settings(), eng, Locator(eng, home=settings().home))


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


@click.group("events")
def events_cmd():
    """The event centre (事件中心): cases through the closed loop."""


@events_cmd.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@CRS
@click.option("--lon-col", default=None, help="Longitude column (CSV; default lon).")
@click.option("--lat-col", default=None, help="Latitude column (CSV; default lat).")
@click.option("--address-col", default=None, help="Locate rows by this address column instead.")
@click.option("--matter-col", default="matter", show_default=True, help="Column holding the matter code.")
@click.option("--channel", default="hotline", show_default=True, help="Where the rows came from (hotline, app, …).")
@engine_options
def import_cmd(file, crs, lon_col, lat_col, address_col, matter_col, channel, run_engine, scheduler, workers):
    """File every row of FILE (CSV, GeoJSON, GeoPackage, Parquet) as a case, located, routed and logged:
    all rows or none.

    With --engine dask, FILE is a Parquet file or folder or a CSV glob read in partitions on a Dask
    cluster; the workers stage the cases and one transaction files them all (or none)."""
    check_engine(run_engine, scheduler, workers)
    centre = _centre()
    options = dict(
        actor=settings().user,
        crs=crs,
        lon_col=lon_col,
        lat_col=lat_col,
        address_col=address_col,
        matter_col=matter_col,
        channel=channel,
    )
    with tqdm(unit=" rows", unit_scale=True, desc=file.name, disable=None) as bar:
        if run_engine == "dask":
            from ..services.dask_events import import_dask  # deferred: dask, only for --engine dask

            done = import_dask(centre, str(file), scheduler=scheduler, workers=workers, progress=bar.update, **options)
        else:
            done = event_import.import_file(centre, file, progress=bar.update, **options)
    click.echo(
        f"filed {done['cases']} cases from {file}: {done['dispatched']} dispatched automatically, "
        f"{done['queued']} in the dispatchers' queues, {done['outside']} outside every grid",
        err=True,
    )


@events_cmd.command("route")
@click.option("--matter", required=True, help="Matter code (gridmap matters list).")
@click.argument("lon", required=False, type=float)
@click.argument("lat", required=False, type=float)
@CRS
@click.option("--address", default=None, help="Locate by address instead of LON LAT.")
def route_cmd(matter, lon, lat, crs, address):
    """Where a case of MATTER at LON LAT (or --address) would go, and why, without filing it."""
    if (lon is None) == (address is None):
        raise InputError("give LON LAT or --address")
    out = events.simulate(_centre(), matter, Report(matter, lon, lat, crs, address))
    click.echo(_json(out))


@events_cmd.command("tick")
@click.option("--at", "at", default=None, help="Act as if it were this ISO time (default: now).")
def tick_cmd(at):
    """Warn at 80 % and escalate overdue cases one level up their grid chain (safe to run from several hosts)."""
    try:
        when = datetime.fromisoformat(at) if at else None
    except ValueError:
        raise InputError(f"--at must be an ISO date-time such as 2026-05-01T09:00+08:00, got {at!r}") from None
    if when is not None and when.tzinfo is None:
        raise InputError("--at must state its time zone, e.g. 2026-05-01T09:00+08:00")
    done = event_clock.tick(_centre(), when)
    click.echo(
        f"warned {done['warned']}, escalated {done['escalated']}, overdue at the top {done['at_top']}, "
        f"assessed without a rating {done['assessed']}"
    )


@events_cmd.command("member")
@click.argument("department")
@click.argument("user")
@click.option("--remove", is_flag=True, help="Take USER out of DEPARTMENT instead.")
def member_cmd(department, user, remove):
    """Put USER in DEPARTMENT (a handler acts on the cases of the departments they belong to), or --remove."""
    done = events.set_member(engine(), department, user, member=not remove)
    if remove:
        click.echo(f"{user} left {department}" if done["changed"] else f"{user} was not in {department}")
    else:
        click.echo(f"{user} ({done['role']}) is {'now' if done['changed'] else 'already'} in {department}")


@events_cmd.command("queue")
@click.option("--grid", default=None, help="A grid code: its subtree.")
@click.option("--matter", default=None)
@click.option("--state", default=None, help="Comma list of states.")
@click.option("--overdue/--on-time", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
def queue_cmd(grid, matter, state, overdue, limit):
    """Open cases below --grid by deadline (times in the configured zone)."""
    page = event_views.queue(
        _centre(), grid=grid, matter=matter, states=state.split(",") if state else None, overdue=overdue, size=limit
    )
    for c in page["cases"]:
        flag = "OVERDUE" if c["overdue"] else ""
        click.echo(f"{c['id']}\t{c['state']}\t{c['due_at']}\t{c['matter_code']} {c['matter_name']}\t{flag}")
    click.echo(f"{page['total']} open cases (times in {page['time_zone']})", err=True)


@events_cmd.command("stats")
@click.option(
    "--group",
    default="street",
    show_default=True,
    type=click.Choice(["district", "street", "community", "courtyard", "micro", "department"]),
)
@click.option("--grid", default=None, help="Only below this grid.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
def stats_cmd(group, grid, fmt):
    """Cases, on-time rate, median handling hours, escalations, reopen rate, satisfaction per --group."""
    figures = event_views.stats(_centre(), group=group, grid=grid)
    if fmt == "csv":
        click.echo(event_views.stats_csv(figures), nl=False)
    elif fmt == "json":
        click.echo(_json(figures))
    else:
        for r in figures["rows"]:
            rate = "-" if r["on_time_rate"] is None else f"{r['on_time_rate']:.0%}"
            sat = "-" if r["satisfaction"] is None else f"{r['satisfaction']:.2f}"
            click.echo(
                f"{r['key']}\t{r['cases']} cases\t{r['open']} open\t{r['overdue']} overdue\ton time {rate}"
                f"\tescalations {r['escalations']}\tsatisfaction {sat}"
            )
