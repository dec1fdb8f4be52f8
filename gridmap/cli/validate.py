"""``gridmap validate`` (the integrity proof) and ``gridmap stats``."""

from __future__ import annotations

import json
import sys

import click

from ..domain import integrity
from ..domain.levels import ALL_LEVELS, LABELS
from ..services import grid_views, validation
from .common import AT, EXIT_PROBLEMS, engine


@click.command("validate")
@click.option("--level", type=click.Choice(ALL_LEVELS), help="Only check grids of this level against parents.")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json", "geojson"]), show_default=True)
@click.option(
    "--tolerance",
    default=integrity.DEFAULT_TOLERANCE_M2,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Ignore gaps, overlaps and outside pieces of at most this many m².",
)
@AT
def validate_cmd(level, fmt, tolerance, at):
    """Prove the hierarchy whole; exit 1 when any problem is found."""
    eng = engine()
    problems = validation.validate(eng, level=level, tolerance=tolerance, at=at)
    checked = validation.grid_count(eng, level=level, at=at)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "problems": [p.to_dict() for p in problems],
                    "count": len(problems),
                    "grids_checked": checked,
                    "tolerance_m2": tolerance,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    elif fmt == "geojson":
        click.echo(json.dumps(validation.problems_geojson(problems), ensure_ascii=False))
    else:
        for p in problems:
            where = f" at {p.location[0]:.6f},{p.location[1]:.6f}" if p.location else ""
            click.echo(f"{p.kind}: {p.message}{where}")
        click.echo(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in {checked} grids "
            f"(tolerance {tolerance:g} m²)",
            err=True,
        )
    sys.exit(EXIT_PROBLEMS if problems else 0)


@click.command("stats")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def stats_cmd(fmt):
    """Grids, households and population per level (district → micro-grid, then special), buildings, units."""
    stats = grid_views.stats(engine())
    if fmt == "json":
        click.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    click.echo(f"{'level':<10} {'grids':>8} {'households':>12} {'population':>12}  name")
    for level, row in stats["levels"].items():
        click.echo(f"{level:<10} {row['grids']:>8,} {row['households']:>12,} {row['population']:>12,}  {LABELS[level]}")
    click.echo(
        f"buildings {stats['buildings']:,}, units {stats['units']:,}, households in units "
        f"{stats['building_households']:,}; last change {stats['changed_at'] or 'never'}"
    )
