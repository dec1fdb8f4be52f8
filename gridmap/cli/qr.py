"""``gridmap qr``: QR codes for grids, buildings and unit entrances, sheets to post and single images.

Apart from ``gridmap people`` so that a coverage run does not import the PDF and QR libraries."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..services import qr as qr_service
from ..services import roster
from ..services.files import check_output
from .common import engine, settings

KINDS = {"grid": "g", "building": "b", "unit": "u"}


@click.group()
def qr():
    """QR codes for grids, buildings and unit entrances: sheets to post, single images."""


BASE = click.option("--base", help="The public address phones reach (default: GRIDMAP_PUBLIC_URL).")
KIND_OPTION = click.option(
    "--kinds",
    default="grid,building,unit",
    show_default=True,
    help="Which codes: grid, building, unit (comma-separated).",
)


def _base(base: str | None) -> str:
    return base or settings().public_url or ""


def _kinds(value: str) -> tuple[str, ...]:
    names = [k.strip() for k in value.split(",") if k.strip()]
    bad = [k for k in names if k not in KINDS]
    if bad or not names:
        raise click.BadParameter(f"{', '.join(bad) or value!r}: choose from grid, building, unit", param_hint="--kinds")
    return tuple(KINDS[k] for k in names)


@qr.command("sheet")
@click.option("--community", help="One community's codes into --out (a PDF).")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The PDF (with --community), else a folder for one PDF per community.",
)
@click.option(
    "--changed-since",
    help="Only codes whose grid, building or grid worker changed on or after this date "
    "(local time unless it names a zone): reprint after a boundary edit.",
)
@click.option(
    "--workers",
    default=os.cpu_count() or 1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes for a whole-city run.",
)
@KIND_OPTION
@BASE
def qr_sheet(community, out, changed_since, workers, kinds, base):
    """A4 sheets of stickers: the code, the place's name and code, the grid worker's masked phone."""
    since = roster.local_time(changed_since, settings().timezone)
    if community:
        check_output(out, (".pdf",))
        done = qr_service.sheet(engine(), community, out, base=_base(base), kinds=_kinds(kinds), since=since)
        click.echo(f"wrote {done['codes']} codes on {done['pages']} pages to {out}")
    else:
        done = qr_service.city_sheets(
            engine(), out, base=_base(base), kinds=_kinds(kinds), since=since, workers=workers
        )
        click.echo(f"wrote {done['codes']} codes in {done['files']} files to {out}/")


@qr.command("code")
@click.argument("code")
@click.option("--kind", default="grid", type=click.Choice(list(KINDS)), show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="FILE.svg or FILE.png")
@BASE
def qr_code(code, kind, out, base):
    """One code as SVG or PNG (by --out's suffix)."""
    check_output(out, (".svg", ".png"))
    data = qr_service.image(engine(), KINDS[kind], code, out.suffix[1:].lower(), base=_base(base))
    out.write_bytes(data)
    click.echo(f"wrote {out}")
