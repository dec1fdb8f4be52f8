"""``gridmap people``: the roster, coverage and load (``gridmap qr``, the codes to print, is in qr.py).

The CLI is a local operator's tool (whoever runs it has the database), yet phone numbers print
masked unless ``--phones`` asks for them whole, so a roster listing can be shared as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..domain.people import LABELS, ROLES, mask_phone
from ..services import people as people_service
from .common import AT, engine, rules, settings

FORMAT = click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)


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
    from ..services import roster  # deferred: the file readers (Excel, encodings) only an import needs

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
    summary, gaps, load = people_service.coverage(engine(), rules(), max_households=max_households, limit=limit)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"summary": summary, "gaps": gaps, "load": load},
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
    for row in gaps[:limit]:
        click.echo(f"  gap  {row['code']:<20} {row['name']:<24} {row['problem']}")
    for row in load:
        flag = "  OVERLOADED" if row["overloaded"] else ""
        click.echo(
            f"  load {row['name']:<8} grids {row['grids']:>2}  households {row['households']:>4} "
            f"(share {row['households_share']:>6.1f})  risk {row['risk_elements']:>3}  "
            f"overdue {row['overdue_visits']:>3}  open cases {row['open_cases']:>3}{flag}"
        )
