"""``gridmap partition``: courtyards split into micro-grids of a household band, with a report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..domain.levels import HOUSEHOLD_BAND
from ..domain.partition import Band
from ..services import partitioning
from .common import engine, rules


@click.command("partition")
@click.option("--courtyard", metavar="CODE", help="Partition this courtyard.")
@click.option("--community", metavar="CODE", help="Partition every courtyard of this community.")
@click.option("--all", "everything", is_flag=True, help="Partition every current courtyard.")
@click.option(
    "--min",
    "band_min",
    default=HOUSEHOLD_BAND[0],
    show_default=True,
    type=click.IntRange(min=1),
    help="Fewest households per micro-grid.",
)
@click.option(
    "--max",
    "band_max",
    default=HOUSEHOLD_BAND[1],
    show_default=True,
    type=click.IntRange(min=1),
    help="Most households per micro-grid.",
)
@click.option(
    "--policy",
    default="keep",
    show_default=True,
    type=click.Choice(["keep", "over", "under"]),
    help="For totals no grid count can split into the band: keep one grid over (over), under "
    "(under) or whichever is nearer the band (keep).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same proposal.")
@click.option("--dry-run", is_flag=True, help="Propose and report; write nothing to the database.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the proposed micro-grids as GeoJSON.")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
@click.option("--reason", help="Why (kept in the audit log).")
def partition_cmd(courtyard, community, everything, band_min, band_max, policy, seed, dry_run, out, fmt, reason):
    """Split courtyards into micro-grids of --min..--max households (a new dated version)."""
    if band_min > band_max:
        raise click.BadParameter(f"--min {band_min} is above --max {band_max}", param_hint="--min")
    band = Band(band_min, band_max, policy)
    eng = engine()
    with tqdm(desc="partition", unit=" courtyards", file=sys.stderr, disable=None if everything else True) as bar:
        report = partitioning.run(
            eng,
            rules=rules(),
            courtyard=courtyard,
            community=community,
            everything=everything,
            band=band,
            seed=seed,
            dry_run=dry_run,
            out=out,
            reason=reason,
            progress=bar.update,
            option_names={"courtyard": "--courtyard CODE", "community": "--community CODE", "all": "--all"},
        )
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    for f in report["failed"]:
        click.echo(f"{f['courtyard']}: FAILED: {f['reason']}")
    for c in report["courtyards"]:
        notes = []
        if c["households_out_of_band"]:
            notes.append(f"{c['households_out_of_band']} households in grids out of band")
        if c["units_split_by_floor"]:
            notes.append(f"{c['units_split_by_floor']} units split by floor")
        if c["buildings_shared"]:
            notes.append(f"{c['buildings_shared']} buildings shared")
        if c["multipart"]:
            notes.append(f"{c['multipart']} grids across a road (multipart)")
        if c["over_time"]:
            notes.append("over 2 h: " + ", ".join(c["over_time"]))
        if courtyard or c["households_out_of_band"]:
            click.echo(
                f"{c['courtyard']}: {c['households']} households -> {c['grids']} micro-grids, "
                f"{c['in_band']} in band, largest {c['largest_grid']}" + ("; " + "; ".join(notes) if notes else "")
            )
        if courtyard:
            for g in c["micro_grids"]:
                click.echo(
                    f"  {g['code']}: {g['households']} households, Polsby-Popper {g['polsby_popper']:.2f}, "
                    f"visit {g['visit_minutes']:.0f} min (stairs included): {', '.join(g['units'])}"
                )
    s = report["summary"]

    def pct(v):
        return f"{v:.1%}" if v is not None else "-"

    largest = s["largest_grid"]
    click.echo(
        f"{s['courtyards']} courtyards, {s['households']} households -> {s['micro_grids']} micro-grids; "
        f"in {band_min}-{band_max}: {pct(s['in_band_share'])} of grids, {pct(s['households_in_band_share'])} of "
        f"households ({pct(s['households_in_band_share_feasible'])} where the total fits the band); "
        f"{s['households_out_of_band']} households in grids out of band; {s['units_split_by_floor']} units split by "
        f"floor, {s['buildings_shared']} buildings shared, {s['multipart']} multi-part grids; largest grid "
        f"{largest['households'] if largest else '-'} households; {s['over_time']} over 2 h; "
        f"median Polsby-Popper {s['polsby_popper_median']}; {s['failed']} courtyards failed",
        err=True,
    )
    if "written" in report:
        w = report["written"]
        click.echo(
            f"wrote a new version: {w['closed']} micro-grids closed, {w['opened']} opened "
            f"(valid from {w['valid_from']})",
            err=True,
        )
    else:
        click.echo(
            "dry run: nothing written" + (f"; preview in {report['preview']}" if "preview" in report else ""), err=True
        )
