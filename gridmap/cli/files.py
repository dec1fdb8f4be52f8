"""``gridmap import`` and ``gridmap export``: grids, buildings and people in and out of files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..domain.levels import ALL_LEVELS
from ..errors import ImportRejected
from ..services import ingest
from ..services.exports import EXPORT_FORMATS, export_level
from ..services.files import check_output
from ..services.imports import import_file
from .common import AT, ENCODING, engine, rules


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--level",
    required=True,
    type=click.Choice(ingest.IMPORT_LEVELS),
    help="Grid level of the rows, or building / person / share (a membership CSV: "
    "building,unit,floor_from,floor_to,micro_code).",
)
@click.option(
    "--crs",
    default=None,
    help="Source CRS: wgs84, cgcs2000, gcj02, bd09 or EPSG:n (default: the file's own, else WGS84).",
)
@click.option("--code-field", default="code", show_default=True)
@click.option("--name-field", default="name", show_default=True)
@click.option("--parent-field", default=None, help="Default: parent_code (courtyard_code for buildings).")
@click.option("--replace", is_flag=True, help="Give existing codes a new dated version instead of rejecting them.")
@click.option("--report", type=click.Path(path_type=Path), help="Write every problem of a rejected import as JSON.")
def import_cmd(file, level, crs, code_field, name_field, parent_field, replace, report):
    """Import FILE (GeoJSON, GeoPackage, Shapefile, Parquet, CSV with WKT): all rows or none."""
    if report:
        check_output(report)
    default_parent = "courtyard_code" if level == "building" else "parent_code"
    fields = ingest.Fields(code=code_field, name=name_field, parent=parent_field or default_parent)
    eng = engine()
    in_force = rules()
    try:
        with eng.begin() as conn:
            summary = import_file(conn, file, level, rules=in_force, crs=crs, fields=fields, replace=replace)
    except ImportRejected as exc:
        if report:
            report.write_text(json.dumps(exc.detail, ensure_ascii=False, indent=2))
        raise
    click.echo(f"imported {summary['rows']} {level} rows from {file}")


@click.command("export")
@click.option("--level", required=True, type=click.Choice((*ALL_LEVELS, "share")))
@click.option("--format", "fmt", required=True, type=click.Choice(list(EXPORT_FORMATS)))
@click.argument("out", type=click.Path(path_type=Path))
@AT
@ENCODING
def export_cmd(level, fmt, out, at, encoding):
    """Write the grids of a level to OUT (GeoJSON is RFC 7946)."""
    n = export_level(engine(), level, fmt, out, at=at, encoding=encoding)
    click.echo(f"wrote {n} {level} {'rows' if level == 'share' else 'grids'} to {out}")
