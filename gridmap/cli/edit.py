"""``gridmap edit`` (checked boundary edits with an impact preview) and ``gridmap history``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..domain.boundaries import OPS
from ..domain.levels import ALL_LEVELS
from ..errors import EditRejected, InputError
from ..services import boundary_edits
from .common import engine, rules, settings


def _read_geojson(path: Path) -> dict:
    """A GeoJSON file as a dict (InputError naming the file when it is not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable GeoJSON file ({exc})") from None


def _read_edit(path: Path) -> dict:
    """An edit JSON file as a dict (InputError naming the file when it is not JSON, or has no "op")."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable edit JSON file ({exc})") from None
    if not isinstance(data, dict) or "op" not in data:
        raise InputError(f'{path}: not an edit: no "op" (one of {", ".join(OPS)})')
    return data


def _one_geometry(path: Path) -> dict:
    """The geometry of a GeoJSON file holding a geometry, a Feature or a one-feature collection."""
    data = _read_geojson(path)
    if data.get("type") == "FeatureCollection":
        if len(data.get("features") or []) != 1:
            raise InputError(f"{path}: expected one feature, found {len(data.get('features') or [])}")
        data = data["features"][0]
    if data.get("type") == "Feature":
        data = data.get("geometry")
    if not isinstance(data, dict):
        raise InputError(f"{path}: no geometry")
    return data


_CRS = click.option("--crs", help="CRS of the geometry files (wgs84, cgcs2000, gcj02, bd09, EPSG:n); default wgs84.")


def _edit_options(fn):
    for opt in reversed(
        [
            click.option("--dry-run", is_flag=True, help="Check and preview the impact; write nothing."),
            click.option("--reason", help="Why (kept in the audit log with the impact report)."),
            click.option(
                "--if-match",
                "if_match",
                multiple=True,
                metavar="CODE=ETAG",
                help="Fail (412) unless CODE is still at version ETAG (repeatable).",
            ),
            click.option(
                "--actor", default=lambda: settings().user, show_default="$USER", help="Who edits (for the audit log)."
            ),
            click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True),
        ]
    ):
        fn = opt(fn)
    return fn


def _run_edit(op: dict, crs, dry_run, reason, if_match, actor, fmt):
    if crs:
        op["crs"] = crs
    pairs = {}
    for item in if_match:
        code, sep, tag = item.partition("=")
        if not sep or not code or not tag:
            raise InputError(f"--if-match takes CODE=ETAG, got {item!r}")
        pairs[code] = tag
    try:
        report = boundary_edits.apply(
            engine(),
            op,
            actor=actor,
            rules=rules(),
            reason=reason,
            dry_run=dry_run,
            if_match=pairs,
            option_names={"gap_to": "--gap-to", "cascade": "--cascade"},
        )
    except EditRejected as exc:
        _print_rejection(exc, fmt)
        raise
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        return
    click.echo(
        f"{report['op']} ({report['level']}): closes {', '.join(report['closed']) or '-'}; "
        f"opens {', '.join(report['opened']) or '-'}"
    )
    for code, v in report["grids"]["before"].items():
        a = report["grids"]["after"].get(code)
        after = f"{a['households']} households, {a['area_m2']:,.0f} m²" if a else "retired"
        click.echo(f"  {code}: {v['households']} households, {v['area_m2']:,.0f} m² -> {after}")
    for code, a in report["grids"]["after"].items():
        if code not in report["grids"]["before"]:
            click.echo(f"  {code} (new): {a['households']} households, {a['area_m2']:,.0f} m²")
    if report["children_moved"]:
        click.echo("  children moved: " + ", ".join(f"{c} -> {p}" for c, p in report["children_moved"].items()))
    moved = ", ".join(f"{m['count']} {name.replace('_', ' ')}" for name, m in report["moved"].items())
    click.echo(f"  changing grid: {moved}")
    if report["out_of_band"]:
        click.echo(f"  out of the {report['band'][0]}-{report['band'][1]} band: {', '.join(report['out_of_band'])}")
    for note in report["notes"]:
        click.echo(f"  note: {note}")
    if report["dry_run"]:
        click.echo("dry run: nothing written", err=True)
    else:
        click.echo(
            f"committed edit {report['edit_id']} (valid from {report['valid_from']}); new versions: "
            + ", ".join(f"{c} {t}" for c, t in report["etags"].items()),
            err=True,
        )


def _print_rejection(exc: EditRejected, fmt: str) -> None:
    """Every problem of a rejected edit on stdout (the whole report as JSON with ``--format json``,
    outlines included); the one-line error follows on stderr."""
    problems = (exc.detail or {}).get("problems", [])
    if fmt == "json":
        click.echo(json.dumps(exc.to_dict(), ensure_ascii=False, indent=2))
        return
    for p in problems:
        area = f" {p['area_m2']:,.1f} m²" if p.get("area_m2") is not None else ""
        where = f" at {p['location'][0]}, {p['location'][1]}" if p.get("location") else ""
        click.echo(f"  {p['kind']}{area}{where}: {p['message']}")


@click.group()
def edit():
    """Redraw boundaries safely: every edit is checked (inside the parent, no overlap, no gap, valid,
    children inside) and previewed; a commit writes new dated versions and an audit entry."""


@edit.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_CRS
@_edit_options
def edit_apply(file, crs, dry_run, reason, if_match, actor, fmt):
    """An edit written as JSON: {"op": "replace"|"update"|"split"|"merge"|"move_boundary"|"create"|"retire", ...}."""
    _run_edit(_read_edit(file), crs, dry_run, reason, if_match, actor, fmt)


@edit.command("replace")
@click.argument("code")
@click.argument("geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--gap-to", metavar="CODE", help="The sibling that takes the area this grid gives up.")
@_CRS
@_edit_options
def edit_replace(code, geometry, gap_to, crs, dry_run, reason, if_match, actor, fmt):
    """Give grid CODE the outline in GEOMETRY (GeoJSON)."""
    _run_edit(
        {"op": "replace", "code": code, "geometry": _one_geometry(geometry), "gap_to": gap_to},
        crs,
        dry_run,
        reason,
        if_match,
        actor,
        fmt,
    )


@edit.command("split")
@click.argument("code")
@click.option(
    "--line",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A GeoJSON LineString crossing the grid.",
)
@click.option(
    "--parts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A GeoJSON FeatureCollection of the parts (properties code and name optional).",
)
@click.option("--cascade", is_flag=True, help="Split the children the line cuts along it too, in the same edit.")
@_CRS
@_edit_options
def edit_split(code, line, parts, cascade, crs, dry_run, reason, if_match, actor, fmt):
    """Split grid CODE by a line or into given parts; its children follow their parts (those the line
    cuts are named, or split with it under --cascade)."""
    op = {"op": "split", "code": code, **({"cascade": True} if cascade else {})}
    if line:
        op["line"] = _one_geometry(line)
    if parts:
        data = _read_geojson(parts)
        op["parts"] = [
            {
                "geometry": f.get("geometry"),
                "code": (f.get("properties") or {}).get("code"),
                "name": (f.get("properties") or {}).get("name"),
            }
            for f in data.get("features") or []
        ]
    _run_edit(op, crs, dry_run, reason, if_match, actor, fmt)


@edit.command("merge")
@click.argument("codes", nargs=-1, required=True)
@click.option("--name", help="Name of the merged grid (default: the first grid's).")
@_edit_options
def edit_merge(codes, name, dry_run, reason, if_match, actor, fmt):
    """Merge sibling grids CODES into the first."""
    _run_edit({"op": "merge", "codes": list(codes), "name": name}, None, dry_run, reason, if_match, actor, fmt)


@edit.command("move-boundary")
@click.argument("code")
@click.argument("other")
@click.argument("geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_CRS
@_edit_options
def edit_move_boundary(code, other, geometry, crs, dry_run, reason, if_match, actor, fmt):
    """Move the boundary between siblings CODE and OTHER: CODE gets GEOMETRY, OTHER the rest of both."""
    _run_edit(
        {"op": "move_boundary", "code": code, "other": other, "geometry": _one_geometry(geometry)},
        crs,
        dry_run,
        reason,
        if_match,
        actor,
        fmt,
    )


@edit.command("create")
@click.argument("geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--level", required=True, type=click.Choice(ALL_LEVELS))
@click.option("--parent", "parent_code", help="The parent grid's code (every level but district).")
@click.option("--name", required=True)
@click.option("--code", help="Default: the next free code under the parent.")
@click.option("--kind", help="For special grids: mall, market, school, enterprise, other.")
@click.option("--carve", is_flag=True, help="Take the new grid's area from the siblings it overlaps.")
@_CRS
@_edit_options
def edit_create(geometry, level, parent_code, name, code, kind, carve, crs, dry_run, reason, if_match, actor, fmt):
    """Create a grid with the outline in GEOMETRY."""
    grid = {"level": level, "parent_code": parent_code, "name": name, "geometry": _one_geometry(geometry)}
    if code:
        grid["code"] = code
    if kind:
        grid["kind"] = kind
    _run_edit({"op": "create", "grid": grid, "carve": carve}, crs, dry_run, reason, if_match, actor, fmt)


@edit.command("retire")
@click.argument("code")
@click.option("--gap-to", metavar="CODE", help="The sibling that takes the retired grid's area and children.")
@_edit_options
def edit_retire(code, gap_to, dry_run, reason, if_match, actor, fmt):
    """Retire grid CODE (its history stays)."""
    _run_edit({"op": "retire", "code": code, "gap_to": gap_to}, None, dry_run, reason, if_match, actor, fmt)


@click.command("history")
@click.argument("code")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def history_cmd(code, fmt):
    """Every version of grid CODE and the edits that touched it."""
    h = boundary_edits.history(engine(), code)
    if fmt == "json":
        click.echo(json.dumps(h, ensure_ascii=False, indent=2))
        return
    for v in h["versions"]:
        click.echo(
            f"{v['version']}  {v['valid_from']} .. {v['valid_to'] or 'now'}  {v['name']}  parent "
            f"{v['parent_code'] or '-'}  {v['households']} households  {v['area_m2']:,.0f} m²"
        )
    for e in h["edits"]:
        click.echo(
            f"edit {e['id']}  {e['at']}  {e['action']} by {e['actor']}" + (f": {e['reason']}" if e["reason"] else "")
        )
