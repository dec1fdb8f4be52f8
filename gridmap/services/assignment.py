"""Placing the rows of a file in their grids: ``gridmap assign`` (a file in, the same rows with the
grid chain out) and ``gridmap record`` (reports and residents stored with their micro-grid).

The rows stay an Arrow table from reading to writing (:mod:`.point_files`); the chain columns are
dictionary arrays over the index's own code and name arrays, so a million rows cost a million small
integers per column, not a million strings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import lazy_loader
import numpy as np
import pyarrow as pa
import shapely

from .. import geo
from ..domain.address import Gazetteer
from ..domain.lookup import STATUS, Assigned, GridIndex, assign_arrays
from ..errors import InputError
from ..store import points
from . import point_files
from .files import check_output, temporary_beside
from .locator import Locator

pd = lazy_loader.load("pandas")

ASSIGN_FORMATS = point_files.FORMATS
#: Rows answered at a time (the progress bar's step); a million fits the memory of any machine here.
CHUNK = 1_000_000


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


def _by_floor(members, index: GridIndex, answers: Assigned, homes) -> None:
    """Rows whose household's floor is known take the micro-grid holding that floor (a tower shared by
    several micro-grids; ``members`` from :meth:`.Locator.memberships`), not the one at the building's point."""
    rows = [i for i, h in enumerate(homes) if h is not None]
    if not rows:
        return
    for i in rows:
        code = members.grid_of(*homes[i])
        r = int(np.searchsorted(index.code, code)) if code is not None else -1
        if 0 <= r < len(index.code) and index.code[r] == code:
            answers.rows["micro"][i] = r


@dataclass
class Located:
    """A file's rows and their answers."""

    rows: point_files.Points
    answers: Assigned
    index: GridIndex
    crs: str
    lon: np.ndarray
    lat: np.ndarray


@dataclass(frozen=True)
class Places:
    """What placing rows by address needs besides the index: the gazetteer, and the floors each
    micro-grid holds (None for a past date: the by-floor rule applies to the current grids only).
    Built once per run, and sent once to every Dask worker."""

    gazetteer: Gazetteer
    members: object | None


def places_of(locator: Locator, address_col, at: datetime | None) -> Places | None:
    """The :class:`Places` of a run by address, else None."""
    if address_col is None:
        return None
    return Places(locator.gazetteer(), locator.memberships()[0] if at is None else None)


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
) -> Located:
    """Read ``src`` and answer every row; InputError for an unreadable file or a missing column."""
    src = Path(src)
    if src.suffix.lower() not in ASSIGN_FORMATS:
        raise InputError(f"unsupported file type {src.suffix!r} for {src.name}: use " + ", ".join(ASSIGN_FORMATS))
    if not src.exists():
        raise InputError(f"no such file: {src}")
    check_columns_given(lon_col, lat_col, address_col)
    rows = point_files.read(src, lon_col, lat_col, address_col)
    places = places_of(locator, address_col, at)
    return locate_points(locator.index(at), rows, crs=crs, address_col=address_col, places=places, progress=progress)


def check_columns_given(lon_col, lat_col, address_col) -> None:
    if address_col and (lon_col or lat_col):
        raise InputError("give either --address-col or --lon-col/--lat-col, not both")


def locate_points(
    index: GridIndex,
    rows: point_files.Points,
    *,
    crs=None,
    address_col=None,
    places: Places | None = None,
    progress=None,
) -> Located:
    """Answer every row of ``rows`` on ``index``, :data:`CHUNK` rows at a time: the single-process
    core, which ``--engine dask`` workers run on their partitions too (:mod:`.dask_assign`)."""
    known = homes = None
    if address_col is not None:
        floors = rows.column("floor") if "floor" in rows.table.column_names else None
        lon, lat, known, homes = resolve_addresses(places.gazetteer, rows.column(address_col), floors)
    else:
        lon, lat = rows.lon, rows.lat
    source_crs = rows_crs(rows, crs, address_col)
    parts = []
    for start in range(0, max(len(lon), 1), CHUNK):
        stop = min(start + CHUNK, len(lon))
        parts.append(
            assign_arrays(
                index, lon[start:stop], lat[start:stop], source_crs, None if known is None else known[start:stop]
            )
        )
        if progress:
            progress(stop - start)
    answers = _concat(parts)
    if homes is not None and places.members is not None:
        _by_floor(places.members, index, answers, homes)
    return Located(rows, answers, index, source_crs, lon, lat)


def rows_crs(rows: point_files.Points, crs, address_col) -> str:
    """The CRS of the rows' coordinates: storage for addresses, else ``--crs``, else the file's own,
    else WGS 84."""
    if address_col is not None:
        return "EPSG:4326"
    return geo.parse_crs(crs) if crs else (rows.crs or "EPSG:4326")


def count_status(status) -> dict:
    """Rows placed, outside and bad of ``status`` numbers (into STATUS)."""
    counts = np.bincount(np.asarray(status, dtype=np.int64), minlength=len(STATUS))
    return {"rows": int(len(status)), **{name: int(n) for name, n in zip(STATUS, counts)}}


def output_table(found: Located) -> pa.Table:
    """The rows as read with the chain's columns after them (an input column of the same name is
    replaced): what ``assign`` writes, whole or a part of ``--engine dask`` at a time."""
    table = found.rows.table
    for name, column in point_files.answer_columns(found.index, found.answers).items():
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(name, column)
    return table


