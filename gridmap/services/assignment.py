"""Placing the rows of a file in their grids: ``gridmap assign`` (a file in, the same rows with the
grid chain out) and ``gridmap record`` (reports and residents stored with their micro-grid).

The rows stay an Arrow table from reading to writing (:mod:`.point_files`); the chain columns are
dictionary arrays over the index's own code and name arrays, so a million rows cost a million small
integers per column, not a million strings."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from .. import geo
from ..domain.lookup import STATUS, Assigned, GridIndex, assign_arrays
from ..errors import InputError
from ..store import points
from . import point_files
from .files import check_output
from .locator import Locator

ASSIGN_FORMATS = point_files.FORMATS
#: Rows answered at a time (the progress bar's step); a million fits the memory of any machine here.
CHUNK = 1_000_000


def resolve_addresses(locator: Locator, addresses, floors=None):
    """(lon, lat, problems, homes) in storage CRS for address strings; problems say why a row failed;
    ``homes[i]`` is (building, unit, floor) when the address, or the row's ``floors[i]``, names the floor
    (the unit may be implied by a one-unit building), else None."""
    gaz = locator.gazetteer()
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


def _by_floor(locator: Locator, index: GridIndex, answers: Assigned, homes) -> None:
    """Rows whose household's floor is known take the micro-grid holding that floor (a tower shared by
    several micro-grids), not the one at the building's point."""
    rows = [i for i, h in enumerate(homes) if h is not None]
    if not rows:
        return
    members = locator.memberships()[0]
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
    if address_col and (lon_col or lat_col):
        raise InputError("give either --address-col or --lon-col/--lat-col, not both")
    rows = point_files.read(src, lon_col, lat_col, address_col)
    known = homes = None
    if address_col is not None:
        floors = rows.column("floor") if "floor" in rows.table.column_names else None
        lon, lat, known, homes = resolve_addresses(locator, rows.column(address_col), floors)
        source_crs = "EPSG:4326"
    else:
        lon, lat = rows.lon, rows.lat
        source_crs = geo.parse_crs(crs) if crs else (rows.crs or "EPSG:4326")
    index = locator.index(at)
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
    if homes is not None and at is None:
        _by_floor(locator, index, answers, homes)
    return Located(rows, answers, index, source_crs, lon, lat)


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
) -> dict:
    """Add the grid chain to every row of ``src`` and write ``dst`` (format by suffix).

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
    table = found.rows.table
    for name, column in point_files.answer_columns(found.index, found.answers).items():
        if name in table.column_names:  # a column of the input by the same name is replaced
            table = table.drop_columns([name])
        table = table.append_column(name, column)
    tmp = Path(tempfile.mkstemp(prefix=".gridmap-", suffix=dst.suffix, dir=dst.parent or ".")[1])
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
        )
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return summarise(found.answers.status, found.crs)


def summarise(status: np.ndarray, crs) -> dict:
    counts = np.bincount(status, minlength=len(STATUS))
    return {
        "rows": int(len(status)),
        **{name: int(n) for name, n in zip(STATUS, counts)},
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
    found = locate_file(locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col)
    a, n = found.answers, len(found.answers.status)
    placed = np.isfinite(a.x)
    geom = np.full(n, None, dtype=object)
    if placed.any():
        pts = shapely.set_srid(shapely.points(a.x[placed], a.y[placed]), geo.STORAGE_SRID)
        geom[placed] = shapely.to_wkb(pts, hex=True, include_srid=True)
    micro_rows = a.rows["micro"]
    micro = np.where(micro_rows >= 0, found.index.code[np.maximum(micro_rows, 0)], None)
    columns = found.rows.table.column_names
    address = pd.Series(found.rows.column(address_col)) if address_col else pd.Series([None] * n)
    lon, lat = found.lon, found.lat
    source_crs = found.crs
    if table == "report":
        if text_col not in columns:
            raise InputError(f"{src.name}: no column {text_col!r} with the report's text")
        rows = pd.DataFrame(
            {
                "text": found.rows.column(text_col),
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
                "name": found.rows.column(name_col) if name_col in columns else None,
                "address": address,
                "building_code": None,
                "unit": None,
                "geom": geom,
                "micro_code": micro,
            }
        )
        if address_col:
            gaz = locator.gazetteer()
            for i, text in enumerate(address):
                try:
                    place = gaz.resolve(text)
                    rows.loc[i, "building_code"], rows.loc[i, "unit"] = place.building.code, place.unit
                except InputError:
                    pass
            rows["unit"] = rows["unit"].astype("Int64")
    with locator.engine.begin() as conn:
        points.insert(conn, table, rows)
    return summarise(a.status, source_crs)
