"""Point lookups for the API, the CLI and scripts, on an index kept true to the database.

Staleness: every lookup reads the grid epoch (one primary-key row, bumped by a
statement trigger on every write to ``grid``, ``building`` and ``unit``, see the
migrations) over a per-thread autocommit connection with a prepared statement
(about 0.1 ms on loopback).  When it has moved, the index is rebuilt from PostGIS
before answering, inside one REPEATABLE READ transaction so the epoch and the
grids it describes agree.  So
the first lookup after a committed boundary change already sees it; a rebuild of
the Zhengzhou-scale city takes a few seconds, paid once per change.
Indexes for past dates (``at=``) are built on demand and the last few are kept.
"""
from __future__ import annotations

import ctypes
import re
import threading
from collections import OrderedDict
from datetime import datetime

import numpy as np
import psycopg
import shapely
from sqlalchemy.engine import Engine

from . import geo
from .domain.address import Building, Gazetteer
from .domain.lookup import GridIndex, check_point, check_points
from .errors import InputError, PayloadTooLarge
from .store import grids as store

#: Points per POST /api/v1/lookup request; more gets 413.
MAX_BATCH = 10_000
DATED_KEPT = 4


class Locator:
    """Answers lookups from an in-memory :class:`GridIndex` that follows the database."""

    def __init__(self, engine: Engine, *, cell_m: float = 25.0):
        self.engine = engine
        self.cell_m = cell_m
        self._lock = threading.Lock()
        self._current: GridIndex | None = None
        self._dated: OrderedDict = OrderedDict()
        self._gazetteer: tuple[int, Gazetteer] | None = None
        self._local = threading.local()

    def epoch(self) -> int:
        """The grid epoch, read now over this thread's own autocommit connection."""
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                conn = self._local.conn = psycopg.connect(url, autocommit=True)
            try:
                return store.epoch_raw(conn)
            except psycopg.OperationalError:
                conn.close()  # dropped: reconnect once
                if attempt == 2:
                    raise

    def index(self, at: datetime | None = None) -> GridIndex:
        """The index for the version valid at ``at`` (None: current), rebuilt if the grids changed."""
        epoch = self.epoch()
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
            _release_freed_memory()
            if at is None:
                self._current = index
            else:
                self._dated[(epoch, at)] = index
                while len(self._dated) > DATED_KEPT:
                    self._dated.popitem(last=False)
            return index

    def gazetteer(self) -> Gazetteer:
        """The address gazetteer of the current buildings (rebuilt when the epoch moves)."""
        with self.engine.connect() as conn:
            epoch = store.epoch(conn)
            if self._gazetteer is None or self._gazetteer[0] != epoch:
                courtyards, rows = store.gazetteer_rows(conn)
                buildings = []
                for code, court, number, units, lon, lat in rows:
                    digits = re.search(r"\d+", number or "")
                    if digits:
                        buildings.append(Building(code, court, int(digits.group()), int(units), lon, lat))
                self._gazetteer = (epoch, Gazetteer(courtyards, buildings))
        return self._gazetteer[1]

    def lookup_address(self, address: str, *, at: datetime | None = None) -> dict:
        """Resolve an address to its building point, then answer as for a point."""
        found = self.gazetteer().resolve(address)
        b = found.building
        body = self.index(at).answers(np.array([b.lon]), np.array([b.lat]))[0]
        body.update(address={"text": address, "building": b.code, "unit": found.unit})
        return body

    def _cached(self, epoch, at):
        if at is None:
            return self._current if self._current is not None and self._current.epoch == epoch else None
        return self._dated.get((epoch, at))

    def lookup(self, lon, lat, *, crs=None, at: datetime | None = None) -> dict:
        """One point; InputError naming the problem for bad coordinates."""
        crs = geo.parse_crs(crs)
        x, y, problem = check_point(_number(lon, "lon"), _number(lat, "lat"), crs)
        if problem is not None:
            raise InputError(f"{problem}: lon={lon}, lat={lat} ({crs})")
        body = self.index(at).answer_one(x, y)
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


