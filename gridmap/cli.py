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
    _demo_admin(eng)


DEMO_ADMIN = "demo-admin"


def _demo_admin(eng) -> None:
    """A database without users gets ``demo-admin`` (role admin), its token printed once, so the demo's
    write routes can be tried; users are kept across `demo load --fresh`."""
    from .store import users as store

    with eng.begin() as conn:
        store.check_schema(conn)
        if store.count_users(conn, active=False):
            existing = store.list_users(conn)
            name = DEMO_ADMIN if any(u["name"] == DEMO_ADMIN for u in existing) else "NAME"
            click.echo(f"users exist already ({', '.join(u['name'] for u in existing[:5])}"
                       f"{', …' if len(existing) > 5 else ''}): no demo token printed; "
                       f"`gridmap users token {name}` prints a new one", err=True)
            return
        store.add_user(conn, DEMO_ADMIN, "admin")
        token = store.issue_token(conn, DEMO_ADMIN, label="demo")
    click.echo(f"added user {DEMO_ADMIN} (role admin) for the demo's write routes; send "
               "'Authorization: Bearer <token>':", err=True)
    _show_token(token, DEMO_ADMIN)


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

    from .store import users as store
    from .web import auth

    read = auth.read_mode()
    with _engine().connect() as conn:
        store.check_schema(conn)
        n = store.count_users(conn)
    server.check_bind(host, port)
    click.echo(f"gridmap on http://{host}:{port}/ ({workers} workers, lookups: {lookup_engine})", err=True)
    reads = "open" if read == "open" else "viewer token or above"
    click.echo(f"reads: {reads} ({auth.ENV_READ}); writes: a token of the route's role; {n} active users"
               + ("" if n else ": every write gets 401 until `gridmap users add NAME --role admin`"), err=True)
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


# --- users -------------------------------------------------------------------------

@main.group(cls=_Group)
def users():
    """Users, roles and API tokens. Local admin actions: whoever runs the CLI has the database."""


def _users_engine():
    from .store import users as store

    eng = _engine()
    with eng.connect() as conn:
        store.check_schema(conn)
    return eng


def _show_token(token: str, name: str) -> None:
    click.echo(f"token for {name} (shown this once; only its hash is kept):", err=True)
    click.echo(token)


ROLE = click.option("--role", required=True, type=click.Choice(["viewer", "dispatcher", "planner", "admin", "ingest"]),
                    help="viewer < dispatcher < planner < admin; ingest: scripts (reports, risk elements, visits, "
                         "lookups).")
LABEL = click.option("--label", help="What the token is for (shown by `users list`).")
EXPIRES = click.option("--expires-days", type=click.IntRange(min=1), help="The token stops working after N days.")


@users.command("add")
@click.argument("name")
@ROLE
@LABEL
@EXPIRES
def users_add(name, role, label, expires_days):
    """Add user NAME with a role and print its first token (once)."""
    from .store import users as store

    with _users_engine().begin() as conn:
        store.add_user(conn, name, role)
        token = store.issue_token(conn, name, label=label, expires_days=expires_days)
    _show_token(token, f"{name} ({role})")


@users.command("token")
@click.argument("name")
@LABEL
@EXPIRES
def users_token(name, label, expires_days):
    """Print another token for user NAME (once)."""
    from .store import users as store

    with _users_engine().begin() as conn:
        token = store.issue_token(conn, name, label=label, expires_days=expires_days)
    _show_token(token, name)


