"""The ``gridmap`` command line. Errors become one line on stderr and a non-zero exit, here only."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import config, ingest, ops
from .domain import integrity
from .domain.levels import ALL_LEVELS
from .errors import GridmapError

EXIT_PROBLEMS = 1  # validate found problems
EXIT_ERROR = 2  # bad input, rejected import, unreachable database


class _Group(click.Group):
    """Turns gridmap errors into one readable line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GridmapError as exc:
            click.echo(f"gridmap: error: {exc.message}", err=True)
            ctx.exit(EXIT_ERROR)


def _engine():
    from .store.db import engine

    eng = engine()
    ops.ensure_schema(eng)
    return eng


def _parse_at(ctx, param, value):
    try:
        return ops.parse_at(value)
    except GridmapError as exc:
        raise click.BadParameter(exc.message) from None


AT = click.option("--at", callback=_parse_at, help="Use the version valid at this ISO date.")


@click.group(cls=_Group)
@click.version_option(package_name="gridmap")
def main():
    """gridmap: electronic grid map ("一张图") for community grid governance on PostGIS."""


# --- db ---------------------------------------------------------------------------

@main.group(cls=_Group)
def db():
    """The project's own PostGIS (ignored when GRIDMAP_DATABASE_URL is set)."""


def _external_note() -> bool:
    if config.external_database_url():
        click.echo("GRIDMAP_DATABASE_URL is set: using that database, no local cluster", err=True)
        return True
    return False


@db.command("start")
def db_start():
    """Create (first time) and start the local cluster, create the database and migrate it."""
    from .store import cluster, db as dbmod

    if not _external_note():
        info = cluster.start()
        click.echo(f"PostGIS running on 127.0.0.1:{info['port']} (data in {info['data_dir']})", err=True)
    revision = dbmod.migrate()
    click.echo(f"schema at revision {revision}", err=True)
    click.echo(config.database_url())


@db.command("stop")
def db_stop():
    """Stop the local cluster."""
    from .store import cluster

    if not _external_note():
        info = cluster.stop()
        click.echo("stopped" if not info["running"] else "still running")


@db.command("status")
def db_status():
    """Say whether the local cluster runs; exit 1 when it does not."""
    from .store import cluster

    if _external_note():
        click.echo(config.database_url())
        return
    info = cluster.status()
    click.echo(json.dumps(info, indent=2))
    sys.exit(0 if info["running"] else 1)


@db.command("url")
def db_url():
    """Print the SQLAlchemy URL gridmap uses."""
    click.echo(config.database_url())


@db.command("upgrade")
def db_upgrade():
    """Apply the Alembic migrations to the configured database."""
    from .store import db as dbmod

    click.echo(f"schema at revision {dbmod.migrate()}")


# --- import / export / validate ------------------------------------------------------

@main.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--level", required=True, type=click.Choice(ingest.IMPORT_LEVELS),
              help="Grid level of the rows, or building / person.")
@click.option("--crs", default=None, help="Source CRS: wgs84, cgcs2000, gcj02, bd09 or EPSG:n "
              "(default: the file's own, else WGS84).")
@click.option("--code-field", default="code", show_default=True)
@click.option("--name-field", default="name", show_default=True)
@click.option("--parent-field", default=None, help="Default: parent_code (courtyard_code for buildings).")
@click.option("--replace", is_flag=True, help="Give existing codes a new dated version instead of rejecting them.")
@click.option("--report", type=click.Path(path_type=Path), help="Write every problem of a rejected import as JSON.")
def import_cmd(file, level, crs, code_field, name_field, parent_field, replace, report):
    """Import FILE (GeoJSON, GeoPackage, Shapefile, Parquet, CSV with WKT): all rows or none."""
    from .errors import ImportRejected

    if report:
        ops.check_output(report)
    default_parent = "courtyard_code" if level == "building" else "parent_code"
    fields = ingest.Fields(code=code_field, name=name_field, parent=parent_field or default_parent)
    eng = _engine()
    try:
        with eng.begin() as conn:
            summary = ops.import_file(conn, file, level, crs=crs, fields=fields, replace=replace)
    except ImportRejected as exc:
        if report:
            report.write_text(json.dumps(exc.detail, ensure_ascii=False, indent=2))
        raise
    click.echo(f"imported {summary['rows']} {level} rows from {file}")


