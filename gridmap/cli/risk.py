"""``gridmap risk``: three-colour risk elements (三色管理): import, visits, roll-up, listing."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from ..domain.risk import COLOURS, KINDS
from ..services import risk_elements
from ..services.locator import Locator
from .common import AT, CRS, engine, rules, settings


@click.group()
def risk():
    """Three-colour risk elements (三色管理): import, visits, roll-up, listing."""


@risk.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@CRS
@click.option(
    "--kind-col", default="kind", show_default=True, help="person, place, thing, event, situation or organisation."
)
@click.option("--colour-col", default="colour", show_default=True, help="red, yellow or blue.")
@click.option("--name-col", default="name", show_default=True)
@click.option("--reason-col", default="reason", show_default=True)
@click.option("--marked-by-col", default="marked_by", show_default=True)
@click.option(
    "--marked-at-col", default="marked_at", show_default=True, help="ISO time it was marked (empty or no column: now)."
)
@click.option("--lon-col", default="lon", show_default=True, help="CSV without a wkt column: longitude.")
@click.option("--lat-col", default="lat", show_default=True, help="CSV without a wkt column: latitude.")
def risk_import(file, crs, kind_col, colour_col, name_col, reason_col, marked_by_col, marked_at_col, lon_col, lat_col):
    """Import risk elements from FILE (CSV with lon/lat or wkt, GeoJSON, GeoPackage, Parquet): every
    row placed in its micro-grid, all rows or none."""
    columns = risk_elements.ElementColumns(
        kind=kind_col,
        colour=colour_col,
        name=name_col,
        reason=reason_col,
        marked_by=marked_by_col,
        marked_at=marked_at_col,
        lon=lon_col,
        lat=lat_col,
    )
    locator = Locator(engine(), home=settings().home)
    s = risk_elements.import_elements(locator, file, rules=rules(), crs=crs, columns=columns)
    colours = ", ".join(f"{n} {c}" for c, n in s["by_colour"].items())
    click.echo(
        f"imported {s['rows']} risk elements from {file} ({colours}): {s['placed']} placed in a "
        f"micro-grid, {s['outside']} outside every grid; {s['grids_rolled_up']} grids rolled up",
        err=True,
    )


@risk.command("visits")
@click.argument("file", type=click.Path(path_type=Path))
def risk_visits(file):
    """Record visits from the CSV FILE (columns element, visited_at, visitor, note): all rows or none."""
    s = risk_elements.import_visits(engine(), file, rules=rules())
    click.echo(
        f"recorded {s['rows']} visits to {s['elements']} elements from {file}; {s['grids_rolled_up']} grids rolled up",
        err=True,
    )


@risk.command("rollup")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def risk_rollup(fmt):
    """Recompute every grid's colour from the elements below it (also done by imports and visits)."""
    n, grids = risk_elements.rollup(engine(), rules())
    if fmt == "json":
        click.echo(json.dumps({"grids": n, "by_level": grids}, ensure_ascii=False, indent=2))
        return
    for level, counts in grids.items():
        if any(counts.values()):
            click.echo(f"{level}: " + ", ".join(f"{counts[c]} {c}" for c in (*COLOURS, "none")))
    click.echo(f"{n} grids rolled up", err=True)


def _time(value: str | None) -> str | None:
    """An ISO time as the CLI shows times: to the second, with its zone offset (as ``events queue``)."""
    return None if value is None else datetime.fromisoformat(value).isoformat(timespec="seconds")


@risk.command("list")
@click.option("--grid", metavar="CODE", help="Elements below this grid (any level).")
@click.option("--kind", type=click.Choice(KINDS))
@click.option("--colour", type=click.Choice(COLOURS))
@click.option("--overdue/--on-time", default=None, help="Only overdue elements (or only those on time).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "--format",
    "fmt",
    default="text",
    type=click.Choice(["text", "json"]),
    show_default=True,
    help="text: a table; json: an RFC 7946 FeatureCollection.",
)
@AT
def risk_list(grid, kind, colour, overdue, limit, fmt, at):
    """List risk elements with their next visit due and overdue state."""
    found = risk_elements.list_elements(
        engine(), rules(), grid=grid, kind=kind, colour=colour, overdue=overdue, at=at, limit=limit
    )
    if fmt == "json":
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    click.echo("id\tkind\tcolour\toverdue\tnext_visit_due\tmicro_code\tname\treason")
    for f in found["features"]:
        p = f["properties"]
        click.echo(
            "\t".join(
                str(v) if v is not None else "-"
                for v in (
                    p["id"],
                    p["kind"],
                    p["colour"],
                    "OVERDUE" if p["overdue"] else "ok",
                    _time(p["next_visit_due"]),
                    p["micro_code"],
                    p["name"],
                    p["reason"],
                )
            )
        )
    click.echo(f"{found['numberReturned']} of {found['numberMatched']} elements", err=True)