@users.command("list")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def users_list(fmt):
    """Users, their roles and tokens (prefix, label, created, last used, expiry, revoked; never the secret)."""
    from .store import users as store

    with _users_engine().connect() as conn:
        found = store.list_users(conn)
    if fmt == "json":
        click.echo(json.dumps(found, ensure_ascii=False, indent=2, default=lambda v: v.isoformat()))
        return

    def when(v):
        return v.strftime("%Y-%m-%d %H:%M") if v else "-"
    for u in found:
        state = f"disabled {when(u['disabled_at'])}" if u["disabled_at"] else "active"
        click.echo(f"{u['name']}\t{u['role']}\t{state}\tcreated {when(u['created_at'])}")
        for t in u["tokens"]:
            status = (f"revoked {when(t['revoked_at'])}" if t["revoked_at"] else "expired" if t["expired"]
                      else "live")
            click.echo(f"  {t['prefix']}…\t{status}\tcreated {when(t['created_at'])}\tlast used "
                       f"{when(t['last_used_at'])}\texpires {when(t['expires_at'])}\t{t['label'] or ''}".rstrip())
    click.echo(f"{len(found)} user{'' if len(found) == 1 else 's'}", err=True)


@users.command("revoke")
@click.argument("prefix")
def users_revoke(prefix):
    """Revoke the token starting with PREFIX (as `users list` shows it)."""
    from .store import users as store

    with _users_engine().begin() as conn:
        done = store.revoke_token(conn, prefix.rstrip("…"))
    click.echo(f"revoked token {done['prefix']} of {done['user']}", err=True)


@users.command("disable")
@click.argument("name")
def users_disable(name):
    """Disable user NAME: every token of it is refused from now on."""
    from .store import users as store

    with _users_engine().begin() as conn:
        store.disable_user(conn, name)
    click.echo(f"disabled {name}: its tokens are refused", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()


# --- boundary edits -------------------------------------------------------------------

def _read_geojson(path: Path) -> dict:
    """A GeoJSON file as a dict (InputError naming the file when it is not JSON)."""
    from .errors import InputError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable GeoJSON file ({exc})") from None


def _one_geometry(path: Path) -> dict:
    """The geometry of a GeoJSON file holding a geometry, a Feature or a one-feature collection."""
    from .errors import InputError

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


def _edit_options(fn):
    for opt in reversed([
        click.option("--crs", help="CRS of the geometry files (wgs84, cgcs2000, gcj02, bd09, EPSG:n); default wgs84."),
        click.option("--dry-run", is_flag=True, help="Check and preview the impact; write nothing."),
        click.option("--reason", help="Why (kept in the audit log with the impact report)."),
        click.option("--if-match", "if_match", multiple=True, metavar="CODE=ETAG",
                     help="Fail (412) unless CODE is still at version ETAG (repeatable)."),
        click.option("--actor", default=lambda: os.environ.get("USER") or "cli", show_default="$USER",
                     help="Who edits (for the audit log)."),
        click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True),
    ]):
        fn = opt(fn)
    return fn


def _run_edit(op: dict, crs, dry_run, reason, if_match, actor, fmt):
    from . import edits
    from .errors import InputError

    if crs:
        op["crs"] = crs
    pairs = {}
    for item in if_match:
        code, sep, tag = item.partition("=")
        if not sep or not code or not tag:
            raise InputError(f"--if-match takes CODE=ETAG, got {item!r}")
        pairs[code] = tag
    report = edits.apply(_engine(), op, actor=actor, reason=reason, dry_run=dry_run, if_match=pairs)
    if fmt == "json":
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        return
    click.echo(f"{report['op']} ({report['level']}): closes {', '.join(report['closed']) or '-'}; "
               f"opens {', '.join(report['opened']) or '-'}")
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
        click.echo(f"committed edit {report['edit_id']} (valid from {report['valid_from']}); new versions: "
                   + ", ".join(f"{c} {t}" for c, t in report["etags"].items()), err=True)


@main.group(cls=_Group)
def edit():
    """Redraw boundaries safely: every edit is checked (inside the parent, no overlap, no gap, valid,
    children inside) and previewed; a commit writes new dated versions and an audit entry."""


@edit.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_edit_options
def edit_apply(file, crs, dry_run, reason, if_match, actor, fmt):
    """An edit written as JSON: {"op": "replace"|"update"|"split"|"merge"|"move_boundary"|"create"|"retire", ...}."""
    _run_edit(_read_geojson(file), crs, dry_run, reason, if_match, actor, fmt)