@main.command("export")
@click.option("--level", required=True, type=click.Choice(ALL_LEVELS))
@click.option("--format", "fmt", required=True, type=click.Choice(list(ops.EXPORT_FORMATS)))
@click.argument("out", type=click.Path(path_type=Path))
@AT
def export_cmd(level, fmt, out, at):
    """Write the grids of a level to OUT (GeoJSON is RFC 7946)."""
    n = ops.export_level(_engine(), level, fmt, out, at=at)
    click.echo(f"wrote {n} {level} grids to {out}")


@main.command("validate")
@click.option("--level", type=click.Choice(ALL_LEVELS), help="Only check grids of this level against parents.")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json", "geojson"]), show_default=True)
@click.option("--tolerance", default=integrity.DEFAULT_TOLERANCE_M2, show_default=True, type=click.FloatRange(min=0),
              help="Ignore gaps, overlaps and outside pieces of at most this many m².")
@AT
def validate_cmd(level, fmt, tolerance, at):
    """Prove the hierarchy whole; exit 1 when any problem is found."""
    eng = _engine()
    problems = ops.validate(eng, level=level, tolerance=tolerance, at=at)
    checked = ops.grid_count(eng, level=level, at=at)
    if fmt == "json":
        click.echo(json.dumps({"problems": [p.to_dict() for p in problems], "count": len(problems),
                               "grids_checked": checked, "tolerance_m2": tolerance}, ensure_ascii=False, indent=2))
    elif fmt == "geojson":
        click.echo(json.dumps(ops.problems_geojson(problems), ensure_ascii=False))
    else:
        for p in problems:
            where = f" at {p.location[0]:.6f},{p.location[1]:.6f}" if p.location else ""
            click.echo(f"{p.kind}: {p.message}{where}")
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in {checked} grids "
                   f"(tolerance {tolerance:g} m²)", err=True)
    sys.exit(EXIT_PROBLEMS if problems else 0)


@main.command("partition")
@click.option("--courtyard", metavar="CODE", help="Partition this courtyard.")
@click.option("--community", metavar="CODE", help="Partition every courtyard of this community.")
@click.option("--all", "everything", is_flag=True, help="Partition every current courtyard.")
@click.option("--min", "band_min", default=50, show_default=True, type=click.IntRange(min=1),
              help="Fewest households per micro-grid.")
@click.option("--max", "band_max", default=70, show_default=True, type=click.IntRange(min=1),
              help="Most households per micro-grid.")
@click.option("--policy", default="keep", show_default=True, type=click.Choice(["keep", "over", "under"]),
              help="For totals no grid count can split into the band: keep one grid over (over), under "
                   "(under) or whichever is nearer the band (keep).")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same proposal.")
