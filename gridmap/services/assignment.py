"""Placing the rows of a file in their grids: ``gridmap assign`` (a file in, the same rows with the
grid chain out) and ``gridmap record`` (reports and residents stored with their micro-grid)."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .. import geo
from ..domain.address import Gazetteer
from ..domain.lookup import assign_table
from ..errors import InputError
from ..store import points
from . import point_wkb
from .files import check_output
from .ingest import read_csv
from .locator import Locator

ASSIGN_FORMATS = (".csv", ".geojson", ".json", ".gpkg", ".parquet")
CHUNK = 100_000


def resolve_addresses(gaz: Gazetteer, addresses, floors=None):
    """(lon, lat, problems, homes) in storage CRS for address strings; problems say why a row failed;
    ``homes[i]`` is (building, unit, floor) when the address, or the row's ``floors[i]``, names the floor
    (the unit may be implied by a one-unit building), else None."""
    lon = np.full(len(addresses), np.nan)
    lat = np.full(len(addresses), np.nan)
    problems = np.full(len(addresses), None, dtype=object)
    homes = np.full(len(addresses), None, dtype=object)
    for i, text in enumerate(addresses):
        try:
            found = gaz.resolve(text)
        except InputError as exc:
            problems[i] = exc.message
            continue
        b = found.building
        lon[i], lat[i] = b.lon, b.lat
        floor = found.floor if found.floor is not None else _floor(floors[i] if floors is not None else None)
        unit = found.unit or (1 if b.units == 1 else None)
        if floor is not None and unit is not None:
            homes[i] = (b.code, unit, floor)
    return lon, lat, problems, homes


def _floor(value) -> int | None:
    """A floor column's value as a whole number, or None when empty or not a number."""
    try:
        return int(str(value).strip()) if value is not None and str(value).strip() not in ("", "nan") else None
    except ValueError:
        return None


def by_floor(members, index, chain: pd.DataFrame, homes) -> None:
    """Rows whose household's floor is known take the micro-grid holding that floor (a tower shared by
    several micro-grids, ``members`` from :meth:`Locator.memberships`), not the one at the building's point."""
    rows = [i for i, h in enumerate(homes) if h is not None]
    if not rows:
        return
    codes = chain["micro_code"].astype(object).to_numpy().copy()
    names = chain["micro_name"].astype(object).to_numpy().copy()
    for i in rows:
        code = members.grid_of(*homes[i])
        if code is not None:
            codes[i], names[i] = code, index.name_of(code)
    chain["micro_code"] = codes
    chain["micro_name"] = names


def _read_rows(path, lon_col, lat_col, address_col):
    """(attributes, lon, lat, the file's CRS or None) for any supported input; with ``address_col``
    no coordinates are needed."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = read_csv(path)
        crs = None
    else:
        gdf = gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path, engine="pyogrio")
        crs = gdf.crs.to_string() if gdf.crs is not None else None
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        if lon_col is None and address_col is None:
            geoms = gdf.geometry.to_numpy()
            points = shapely.get_type_id(geoms) == 0
            return (
                frame,
                np.where(points, shapely.get_x(geoms), np.nan),
                np.where(points, shapely.get_y(geoms), np.nan),
                crs,
            )
    lon, lat = coordinate_columns(frame, path.name, lon_col, lat_col, address_col)
    return frame, lon, lat, crs


def coordinate_columns(frame, name, lon_col, lat_col, address_col):
    """(lon, lat) float arrays from a frame's columns (None, None when rows are placed by address);
    InputError naming the missing column.  Shared with the partitions of ``--engine dask``."""
    if address_col is not None:
        if address_col not in frame.columns:
            raise InputError(f"{name}: no column {address_col!r} (columns: {', '.join(map(str, frame.columns))})")
        return None, None
    lon_col, lat_col = lon_col or "lon", lat_col or "lat"
    missing = [c for c in (lon_col, lat_col) if c not in frame.columns]
    if missing:
        raise InputError(
            f"{name}: no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, frame.columns))}); use --lon-col/--lat-col or --address-col"
        )
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype="float64")
    return lon, lat


def rows_crs(crs, file_crs, address_col) -> str:
    """The CRS of the rows' coordinates: storage for addresses, else ``--crs``, else the file's own
    (CRS84 is storage order too), else WGS 84."""
    if address_col is not None:
        return "EPSG:4326"
    if crs:
        return geo.parse_crs(crs)
    return file_crs if file_crs and not file_crs.lower().endswith("crs84") else "EPSG:4326"


def locate_file(
    locator: Locator,
    src,
    *,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    at: datetime | None = None,
    progress=None,
):
    """Read ``src`` and add the chain columns to every row; returns (frame, source CRS)."""
    if src.suffix.lower() not in ASSIGN_FORMATS:
        raise InputError(f"unsupported file type {src.suffix!r} for {src.name}: use " + ", ".join(ASSIGN_FORMATS))
    if not src.exists():
        raise InputError(f"no such file: {src}")
    if address_col and (lon_col or lat_col):
        raise InputError("give either --address-col or --lon-col/--lat-col, not both")
    try:
        frame, lon, lat, file_crs = _read_rows(src, lon_col, lat_col, address_col)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyogrio raise many types; all mean "cannot read this file"
        raise InputError(f"cannot read {src.name}: {str(exc).strip().splitlines()[0]}") from None
    known = homes = None
    source_crs = rows_crs(crs, file_crs, address_col)
    if address_col is not None:
        floors = frame["floor"].tolist() if "floor" in frame.columns else None
        lon, lat, known, homes = resolve_addresses(locator.gazetteer(), frame[address_col].tolist(), floors)
    index = locator.index(at)
    parts = []
    for start in range(0, len(frame), CHUNK):
        stop = min(start + CHUNK, len(frame))
        parts.append(
            assign_table(
                index, lon[start:stop], lat[start:stop], source_crs, None if known is None else known[start:stop]
            )
        )
        if progress:
            progress(stop - start)
    chain = pd.concat(parts, ignore_index=True) if parts else assign_table(index, lon[:0], lat[:0], source_crs)
    if homes is not None and at is None:
        by_floor(locator.memberships()[0], locator.index(), chain, homes)
    return pd.concat([frame.reset_index(drop=True), chain], axis=1), source_crs, lon, lat


def assign_file(
    locator: Locator,
    src,
    dst,
    *,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    at: datetime | None = None,
    progress=None,
) -> dict:
    """Add the grid chain to every row of ``src`` and write ``dst`` (format by suffix).

    Rows that cannot be placed carry ``status`` and ``error`` instead of stopping the run; ``dst`` is
    written to a temporary file and renamed, so it is never half-written.  Returns the summary.
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in ASSIGN_FORMATS:
        raise InputError(f"unsupported file type {dst.suffix!r} for {dst.name}: use " + ", ".join(ASSIGN_FORMATS))
    check_output(dst)
    out, source_crs, lon, lat = locate_file(
        locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col, at=at, progress=progress
    )
    tmp = Path(tempfile.mkstemp(prefix=".gridmap-", suffix=dst.suffix, dir=dst.parent or ".")[1])
    try:
        write_points(out, lon, lat, source_crs, tmp, dst)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return summarise(out, source_crs)