def _release_freed_memory() -> None:
    """Hand the build's temporary arrays back to the OS (glibc keeps freed heap otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None


def sql_lookup(engine: Engine, lon: float, lat: float, at: datetime | None = None) -> dict | None:
    """The micro-grid, chain and special grids from PostGIS alone (storage lon/lat; None outside)."""
    with engine.connect() as conn:
        return store.lookup_sql(conn, lon, lat, at)


def postgis_lookup(engine: Engine, lon, lat, *, crs=None, at: datetime | None = None) -> dict:
    """A lookup answered by one PostGIS query per request, same checks (the HTTP benchmark's competitor)."""
    crs = geo.parse_crs(crs)
    x, y, problem = check_point(_number(lon, "lon"), _number(lat, "lat"), crs)
    if problem is not None:
        raise InputError(f"{problem}: lon={lon}, lat={lat} ({crs})")
    found = sql_lookup(engine, x, y, at)
    body = {"lon": x, "lat": y, "inside": found is not None}
    return {**body, **(found or {"chain": [], "specials": []})}


# --- batch files ----------------------------------------------------------------------

ASSIGN_FORMATS = (".csv", ".geojson", ".json", ".gpkg", ".parquet")
CHUNK = 100_000


def assign_table(index: GridIndex, lon, lat, crs: str, problems=None):
    """Chain columns plus ``status`` (placed / outside / bad), ``error`` and, for points outside
    every grid, the nearest micro-grid and its distance in metres.  ``problems``: reasons known
    beforehand (unresolvable addresses), None where the row is fine."""
    import pandas as pd

    x, y, checked = check_points(lon, lat, crs)
    if problems is not None:
        checked = np.where(problems != None, problems, checked)  # noqa: E711
    problems = checked
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
    table["lon_wgs84"] = np.where(good, x, np.nan)
    table["lat_wgs84"] = np.where(good, y, np.nan)
    return table


def resolve_addresses(locator: "Locator", addresses):
    """(lon, lat, problems) in storage CRS for address strings; problems say why a row failed."""
    gaz = locator.gazetteer()
    lon = np.full(len(addresses), np.nan)
    lat = np.full(len(addresses), np.nan)
    problems = np.full(len(addresses), None, dtype=object)
    for i, text in enumerate(addresses):
        try:
            b = gaz.resolve(text).building
            lon[i], lat[i] = b.lon, b.lat
        except InputError as exc:
            problems[i] = exc.message
    return lon, lat, problems


def _read_rows(path, lon_col, lat_col, address_col):
    """(attributes, lon, lat, the file's CRS or None) for any supported input; with ``address_col``
    no coordinates are needed."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".csv":
        from .ingest import read_csv

        frame = read_csv(path)
        crs = None
    else:
        import geopandas as gpd

        gdf = gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path, engine="pyogrio")
        crs = gdf.crs.to_string() if gdf.crs is not None else None
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        if lon_col is None and address_col is None:
            geoms = gdf.geometry.to_numpy()
            points = shapely.get_type_id(geoms) == 0
            return frame, np.where(points, shapely.get_x(geoms), np.nan), np.where(
                points, shapely.get_y(geoms), np.nan), crs
    if address_col is not None:
        if address_col not in frame.columns:
            raise InputError(f"{path.name}: no column {address_col!r} (columns: {', '.join(map(str, frame.columns))})")
        return frame, None, None, crs
    lon_col, lat_col = lon_col or "lon", lat_col or "lat"
    missing = [c for c in (lon_col, lat_col) if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name}: no column {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(map(str, frame.columns))}); use --lon-col/--lat-col or --address-col")
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype="float64")
    return frame, lon, lat, crs


def locate_file(locator: "Locator", src, *, crs=None, lon_col=None, lat_col=None, address_col=None,
                at: datetime | None = None, progress=None):
    """Read ``src`` and add the chain columns to every row; returns (frame, source CRS)."""
    import pandas as pd

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
    known = None
    if address_col is not None:
        lon, lat, known = resolve_addresses(locator, frame[address_col].tolist())
        source_crs = "EPSG:4326"
    else:
        source_crs = geo.parse_crs(crs) if crs else (
            file_crs if file_crs and not file_crs.lower().endswith("crs84") else "EPSG:4326")
    index = locator.index(at)
    parts = []
    for start in range(0, len(frame), CHUNK):
        stop = min(start + CHUNK, len(frame))
        parts.append(assign_table(index, lon[start:stop], lat[start:stop], source_crs,
                                  None if known is None else known[start:stop]))
        if progress:
            progress(stop - start)
    chain = pd.concat(parts, ignore_index=True) if parts else assign_table(index, lon[:0], lat[:0], source_crs)
    return pd.concat([frame.reset_index(drop=True), chain], axis=1), source_crs, lon, lat


def assign_file(locator: Locator, src, dst, *, crs=None, lon_col=None, lat_col=None, address_col=None,
                at: datetime | None = None, progress=None) -> dict:
    """Add the grid chain to every row of ``src`` and write ``dst`` (format by suffix).

    Rows that cannot be placed carry ``status`` and ``error`` instead of stopping the run; ``dst`` is
    written to a temporary file and renamed, so it is never half-written.  Returns the summary.
    """
    import os
    import tempfile
    from pathlib import Path

    from .ops import check_output

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in ASSIGN_FORMATS:
        raise InputError(f"unsupported file type {dst.suffix!r} for {dst.name}: use " + ", ".join(ASSIGN_FORMATS))
    check_output(dst)
    out, source_crs, lon, lat = locate_file(locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col,
                                            address_col=address_col, at=at, progress=progress)
    tmp = Path(tempfile.mkstemp(prefix=".gridmap-", suffix=dst.suffix, dir=dst.parent or ".")[1])
    try:
        _write_points(out, lon, lat, source_crs, tmp, dst)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return summarise(out, source_crs)


def summarise(out, crs) -> dict:
    counts = out["status"].value_counts()
    return {"rows": len(out), "placed": int(counts.get("placed", 0)), "outside": int(counts.get("outside", 0)),
            "bad": int(counts.get("bad", 0)), "crs": crs}


def record_file(locator: Locator, table: str, src, *, crs=None, lon_col=None, lat_col=None, address_col=None,
                text_col="text", name_col="name") -> dict:
    """Store every row of ``src`` as a report or resident with its micro-grid, in one transaction.
    Rows that cannot be placed are kept (without a point or grid): a report is never dropped."""
    import pandas as pd
    from pathlib import Path

    from .store import points

    src = Path(src)
    if table == "resident" and not address_col:
        raise InputError("residents are recorded by their address: give --address-col")
    out, source_crs, lon, lat = locate_file(locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col,
                                            address_col=address_col)
    placed = np.isfinite(out["lon_wgs84"].to_numpy())
    geom = np.full(len(out), None, dtype=object)
    if placed.any():
        pts = shapely.set_srid(shapely.points(out["lon_wgs84"][placed], out["lat_wgs84"][placed]), geo.STORAGE_SRID)
        geom[placed] = shapely.to_wkb(pts, hex=True, include_srid=True)
    micro = out["micro_code"].astype(object).where(out["micro_code"].notna(), None)
    address = out[address_col] if address_col else pd.Series([None] * len(out))
    if table == "report":
        if text_col not in out.columns:
            raise InputError(f"{src.name}: no column {text_col!r} with the report's text")
        rows = pd.DataFrame({"text": out[text_col], "address": address,
                             "source_lon": None if lon is None or address_col else lon,
                             "source_lat": None if lat is None or address_col else lat,
                             "source_crs": source_crs, "geom": geom, "micro_code": micro})
    else:
        rows = pd.DataFrame({"name": out[name_col] if name_col in out.columns else None, "address": address,
                             "building_code": None, "unit": None, "geom": geom, "micro_code": micro})
        if address_col:
            gaz = locator.gazetteer()
            for i, text in enumerate(address):
                try:
                    found = gaz.resolve(text)
                    rows.loc[i, "building_code"], rows.loc[i, "unit"] = found.building.code, found.unit
                except InputError:
                    pass
            rows["unit"] = rows["unit"].astype("Int64")
    with locator.engine.begin() as conn:
        points.insert(conn, table, rows)
    return summarise(out, source_crs)


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