@click.option("--dry-run", is_flag=True, help="Propose and report; write nothing to the database.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the proposed micro-grids as GeoJSON.")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
@click.option("--reason", help="Why (kept in the audit log).")
def partition_cmd(courtyard, community, everything, band_min, band_max, policy, seed, dry_run, out, fmt, reason):
    """Split courtyards into micro-grids of --min..--max households (a new dated version)."""
    from tqdm import tqdm

    from . import partitions
    from .domain.partition import Band

    if band_min > band_max:
        raise click.BadParameter(f"--min {band_min} is above --max {band_max}", param_hint="--min")
    band = Band(band_min, band_max, policy)
    eng = _engine()
    with tqdm(desc="partition", unit=" courtyards", file=sys.stderr, disable=None if everything else True) as bar:
        report = partitions.run(eng, courtyard=courtyard, community=community, everything=everything, band=band,
                                seed=seed, dry_run=dry_run, out=out, reason=reason, progress=bar.update)
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    for c in report["courtyards"]:
        notes = []
        if c["error"]:
            notes.append(f"FAILED: {c['error']}")
        if c["policy"]:
            notes.append(f"{c['note'] or 'infeasible total'}, policy {c['policy']}")
        if c["split_units"]:
            notes.append("split by floors: " + ", ".join(f"{u['building']} unit {u['unit']} ({u['households']} hh "
                                                         f"in {len(u['parts'])})" for u in c["split_units"]))
        if c["over_time"]:
            notes.append("over 2 h: " + ", ".join(c["over_time"]))
        if courtyard or notes:
            click.echo(f"{c['courtyard']}: {c['households']} households -> {c['grids']} micro-grids, "
                       f"{c['in_band']} in band" + ("; " + "; ".join(notes) if notes else ""))
        if courtyard:
            for g in c["micro_grids"]:
                click.echo(f"  {g['code']}: {g['households']} households, Polsby-Popper {g['polsby_popper']:.2f}, "
                           f"visit {g['visit_minutes']:.0f} min, {len(g['units'])} units")
    s = report["summary"]
    share = f"{s['in_band_share']:.1%}" if s["in_band_share"] is not None else "-"
    click.echo(f"{s['courtyards']} courtyards, {s['households']} households -> {s['micro_grids']} micro-grids, "
               f"{s['in_band']} in {band_min}-{band_max} ({share}); {s['infeasible_totals']} infeasible totals, "
               f"{s['units_too_coarse']} with units too coarse for the band, "
               f"{s['split_units']} split units, {s['over_time']} over 2 h, {s['failed']} failed; "
               f"median Polsby-Popper {s['polsby_popper_median']}", err=True)
    if "written" in report:
        w = report["written"]
        click.echo(f"wrote a new version: {w['closed']} micro-grids closed, {w['opened']} opened "
                   f"(valid from {w['valid_from']})", err=True)
    else:
        click.echo("dry run: nothing written" + (f"; preview in {report['preview']}" if "preview" in report else ""),
                   err=True)


@main.command("stats")
def stats_cmd():
    """Counts and households per level."""
    click.echo(json.dumps(ops.stats(_engine()), ensure_ascii=False, indent=2))


# --- lookup ---------------------------------------------------------------------------

CRS_OPTION = click.option("--crs", default=None, help="Coordinates' CRS: wgs84 (default), cgcs2000, gcj02, bd09, EPSG:n.")


@main.command("lookup")
@click.argument("lon", required=False)
@click.argument("lat", required=False)
@CRS_OPTION
@click.option("--address", help="Look up a standard address (e.g. 二里岗街道宇通花园1号楼1单元) instead.")
@AT
def lookup_cmd(lon, lat, crs, address, at):
    """The chain of grids (district .. micro-grid), special grids and people for one point."""
    from .lookups import Locator

    locator = Locator(_engine())
    if address and (lon is not None or lat is not None):
        raise click.UsageError("give LON LAT or --address TEXT, not both")
    if address:
        body = locator.lookup_address(address, at=at)
    elif lon is None or lat is None:
        raise click.UsageError("give LON LAT, or --address TEXT")
    else:
        body = locator.lookup(lon, lat, crs=crs, at=at)
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))


ROWS_OPTIONS = [
    CRS_OPTION,
    click.option("--lon-col", default=None, help="Longitude column (default: lon, or the geometry of a geo file)."),
    click.option("--lat-col", default=None, help="Latitude column (default: lat)."),
    click.option("--address-col", default=None, help="Place rows by this address column instead of coordinates."),
]


def _rows_options(fn):
    for option in reversed(ROWS_OPTIONS):
        fn = option(fn)
    return fn


def _summary_line(summary, dst=None):
    tail = f" -> {dst}" if dst else ""
    return (f"{summary['rows']} rows: {summary['placed']} placed, {summary['outside']} outside, "
            f"{summary['bad']} bad{tail}")


@main.command("assign")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@_rows_options
@AT
def assign_cmd(src, dst, crs, lon_col, lat_col, address_col, at):
    """Add the grid chain to every row of SRC (CSV, GeoJSON, GeoPackage, Parquet) and write DST."""
    from tqdm import tqdm

    from .lookups import Locator, assign_file

    with tqdm(desc="assign", unit=" rows", file=sys.stderr, disable=None) as bar:
        summary = assign_file(Locator(_engine()), src, dst, crs=crs, lon_col=lon_col, lat_col=lat_col,
                              address_col=address_col, at=at, progress=bar.update)
    click.echo(_summary_line(summary, dst), err=True)