def summarise(out, crs) -> dict:
    counts = out["status"].value_counts()
    return {
        "rows": len(out),
        "placed": int(counts.get("placed", 0)),
        "outside": int(counts.get("outside", 0)),
        "bad": int(counts.get("bad", 0)),
        "crs": crs,
    }


def record_file(
    locator: Locator,
    table: str,
    src,
    *,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    text_col="text",
    name_col="name",
) -> dict:
    """Store every row of ``src`` as a report or resident with its micro-grid, in one transaction.
    Rows that cannot be placed are kept (without a point or grid): a report is never dropped."""
    src = Path(src)
    if table == "resident" and not address_col:
        raise InputError("residents are recorded by their address: give --address-col")
    out, source_crs, lon, lat = locate_file(
        locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col
    )
    gazetteer = locator.gazetteer() if address_col and table == "resident" else None
    rows = record_rows(table, out, lon, lat, source_crs, src.name, address_col, text_col, name_col, gazetteer)
    with locator.engine.begin() as conn:
        points.insert(conn, table, rows)
    return summarise(out, source_crs)


def record_rows(
    table, out, lon, lat, source_crs, name, address_col, text_col="text", name_col="name", gazetteer=None
) -> pd.DataFrame:
    """The ``report`` or ``resident`` rows of located rows ``out`` (residents by address need the
    ``gazetteer`` for their building and unit); InputError when the report text column is missing.
    Shared with ``record --engine dask``, whose workers build their partitions' rows with it."""
    placed = np.isfinite(out["lon_wgs84"].to_numpy())
    geom = np.full(len(out), None, dtype=object)
    if placed.any():
        pts = shapely.set_srid(shapely.points(out["lon_wgs84"][placed], out["lat_wgs84"][placed]), geo.STORAGE_SRID)
        geom[placed] = shapely.to_wkb(pts, hex=True, include_srid=True)
    micro = out["micro_code"].astype(object).where(out["micro_code"].notna(), None)
    address = out[address_col] if address_col else pd.Series([None] * len(out))
    if table == "report":
        if text_col not in out.columns:
            raise InputError(f"{name}: no column {text_col!r} with the report's text")
        rows = pd.DataFrame(
            {
                "text": out[text_col],
                "address": address,
                "source_lon": None if lon is None or address_col else lon,
                "source_lat": None if lat is None or address_col else lat,
                "source_crs": source_crs,
                "geom": geom,
                "micro_code": micro,
            }
        )
    else:
        rows = pd.DataFrame(
            {
                "name": out[name_col] if name_col in out.columns else None,
                "address": address,
                "building_code": None,
                "unit": None,
                "geom": geom,
                "micro_code": micro,
            }
        )
        if address_col:
            for i, text in enumerate(address):
                try:
                    found = gazetteer.resolve(text)
                    rows.loc[i, "building_code"], rows.loc[i, "unit"] = found.building.code, found.unit
                except InputError:
                    pass
            rows["unit"] = rows["unit"].astype("Int64")
    return rows


def write_points(out, lon, lat, crs, path, dst):
    """Write ``out`` to ``path`` in the format of ``dst`` (points where coordinates are finite); the
    single-process command's whole file, or one part of ``--engine dask``."""
    suffix = dst.suffix.lower()
    if suffix == ".csv":
        out.to_csv(path, index=False)
        return
    if suffix == ".parquet":  # points straight to WKB, categoricals as Parquet dictionaries
        point_wkb.write_geoparquet([(out, lon, lat)], None if crs in ("gcj02", "bd09") else crs, path)
        return
    for col in out.columns:  # GDAL writes categoricals poorly: plain strings
        if str(out[col].dtype) == "category":
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    finite = np.isfinite(lon) & np.isfinite(lat)
    points = np.where(finite, shapely.points(np.where(finite, lon, 0), np.where(finite, lat, 0)), None)
    gdf = gpd.GeoDataFrame(out, geometry=list(points), crs=None if crs in ("gcj02", "bd09") else crs)
    path.unlink(missing_ok=True)
    gdf.to_file(path, driver="GeoJSON" if suffix in (".geojson", ".json") else "GPKG", engine="pyogrio", layer=dst.stem)
