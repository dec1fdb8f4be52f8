"""Point lookups for the API, the CLI and scripts, on an index kept true to the database.

Staleness: every lookup reads the grid epoch (one primary-key row, bumped by a
statement trigger on every write to ``grid``, see migration 0001).  When it has
moved, the index is rebuilt from PostGIS before answering, inside one
REPEATABLE READ transaction so the epoch and the grids it describes agree.  So
the first lookup after a committed boundary change already sees it; a rebuild of
the Zhengzhou-scale city takes a few seconds, paid once per change.
Indexes for past dates (``at=``) are built on demand and the last few are kept.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

import numpy as np
import shapely
from sqlalchemy.engine import Engine

from . import geo
from .domain.lookup import GridIndex, check_points
from .errors import InputError, PayloadTooLarge
from .store import grids as store

#: Points per POST /api/v1/lookup request; more gets 413.
MAX_BATCH = 10_000
DATED_KEPT = 4


class Locator:
    """Answers lookups from an in-memory :class:`GridIndex` that follows the database."""

    def __init__(self, engine: Engine, *, cell_m: float = 40.0):
        self.engine = engine
        self.cell_m = cell_m
        self._lock = threading.Lock()
        self._current: GridIndex | None = None
        self._dated: OrderedDict = OrderedDict()

    def index(self, at: datetime | None = None) -> GridIndex:
        """The index for the version valid at ``at`` (None: current), rebuilt if the grids changed."""
        with self.engine.connect() as conn:
            epoch = store.epoch(conn)
        cached = self._cached(epoch, at)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._cached(epoch, at)
            if cached is not None:
                return cached
            with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                with conn.begin():
                    epoch = store.epoch(conn)
                    index = GridIndex(store.index_frame(conn, at), cell_m=self.cell_m, epoch=epoch, at=at,
                                      people=store.people_by_grid(conn) if at is None else {})
            if at is None:
                self._current = index
            else:
                self._dated[(epoch, at)] = index
                while len(self._dated) > DATED_KEPT:
                    self._dated.popitem(last=False)
            return index

    def _cached(self, epoch, at):
        if at is None:
            return self._current if self._current is not None and self._current.epoch == epoch else None
        return self._dated.get((epoch, at))

    def lookup(self, lon, lat, *, crs=None, at: datetime | None = None) -> dict:
        """One point; InputError naming the problem for bad coordinates."""
        crs = geo.parse_crs(crs)
        x, y, problems = check_points([_number(lon, "lon")], [_number(lat, "lat")], crs)
        if problems[0] is not None:
            raise InputError(f"{problems[0]}: lon={lon}, lat={lat} ({crs})")
        body = self.index(at).answers(x, y)[0]
        body.update(input={"lon": lon, "lat": lat, "crs": crs}, at=at.isoformat() if at else None)
        return body

    def lookup_many(self, points: list, *, crs=None, at: datetime | None = None) -> list[dict]:
        """Many points ({"lon", "lat", optional "id"}); a bad point gets an "error" instead of stopping."""
        if len(points) > MAX_BATCH:
            raise PayloadTooLarge(f"{len(points)} points in one request; at most {MAX_BATCH}")
        crs = geo.parse_crs(crs)
        lon = np.full(len(points), np.nan)
        lat = np.full(len(points), np.nan)
        shape_errors = {}
        for i, p in enumerate(points):
            if not isinstance(p, dict) or "lon" not in p or "lat" not in p:
                shape_errors[i] = "each point must be an object with lon and lat"
                continue
            try:
                lon[i], lat[i] = float(p["lon"]), float(p["lat"])
            except (TypeError, ValueError):
                shape_errors[i] = "lon and lat must be numbers"
        x, y, problems = check_points(lon, lat, crs)
        good = np.array([problems[i] is None and i not in shape_errors for i in range(len(points))], dtype=bool)
        answers = iter(self.index(at).answers(x[good], y[good]))
        out = []
        for i, p in enumerate(points):
            ident = p.get("id") if isinstance(p, dict) else None
            if good[i]:
                body = next(answers)
            else:
                body = {"error": shape_errors.get(i) or problems[i]}
            out.append({"id": ident, **body} if ident is not None else body)
        return out


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None


def sql_lookup(engine: Engine, lon: float, lat: float, at: datetime | None = None) -> dict | None:
    """The same answer from PostGIS alone (reference and benchmark competitor)."""
    with engine.connect() as conn:
        return store.lookup_sql(conn, lon, lat, at)




# --- batch files ----------------------------------------------------------------------

ASSIGN_FORMATS = (".csv", ".geojson", ".json", ".gpkg", ".parquet")
CHUNK = 100_000


def assign_table(index: GridIndex, lon, lat, crs: str):
    """Chain columns plus ``status`` (placed / outside / bad), ``error`` and, for points outside
    every grid, the nearest micro-grid and its distance in metres."""
    import pandas as pd

    x, y, problems = check_points(lon, lat, crs)
    good = problems == None  # noqa: E711
    table = index.table(np.where(good, x, np.nan), np.where(good, y, np.nan))
    placed = table["micro_code"].notna().to_numpy()
    status = np.where(~good, "bad", np.where(placed, "placed", "outside"))
    nearest = np.full(len(x), None, dtype=object)
    distance = np.full(len(x), np.nan)
    out_idx = np.flatnonzero(status == "outside")
    if len(out_idx) and len(index.micro):
        j, d = index.nearest(x[out_idx], y[out_idx])
        nearest[out_idx] = index.code[index.micro[j]]
        distance[out_idx] = np.round(d, 1)
    table["status"] = pd.Categorical(status, categories=["placed", "outside", "bad"])
    table["error"] = problems
    table["nearest_micro_code"] = nearest
    table["nearest_distance_m"] = distance
    return table


def _read_points(path, lon_col, lat_col):
    """(attributes frame, lon, lat, the file's CRS or None) for any supported input."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        crs = None
    else:
        import geopandas as gpd

        gdf = gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path, engine="pyogrio")
        crs = gdf.crs.to_string() if gdf.crs is not None else None
        if lon_col is None:
            geoms = gdf.geometry.to_numpy()
            points = shapely.get_type_id(geoms) == 0
            lon = np.where(points, shapely.get_x(geoms), np.nan)
            lat = np.where(points, shapely.get_y(geoms), np.nan)
            return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), lon, lat, crs
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    lon_col, lat_col = lon_col or "lon", lat_col or "lat"
    missing = [c for c in (lon_col, lat_col) if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name}: no column {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(map(str, frame.columns))}); use --lon-col/--lat-col")
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype="float64")
    return frame, lon, lat, crs