@main.command("record")
@click.argument("what", type=click.Choice(["reports", "residents"]))
@click.argument("src", type=click.Path(path_type=Path))
@_rows_options
@click.option("--text-col", default="text", show_default=True, help="Reports: the column with the report text.")
def record_cmd(what, src, crs, lon_col, lat_col, address_col, text_col):
    """Store reports or residents from SRC with their micro-grid (one transaction)."""
    from .lookups import Locator, record_file

    summary = record_file(Locator(_engine()), what[:-1], src, crs=crs, lon_col=lon_col, lat_col=lat_col,
                          address_col=address_col, text_col=text_col)
    click.echo(f"recorded {what}: " + _summary_line(summary), err=True)


# --- demo ---------------------------------------------------------------------------

@main.group(cls=_Group)
def demo():
    """The demo city on real Zhengzhou boundaries."""


SCALE = click.option("--scale", default="guancheng", show_default=True, type=click.Choice(["guancheng", "zhengzhou"]))
SEED = click.option("--seed", default=20241, show_default=True, type=int)


def _progress():
    from tqdm import tqdm

    bar = tqdm(desc="demo", unit=" step", file=sys.stderr, disable=None)

    def step(label):
        bar.set_postfix_str(label)
        bar.update(1)
    return bar, step


@demo.command("generate")
@SCALE
@SEED
@click.argument("out_dir", type=click.Path(path_type=Path))
def demo_generate(scale, seed, out_dir):
    """Generate the demo city's files into OUT_DIR (with manifest.json)."""
    from .domain import demo_city

    bar, step = _progress()
    with bar:
        manifest = demo_city.generate(scale, seed, out_dir, progress=step)
    click.echo(json.dumps(manifest["counts"], ensure_ascii=False))


@demo.command("load")
@SCALE
@SEED
@click.option("--fresh", is_flag=True, help="Empty the grid store first.")
@click.option("--keep", type=click.Path(path_type=Path), help="Keep the generated files in this folder.")
def demo_load(scale, seed, fresh, keep):
    """Generate the demo city and import it in one transaction."""
    eng = _engine()
    bar, step = _progress()
    with bar:
        result = ops.load_demo(eng, scale, seed, out_dir=keep, fresh=fresh, progress=step)
    t = result["timings"]
    click.echo(f"loaded {scale}: {json.dumps(result['counts'], ensure_ascii=False)} "
               f"(generate {t['generate_s']:.1f} s, load {t['load_s']:.1f} s)")


# --- serve --------------------------------------------------------------------------

@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=min(2, os.cpu_count() or 1), show_default=True, type=click.IntRange(min=1),
              help="Worker processes (each holds its own lookup index).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(min=1),
              help="Request threads per worker.")
@click.option("--lookup-engine", default="index", show_default=True, type=click.Choice(["index", "postgis"]),
              help="Answer lookups from the in-memory index, or by one PostGIS query each (for comparison).")
@click.option("--warm/--no-warm", default=True, show_default=True,
              help="Build the current lookup index when a worker starts rather than on its first lookup.")
def serve(host, port, workers, threads, lookup_engine, warm):
    """Serve the map and API (granian, one process per worker)."""
    from .web import server

    _engine()
    server.check_bind(host, port)
    click.echo(f"gridmap on http://{host}:{port}/ ({workers} workers, lookups: {lookup_engine})", err=True)
    server.serve(host, port, workers=workers, threads=threads, lookup_engine=lookup_engine, warm=warm)


# --- risk ---------------------------------------------------------------------------

@main.group(cls=_Group)
def risk():
    """Three-colour risk elements (三色管理): import, visits, roll-up, listing."""


@risk.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@CRS_OPTION
@click.option("--kind-col", default="kind", show_default=True,
              help="person, place, thing, event, situation or organisation.")
