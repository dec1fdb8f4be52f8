"""Application services shared by the CLI and the web layer: import, export, validate, demo load."""
from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import geo, ingest
from .domain import integrity
from .domain.levels import check_level, parent_level
from .errors import InputError
from .store import grids as store
from .store import points

#: format -> (GDAL driver, accepted file name endings)
EXPORT_FORMATS = {"geojson": ("GeoJSON", (".geojson", ".json")), "gpkg": ("GPKG", (".gpkg",)),
                  "shp": ("ESRI Shapefile", (".shp",)), "csv": (None, (".csv",))}


def check_output(path, suffixes=None) -> Path:
    """``path`` if it can be written: its folder exists and, when given, its suffix is one of
    ``suffixes``; InputError otherwise."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: no such folder {folder}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{path.name}: the file name should end in {' or '.join(suffixes)}")
    return path


def parse_at(value: str | None) -> datetime | None:
    """An ISO date or datetime (UTC when no zone is given); InputError when malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):  # from a JSON body
        raise InputError(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def import_file(conn: Connection, path, level: str, *, crs=None, fields: ingest.Fields | None = None,
                replace: bool = False, actor: str = "cli", at: datetime | None = None) -> dict:
    """Check and write one file on ``conn``'s transaction (the caller commits). All rows or none.

    With ``replace``, rows whose code is current get a new version (the old one is closed at ``at``).
    Raises ImportRejected (listing every bad row) or InputError.
    """
    path = Path(path)
    kind = ingest.level_kind(level)
    at = at or datetime.now(timezone.utc)
    if kind == "person":
        frame = ingest.read_people(path, grid_codes=store.current_codes(conn))
        n = store.insert_people(conn, frame)
    elif kind == "building":
        f = fields or ingest.Fields(parent="courtyard_code")
        existing = set() if replace else store.current_codes(conn, table="building")
        frame = ingest.read_buildings(path, crs=crs, fields=f, existing_codes=existing,
                                      courtyard_codes=store.current_codes(conn, "courtyard"))
        if replace:
            store.close_current(conn, "building", frame["code"], at)
        n = store.insert_buildings(conn, frame, at)
    else:
        plevel = parent_level(level)
        existing = set() if replace else store.current_codes(conn)
        frame = ingest.read_grids(path, level, crs=crs, fields=fields or ingest.Fields(), existing_codes=existing,
                                  parent_codes=store.current_codes(conn, plevel) if plevel else None)
        if replace:
            store.close_current(conn, "grid", frame["code"], at)
        n = store.insert_grids(conn, frame, at)
    summary = {"file": path.name, "level": level, "rows": n, "crs": geo.parse_crs(crs) if crs else None}
    if kind == "grid" and level == "micro" and replace:
        summary["reassigned"] = points.reassign(conn, frame["code"])
    if kind == "grid" and replace:  # new boundaries or parents: grid colours roll up anew
        from .domain.risk import load_rules
        from .store import risk

        summary["risk_grids"] = risk.refresh_rollup(conn, load_rules())
    store.log_edit(conn, actor, f"import {level}", None, summary)
    return summary


def export_level(eng: Engine, level: str, fmt: str, out, *, at: datetime | None = None) -> int:
    """Write the grids of ``level`` valid at ``at`` to ``out``. GeoJSON follows RFC 7946."""
    import geopandas as gpd

    check_level(level)
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    out = check_output(out, EXPORT_FORMATS[fmt][1])
    frame = store.grid_frame(eng, level=level, at=at)
    for col in ("valid_from", "valid_to"):
        frame[col] = frame[col].map(lambda v: v.isoformat() if v is not None and not pd.isna(v) else None)
    if out.exists():
        out.unlink()
    if fmt == "csv":
        frame["wkt"] = frame.pop("geometry").map(lambda g: g.wkt)
        frame.to_csv(out, index=False)
        return len(frame)
    geoms = geo.rfc7946(frame.pop("geometry").to_numpy())
    if fmt == "shp":  # dBase field names are at most 10 characters
        frame = frame.rename(columns={"parent_code": "parent"})
    gdf = gpd.GeoDataFrame(frame, geometry=list(geoms), crs=f"EPSG:{geo.STORAGE_SRID}")
    driver = EXPORT_FORMATS[fmt][0]
    # full precision: RFC 7946's suggested 7 decimals (~1 cm) moves vertices that lie on a parent's
    # long edge off it, and a round trip would then fail validation by square metres
    options = {"RFC7946": "YES", "WRITE_BBOX": "YES", "COORDINATE_PRECISION": 15} if fmt == "geojson" else {}
    gdf.to_file(out, driver=driver, engine="pyogrio", layer_options=options or None,
                **({"encoding": "UTF-8"} if fmt == "shp" else {}))
    return len(gdf)


def validate(eng: Engine, *, level: str | None = None, tolerance: float = integrity.DEFAULT_TOLERANCE_M2,
             at: datetime | None = None) -> list[integrity.Problem]:
    """Run every integrity check on the version valid at ``at`` (default: current)."""
    if level is not None:
        check_level(level)
    frame = store.grid_frame(eng, at=at)
    return integrity.validate(frame, building_households=store.building_households(eng, at), tolerance=tolerance,
                              level=level)


def problems_geojson(problems) -> dict:
    """Problems as an RFC 7946 FeatureCollection (the offending area as geometry)."""
    import shapely

    features = []
    for p in problems:
        geom = None
        if p.geometry is not None:
            geom = json.loads(shapely.to_geojson(geo.rfc7946([p.geometry])[0]))
        features.append({"type": "Feature", "geometry": geom, "properties": p.to_dict()})
    return {"type": "FeatureCollection", "features": features}


def load_demo(eng: Engine, scale: str, seed: int, *, out_dir=None, fresh: bool = False, progress=None) -> dict:
    """Generate the demo city and import it in one transaction; returns timings and counts."""
    from .domain import demo_city

    timings = {}
    t0 = time.perf_counter()
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gridmap-demo-")
        out_dir = tmp.name
    try:
        manifest = demo_city.generate(scale, seed, out_dir, progress=progress)
        timings["generate_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        load_manifest(eng, out_dir, manifest, fresh=fresh, progress=progress)
        timings["load_s"] = time.perf_counter() - t1
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"scale": scale, "seed": seed, "counts": manifest["counts"], "timings": timings}


def load_manifest(eng: Engine, folder, manifest: dict, *, fresh: bool = False, progress=None) -> None:
    """Import every file a demo manifest lists, all in one transaction."""
    from . import risks

    folder = Path(folder)
    with eng.begin() as conn:
        if fresh:
            store.truncate_all(conn)
        later = [e for e in manifest["files"] if e["level"] in risks.DEMO_LEVELS]
        for entry in manifest["files"]:
            if entry not in later:
                import_file(conn, folder / entry["file"], entry["level"], crs=entry["crs"], actor="demo")
                progress and progress(f"imported {entry['level']}")
        # elements, visits and reports need the grids to be placed in: after them, same transaction
        if later:
            risks.load_demo_files(conn, folder, later)
            progress and progress("imported risk elements and reports")
        store.analyze(conn)


def grid_count(eng: Engine, *, level: str | None = None, at: datetime | None = None) -> int:
    """How many grids (of ``level``) the version valid at ``at`` holds."""
    with eng.connect() as conn:
        return store.count_grids(conn, level=level, at=at)


def stats(eng: Engine) -> dict:
    with eng.connect() as conn:
        return store.stats(conn)


def ensure_schema(eng: Engine) -> None:
    """Raise DatabaseUnavailable with a hint when the schema is missing."""
    from .errors import DatabaseUnavailable
    from .store.db import check

    check(eng)
    with eng.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('grid')")).scalar() is None:
            raise DatabaseUnavailable("the database has no gridmap schema: run `gridmap db upgrade`")