def assign_file(locator: Locator, src, dst, *, crs=None, lon_col=None, lat_col=None,
                at: datetime | None = None, progress=None) -> dict:
    """Add the grid chain to every row of ``src`` and write ``dst`` (format by suffix).

    Rows that cannot be placed carry ``status`` and ``error`` instead of stopping the run; ``dst`` is
    written to a temporary file and renamed, so it is never half-written.  Returns the summary.
    """
    import os
    import tempfile
    from pathlib import Path

    import pandas as pd

    src, dst = Path(src), Path(dst)
    for path in (src, dst):
        if path.suffix.lower() not in ASSIGN_FORMATS:
            raise InputError(f"unsupported file type {path.suffix!r} for {path.name}: use "
                             + ", ".join(ASSIGN_FORMATS))
    if not src.exists():
        raise InputError(f"no such file: {src}")
    frame, lon, lat, file_crs = _read_points(src, lon_col, lat_col)
    source_crs = geo.parse_crs(crs) if crs else (file_crs if file_crs and not file_crs.lower().endswith("crs84")
                                                  else "EPSG:4326")
    index = locator.index(at)
    parts = []
    for start in range(0, len(frame), CHUNK):
        stop = min(start + CHUNK, len(frame))
        parts.append(assign_table(index, lon[start:stop], lat[start:stop], source_crs))
        if progress:
            progress(stop - start)
    chain = pd.concat(parts, ignore_index=True) if parts else assign_table(index, lon[:0], lat[:0], source_crs)
    out = pd.concat([frame.reset_index(drop=True), chain], axis=1)
    tmp = Path(tempfile.mkstemp(prefix=".gridmap-", suffix=dst.suffix, dir=dst.parent or ".")[1])
    try:
        _write_points(out, lon, lat, source_crs, tmp, dst)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    counts = out["status"].value_counts()
    return {"rows": len(out), "placed": int(counts.get("placed", 0)), "outside": int(counts.get("outside", 0)),
            "bad": int(counts.get("bad", 0)), "crs": source_crs}


def _write_points(out, lon, lat, crs, path, dst):
    """Write ``out`` to ``path`` in the format of ``dst`` (points where coordinates are finite)."""
    suffix = dst.suffix.lower()
    if suffix == ".csv":
        out.to_csv(path, index=False)
        return
    import geopandas as gpd

    for col in out.columns:  # GDAL writes categoricals poorly: plain strings
        if str(out[col].dtype) == "category":
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    finite = np.isfinite(lon) & np.isfinite(lat)
    points = np.where(finite, shapely.points(np.where(finite, lon, 0), np.where(finite, lat, 0)), None)
    gdf = gpd.GeoDataFrame(out, geometry=list(points), crs=None if crs in ("gcj02", "bd09") else crs)
    if suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        path.unlink(missing_ok=True)
        gdf.to_file(path, driver="GeoJSON" if suffix in (".geojson", ".json") else "GPKG", engine="pyogrio",
                    layer=dst.stem)