@edit.command("replace")
@click.argument("code")
@click.argument("geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--gap-to", metavar="CODE", help="The sibling that takes the area this grid gives up.")
@_edit_options
def edit_replace(code, geometry, gap_to, crs, dry_run, reason, if_match, actor, fmt):
    """Give grid CODE the outline in GEOMETRY (GeoJSON)."""
    _run_edit({"op": "replace", "code": code, "geometry": _one_geometry(geometry), "gap_to": gap_to},
              crs, dry_run, reason, if_match, actor, fmt)


@edit.command("split")
@click.argument("code")
@click.option("--line", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A GeoJSON LineString crossing the grid.")
@click.option("--parts", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A GeoJSON FeatureCollection of the parts (properties code and name optional).")
@_edit_options
def edit_split(code, line, parts, crs, dry_run, reason, if_match, actor, fmt):
    """Split grid CODE by a line or into given parts; its children follow their parts."""
    op = {"op": "split", "code": code}
    if line:
        op["line"] = _one_geometry(line)
    if parts:
        data = _read_geojson(parts)
        op["parts"] = [{"geometry": f.get("geometry"), "code": (f.get("properties") or {}).get("code"),
                        "name": (f.get("properties") or {}).get("name")} for f in data.get("features") or []]
    _run_edit(op, crs, dry_run, reason, if_match, actor, fmt)


@edit.command("merge")
@click.argument("codes", nargs=-1, required=True)
@click.option("--name", help="Name of the merged grid (default: the first grid's).")
@_edit_options
def edit_merge(codes, name, crs, dry_run, reason, if_match, actor, fmt):
    """Merge sibling grids CODES into the first."""
    _run_edit({"op": "merge", "codes": list(codes), "name": name}, crs, dry_run, reason, if_match, actor, fmt)


@edit.command("move-boundary")
@click.argument("code")
@click.argument("other")
@click.argument("geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_edit_options
def edit_move_boundary(code, other, geometry, crs, dry_run, reason, if_match, actor, fmt):
    """Move the boundary between siblings CODE and OTHER: CODE gets GEOMETRY, OTHER the rest of both."""
    _run_edit({"op": "move_boundary", "code": code, "other": other, "geometry": _one_geometry(geometry)},
              crs, dry_run, reason, if_match, actor, fmt)


@edit.command("create")
@click.argument("geometry", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--level", required=True, type=click.Choice(ALL_LEVELS))
@click.option("--parent", "parent_code", help="The parent grid's code (every level but district).")
@click.option("--name", required=True)
@click.option("--code", help="Default: the next free code under the parent.")
@click.option("--kind", help="For special grids: mall, market, school, enterprise, other.")
@click.option("--carve", is_flag=True, help="Take the new grid's area from the siblings it overlaps.")
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
def edit_retire(code, gap_to, crs, dry_run, reason, if_match, actor, fmt):
    """Retire grid CODE (its history stays)."""
    _run_edit({"op": "retire", "code": code, "gap_to": gap_to}, crs, dry_run, reason, if_match, actor, fmt)


@main.command("history")
@click.argument("code")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def history_cmd(code, fmt):
    """Every version of grid CODE and the edits that touched it."""
    from . import edits

    h = edits.history(_engine(), code)
    if fmt == "json":
        click.echo(json.dumps(h, ensure_ascii=False, indent=2))
        return
    for v in h["versions"]:
        click.echo(f"{v['version']}  {v['valid_from']} .. {v['valid_to'] or 'now'}  {v['name']}  parent "
                   f"{v['parent_code'] or '-'}  {v['households']} households  {v['area_m2']:,.0f} m²")
    for e in h["edits"]:
        click.echo(f"edit {e['id']}  {e['at']}  {e['action']} by {e['actor']}" + (f": {e['reason']}" if e["reason"] else ""))
