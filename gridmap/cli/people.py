"""``gridmap people`` (the roster, coverage and load) and ``gridmap qr`` (codes and sheets to print).

The CLI is a local operator's tool (whoever runs it has the database), yet phone numbers print
masked unless ``--phones`` asks for them whole, so a roster listing can be shared as it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..domain.people import LABELS, ROLES, mask_phone
from ..services import people as people_service
from ..services import qr as qr_service
from ..services import roster
from ..services.files import check_output
from .common import AT, engine, rules, settings

FORMAT = click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
KINDS = {"grid": "g", "building": "b", "unit": "u"}


@click.group()
def people():
    """The people who serve each grid: roster import, listing, coverage and load."""


@people.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--orgs", is_flag=True, help="FILE lists party organisations (code, name, kind, parent, grids).")
@click.option(
    "--replace",
    is_flag=True,
    help="FILE is the whole roster of the (role, place) pairs it names: other current posts there end.",
)
def people_import(file, orgs, replace):
    """Import a roster (grid or building, unit, role, name, phone, id_card, org, valid_from; CSV in UTF-8
    or GBK, or Excel; Chinese headers such as 网格编码 职务 姓名 电话 work): all rows or none."""
    if orgs:
        summary = roster.import_orgs(engine(), file, actor=settings().user)
        click.echo(
            f"imported {summary['organisations']} party organisations from {file.name} "
            f"({summary['created']} new, coverage +{summary['coverage_opened']} −{summary['coverage_closed']})"
        )
        return
    summary = roster.import_roster(engine(), file, replace=replace, actor=settings().user, zone=settings().timezone)
    click.echo(
        f"imported {summary['rows']} roster rows from {file.name}: {summary['people_added']} new people, "
        f"{summary['posts_opened']} posts opened, {summary['posts_kept']} kept, "
        f"{summary['posts_closed']} closed"
    )


@people.command("list")
@click.option("--grid", help="Only the posts of this grid.")
@click.option("--role", type=click.Choice(list(ROLES)), help="Only this role.")
@click.option("--phones", is_flag=True, help="Print phone numbers whole (default: masked, 138****5678).")
@AT
@FORMAT
def people_list(grid, role, phones, at, fmt):
    """Posts, current or as of --at (times in GRIDMAP_TZ, default Asia/Shanghai)."""
    posts = people_service.list_posts(
        engine(), grids=[grid] if grid else None, post_role=role, at=at, zone=settings().timezone
    )
    if not phones:
        for p in posts:
            p["phone"] = mask_phone(p["phone"])
    if fmt == "json":
        click.echo(json.dumps(posts, ensure_ascii=False, indent=2))
        return
    for p in posts:
        where = p["grid_code"] + (f" {p['building_code']}" if p["building_code"] else "")
        where += f" {p['unit']}单元" if p["unit"] else ""
        click.echo(
            f"{p['id']:>7}  {where:<34} {LABELS[p['role']]:<6} {p['name']:<8} {p['phone'] or '':<18} "
            f"from {p['valid_from'][:16]}"
        )
    click.echo(f"{len(posts)} posts (times in {settings().timezone})", err=True)


@people.command("coverage")
@click.option(
    "--max-households",
    default=140,
    show_default=True,
    type=click.IntRange(min=1),
    help="A worker sharing more households than this is overloaded.",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="Rows of each list.")
@FORMAT
def people_coverage(max_households, limit, fmt):
    """Grids with no grid worker, communities with no party organisation, and each worker's load."""
    summary, gaps, load = people_service.coverage(engine(), rules(), max_households=max_households)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"summary": summary, "gaps": gaps.to_dict("records"), "load": load.head(limit).to_dict("records")},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    s = summary
    click.echo(
        f"{s['grids_without_worker']} of {s['grids_needing_worker']} micro/special grids have no grid worker; "
        f"{s['communities_without_org']} of {s['communities']} communities have no party organisation; "
        f"{s['overloaded']} of {s['workers']} workers overloaded (> {max_households} households)"
    )
    for row in gaps.head(limit).itertuples():
        click.echo(f"  gap  {row.code:<20} {row.name:<24} {row.problem}")
    for row in load.head(limit).itertuples():
        flag = "  OVERLOADED" if row.overloaded else ""
        click.echo(
            f"  load {row.name:<8} grids {row.grids:>2}  households {row.households:>4} "
            f"(share {row.households_share:>6.1f})  risk {row.risk_elements:>3}  overdue {row.overdue_visits:>3}  "
            f"open cases {row.open_cases:>3}{flag}"
        )


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