@click.option("--colour-col", default="colour", show_default=True, help="red, yellow or blue.")
@click.option("--name-col", default="name", show_default=True)
@click.option("--reason-col", default="reason", show_default=True)
@click.option("--marked-by-col", default="marked_by", show_default=True)
@click.option("--marked-at-col", default="marked_at", show_default=True,
              help="ISO time it was marked (empty or no column: now).")
@click.option("--lon-col", default="lon", show_default=True, help="CSV without a wkt column: longitude.")
@click.option("--lat-col", default="lat", show_default=True, help="CSV without a wkt column: latitude.")
def risk_import(file, crs, kind_col, colour_col, name_col, reason_col, marked_by_col, marked_at_col, lon_col,
                lat_col):
    """Import risk elements from FILE (CSV with lon/lat or wkt, GeoJSON, GeoPackage, Parquet): every
    row placed in its micro-grid, all rows or none."""
    from . import risks
    from .lookups import Locator

    columns = risks.ElementColumns(kind=kind_col, colour=colour_col, name=name_col, reason=reason_col,
                                   marked_by=marked_by_col, marked_at=marked_at_col, lon=lon_col, lat=lat_col)
    s = risks.import_elements(Locator(_engine()), file, crs=crs, columns=columns)
    colours = ", ".join(f"{n} {c}" for c, n in s["by_colour"].items())
    click.echo(f"imported {s['rows']} risk elements from {file} ({colours}): {s['placed']} placed in a "
               f"micro-grid, {s['outside']} outside every grid; {s['grids_rolled_up']} grids rolled up", err=True)


@risk.command("visits")
@click.argument("file", type=click.Path(path_type=Path))
def risk_visits(file):
    """Record visits from the CSV FILE (columns element, visited_at, visitor, note): all rows or none."""
    from . import risks

    s = risks.import_visits(_engine(), file)
    click.echo(f"recorded {s['rows']} visits to {s['elements']} elements from {file}; "
               f"{s['grids_rolled_up']} grids rolled up", err=True)


@risk.command("rollup")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def risk_rollup(fmt):
    """Recompute every grid's colour from the elements below it (also done by imports and visits)."""
    from .domain.risk import COLOURS, load_rules
    from .store import risk as store

    rules = load_rules()
    eng = _engine()
    with eng.begin() as conn:
        n = store.refresh_rollup(conn, rules)
    with eng.connect() as conn:
        grids = store.summary(conn, rules)["grids"]
    if fmt == "json":
        click.echo(json.dumps({"grids": n, "by_level": grids}, ensure_ascii=False, indent=2))
        return
    for level, counts in grids.items():
        if any(counts.values()):
            click.echo(f"{level}: " + ", ".join(f"{counts[c]} {c}" for c in (*COLOURS, "none")))
    click.echo(f"{n} grids rolled up", err=True)


@risk.command("list")
@click.option("--grid", metavar="CODE", help="Elements below this grid (any level).")
@click.option("--kind", type=click.Choice(["person", "place", "thing", "event", "situation", "organisation"]))
@click.option("--colour", type=click.Choice(["red", "yellow", "blue"]))
@click.option("--overdue/--on-time", default=None, help="Only overdue elements (or only those on time).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True,
              help="text: a table; json: an RFC 7946 FeatureCollection.")
@AT
def risk_list(grid, kind, colour, overdue, limit, fmt, at):
    """List risk elements with their next visit due and overdue state."""
    from .domain.risk import load_rules
    from .store import risk as store

    with _engine().connect() as conn:
        found = store.list_elements(conn, load_rules(), grid=grid, kind=kind, colour=colour, overdue=overdue,
                                    at=at, limit=limit)
    if fmt == "json":
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    click.echo("id\tkind\tcolour\toverdue\tnext_visit_due\tmicro_code\tname\treason")
    for f in found["features"]:
        p = f["properties"]
        click.echo("\t".join(str(v) if v is not None else "-" for v in (
            p["id"], p["kind"], p["colour"], "OVERDUE" if p["overdue"] else "ok", p["next_visit_due"][:16],
            p["micro_code"], p["name"], p["reason"])))
    click.echo(f"{found['numberReturned']} of {found['numberMatched']} elements", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
