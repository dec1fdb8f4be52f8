"""``gridmap matters``: the matter catalogue (事项清单): list, check, import, generate the demo's."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..domain.demo import matters as demo_matters
from ..errors import InputError
from ..services import matters as catalogue_files
from .common import settings


@click.group()
def matters():
    """The matter catalogue (事项清单): who handles what, how fast, how duplicates are found."""


@matters.command("list")
@click.option("--category", default=None, help="Only this category (e.g. 市容环境).")
@click.option("--auto/--manual", "auto", default=None, help="Only automatic / hand-dispatched matters.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_cmd(category, auto, fmt):
    """The matters in force, one line each (code, category, level, deadline, auto, name)."""
    catalogue = catalogue_files.load(settings().layers_dir)
    rows = [
        m
        for m in catalogue.matters.values()
        if (category is None or m.category == category) and (auto is None or m.auto == auto)
    ]
    if fmt == "json":
        click.echo(
            json.dumps(
                [m.to_dict() for m in rows],
                ensure_ascii=False,
                indent=1,
            )
        )
        return
    for m in rows:
        click.echo(f"{m.code}\t{m.category}\t{m.level}\t{m.deadline}\t{'auto' if m.auto else 'queue'}\t{m.name}")
    click.echo(f"{len(rows)} matters ({sum(m.auto for m in rows)} automatic)", err=True)


@matters.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def check_cmd(file):
    """Check a catalogue (FILE: a matters TOML, its CSV beside it, or a CSV of matters to use with the TOML
    in force; default: the one in force); every problem on its own line."""
    path = Path(file) if file else Path(settings().layers_dir) / catalogue_files.FILE
    try:
        catalogue = catalogue_files.check(path, settings().layers_dir)
    except InputError as exc:
        for line in exc.detail or [exc.message]:
            click.echo(f"gridmap: error: {line}", err=True)
        raise SystemExit(1) from None
    n = len(catalogue.matters)
    click.echo(
        f"{path}: {n} matters in {len(catalogue.categories())} categories, "
        f"{sum(m.auto for m in catalogue.matters.values())} automatic; no problems"
    )


@matters.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_cmd(file):
    """Make FILE (a matters.toml, or a CSV of matters) the catalogue in force, after checking it whole."""
    catalogue = catalogue_files.install(file, settings().layers_dir)
    click.echo(f"{len(catalogue.matters)} matters now in force from {file}", err=True)


@matters.command("generate")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
def generate_cmd(out):
    """Write the demo catalogue's CSV (504 matters, 145 automatic) to OUT."""
    out.write_text(catalogue_files.demo_csv_text(), encoding="utf-8")
    click.echo(f"wrote {demo_matters.TOTAL} matters ({demo_matters.AUTO} automatic) to {out}", err=True)