def _concat(parts: list[Assigned]) -> Assigned:
    if len(parts) == 1:
        return parts[0]
    labels = sorted({label for p in parts for label in p.special_labels})
    number = {label: i for i, label in enumerate(labels)}
    special = []
    for p in parts:
        relabel = np.array([number[label] for label in p.special_labels] + [-1], dtype=np.int64)
        special.append(relabel[p.special])  # -1 reads the trailing -1
    cat = np.concatenate
    return Assigned(
        {level: cat([p.rows[level] for p in parts]) for level in parts[0].rows},
        cat(special),
        labels,
        cat([p.status for p in parts]),
        cat([p.error for p in parts]),
        cat([p.nearest for p in parts]),
        cat([p.distance for p in parts]),
        cat([p.x for p in parts]),
        cat([p.y for p in parts]),
    )


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
    encoding: str = "utf-8-sig",
) -> dict:
    """Add the grid chain to every row of ``src`` and write ``dst`` (format by suffix; a CSV in
    ``encoding``, default UTF-8 with a BOM).

    Rows that cannot be placed carry ``status`` and ``error`` instead of stopping the run; ``dst`` is
    written to a temporary file and renamed, so it is never half-written.  Returns the summary.
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in ASSIGN_FORMATS:
        raise InputError(f"unsupported file type {dst.suffix!r} for {dst.name}: use " + ", ".join(ASSIGN_FORMATS))
    check_output(dst)
    found = locate_file(
        locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col, at=at, progress=progress
    )
    table = output_table(found)
    tmp = temporary_beside(dst, suffix=dst.suffix)
    try:
        point_files.write(
            table,
            tmp,
            dst.suffix.lower(),
            lon=found.lon,
            lat=found.lat,
            crs=found.crs,
            layer=dst.stem,
            geo_meta=found.rows.geo_meta,
            encoding=encoding,
        )
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return summarise(found.answers.status, found.crs)


def summarise(status, crs) -> dict:
    """Rows placed, outside and bad: ``status`` numbers (into STATUS), or a located frame's rows."""
    if isinstance(status, pd.DataFrame):
        status = pd.Categorical(status["status"].astype(object), categories=list(STATUS)).codes
    return {**count_status(status), "crs": crs}


def locate_frame(locator: Locator, src, **options) -> tuple[pd.DataFrame, str, np.ndarray, np.ndarray]:
    """:func:`locate_file` as a DataFrame (the file's columns, then the chain's; ``attrs["input_columns"]``
    names the file's own), the source CRS and the rows' lon/lat: for the record commands."""
    found = locate_file(locator, src, **options)
    out = located_frame(found)
    return out, found.crs, found.lon, found.lat


def located_frame(found: Located) -> pd.DataFrame:
    """Located rows as a DataFrame: the file's columns, then the chain's (``attrs["input_columns"]``
    names the file's own)."""
    frame = point_files.plain(found.rows.table).to_pandas()
    # object columns as they are: inferring a string type for each cost seconds a million rows
    chain = pd.DataFrame(point_files.answer_arrays(found.index, found.answers), dtype=object)
    chain["lon_wgs84"], chain["lat_wgs84"] = found.answers.x, found.answers.y
    chain["nearest_distance_m"] = found.answers.distance
    out = pd.concat([frame.drop(columns=[c for c in chain.columns if c in frame.columns]), chain], axis=1)
    out.attrs["input_columns"] = list(frame.columns)  # the file's own columns, before the chain's
    return out


def record_residents(locator: Locator, src, *, address_col: str, crs=None, name_col="name") -> dict:
    """Store every row of ``src`` as a resident placed by its address, in one transaction (rows
    that cannot be placed are kept without a grid).  Reports: :mod:`.report_intake`."""
    src = Path(src)
    if not address_col:
        raise InputError("residents are recorded by their address: give --address-col")
    out, source_crs, _, _ = locate_frame(locator, src, crs=crs, address_col=address_col)
    rows = resident_rows(out, address_col, locator.gazetteer(), name_col)
    with locator.engine.begin() as conn:
        points.insert(conn, "resident", rows)
    return summarise(out, source_crs)


def resident_rows(out: pd.DataFrame, address_col: str, gaz: Gazetteer, name_col="name") -> pd.DataFrame:
    """The ``resident`` rows of located rows ``out`` (building and unit from the address); for one
    file, or a partition of ``record residents --engine dask``."""
    geom = point_wkb(out)
    address = out[address_col]
    rows = pd.DataFrame(
        {
            "name": out[name_col] if name_col in out.columns else None,
            "address": address,
            "building_code": None,
            "unit": None,
            "geom": geom,
            "micro_code": out["micro_code"].astype(object).where(out["micro_code"].notna(), None),
        }
    )
    for i, text in enumerate(address):
        try:
            found = gaz.resolve(text)
            rows.loc[i, "building_code"], rows.loc[i, "unit"] = found.building.code, found.unit
        except InputError:
            pass
    rows["unit"] = rows["unit"].astype("Int64")
    return rows


def point_wkb(out: pd.DataFrame) -> np.ndarray:
    """The rows' WGS84 points as hex EWKB (None where a row has none), for COPY."""
    x = pd.to_numeric(out["lon_wgs84"], errors="coerce").to_numpy(dtype="float64")
    y = pd.to_numeric(out["lat_wgs84"], errors="coerce").to_numpy(dtype="float64")
    placed = np.isfinite(x)
    geom = np.full(len(out), None, dtype=object)
    if placed.any():
        pts = shapely.set_srid(shapely.points(x[placed], y[placed]), geo.STORAGE_SRID)
        geom[placed] = shapely.to_wkb(pts, hex=True, include_srid=True)
    return geom
