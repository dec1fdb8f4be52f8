"""Reading grid, building and people files, and checking every row before anything is written.

An import is all-or-nothing: :func:`read_grids` and friends return a clean frame
or raise :class:`ImportRejected` listing every bad row; the store then writes the
frame in one transaction.  Rows are numbered from 1 in file order (a CSV's header
line is not a row).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import lazy_loader
import numpy as np
import shapely

from .. import geo
from ..domain.levels import LEVELS, SPECIAL, SPECIAL_KINDS, check_level, parent_level
from ..domain.wording import count
from ..errors import ImportRejected, InputError

pd = lazy_loader.load("pandas")

FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".shp": "shp",
    ".csv": "csv",
    ".parquet": "parquet",
}
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "WKT")
MAX_LISTED = 1000


@dataclass
class Fields:
    """Which source columns hold the code, name and parent code."""

    code: str = "code"
    name: str = "name"
    parent: str = "parent_code"


class Problems:
    """Collects row problems; raises them all at once."""

    def __init__(self, path: Path):
        self.path = path
        self.items: list[dict] = []
        self.unlisted = 0  # problems counted but not kept (a distributed run sends at most MAX_LISTED a part)

    def add(self, row: int, problem: str, code=None) -> None:
        self.items.append({"row": int(row), "code": None if code is None else str(code), "problem": problem})

    def add_mask(self, mask, codes, problem) -> None:
        """Add ``problem`` (a string, or a callable of the row index) for each row where mask is true."""
        for i in np.flatnonzero(np.asarray(mask)):
            self.add(i + 1, problem(i) if callable(problem) else problem, codes[i] if codes is not None else None)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        self.items.sort(key=lambda p: p["row"])
        first = self.items[0]
        where = f"row {first['row']}" + (f" (code {first['code']})" if first["code"] else "")
        total = len(self.items) + self.unlisted
        more = total - 1
        tail = f"; and {count(more, 'more problem')}" if more else ""
        raise ImportRejected(
            f"import of {self.path.name} rejected, nothing written: {where}: {first['problem']}{tail}",
            detail={"file": str(self.path), "problems": self.items[:MAX_LISTED], "count": total},
        )


def file_format(path: Path) -> str:
    """The format of ``path`` by its suffix, or InputError naming the supported ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"unsupported file type {path.suffix or path.name!r}: use " + ", ".join(sorted(set(FORMATS))))
    return fmt


#: CSV encodings tried in order: UTF-8 (with or without Excel's BOM), then GB18030, the superset of
#: GBK that Excel on Chinese Windows writes.  A UTF-8 file of Chinese text almost never decodes as
#: GB18030 and the reverse fails fast, so trying them in this order guesses right.
CSV_ENCODINGS = ("utf-8-sig", "gb18030")


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV as text columns, in UTF-8 or GBK/GB18030; InputError naming the file otherwise, or the
    first line with more fields than the header (an unquoted WKT geometry)."""
    for encoding in CSV_ENCODINGS:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            wide = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if wide:
                raise _too_many_fields(path, int(wide[2]), int(wide[3]), int(wide[1])) from None
            raise InputError(f"cannot read {Path(path).name}: {str(exc).strip().splitlines()[0]}") from None
        if not isinstance(frame.index, pd.RangeIndex):  # pandas took a wide first row's extra fields as an index
            line = _first_data_line(path, encoding)
            raise _too_many_fields(path, line, frame.index.nlevels + len(frame.columns), len(frame.columns))
        return _refuse_nul(frame, path)
    raise InputError(f"cannot read {Path(path).name}: neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8")


def _too_many_fields(path: Path, line: int, saw: int, expected: int) -> InputError:
    return InputError(
        f"cannot read {Path(path).name}: line {line} has {saw} fields but the header has {expected}; "
        'put a field holding commas (such as a WKT geometry) in double quotes: "POLYGON((0 0,1 0,1 1,0 0))"'
    )


def _first_data_line(path: Path, encoding: str) -> int:
    """The line number of the first row after the header (2, unless blank lines come first)."""
    with open(path, encoding=encoding, newline="") as f:
        reader = csv.reader(f)
        seen = 0
        for record in reader:
            seen += bool(record)  # a blank line is no record
            if seen == 2:
                return reader.line_num
    return 2


def _refuse_nul(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """InputError naming the first row and column holding a NUL character (no text field can hold one)."""
    for column in frame.columns:
        has = frame[column].str.contains("\x00", regex=False)
        if has.any() or "\x00" in str(column):
            row = int(has.to_numpy().argmax()) + 1 if has.any() else 0
            where = f"row {row}, column {str(column).replace(chr(0), '')!r}" if row else "the header"
            raise InputError(f"cannot read {Path(path).name}: {where} holds a NUL character (\\0)")
    return frame


def read_table(
    path: Path, crs: str | None, *, need_geometry: bool = True
) -> tuple[pd.DataFrame, np.ndarray | None, str]:
    """Read any supported file into (attributes, geometries, source CRS)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    fmt = file_format(path)
    if fmt == "csv":
        frame = read_csv(path)
        if not need_geometry:
            return frame, None, geo.parse_crs(crs)
        column = next((c for c in WKT_COLUMNS if c in frame.columns), None)
        if column is None:
            raise InputError(f"{path.name}: a CSV needs a WKT geometry column named one of {', '.join(WKT_COLUMNS)}")
        wkt = frame.pop(column).replace("", None).to_numpy(dtype=object)
        try:
            geoms = shapely.from_wkt(wkt, on_invalid="raise")
        except shapely.errors.GEOSException:
            geoms = np.array([wkt_or_none(w) for w in wkt], dtype=object)
        return frame, geoms, geo.parse_crs(crs)
    try:
        gdf = gpd.read_parquet(path) if fmt == "parquet" else gpd.read_file(path, engine="pyogrio", use_arrow=True)
    except Exception as exc:  # pyogrio/GDAL raise many types; all mean "cannot read this file"
        raise InputError(f"cannot read {path.name}: {exc}") from None
    source = geo.parse_crs(crs) if crs else (gdf.crs.to_string() if gdf.crs is not None else "EPSG:4326")
    if source.lower() in ("ogc:crs84", "urn:ogc:def:crs:ogc:1.3:crs84"):
        source = "EPSG:4326"
    geoms = gdf.geometry.to_numpy() if need_geometry else None
    return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)), geoms, source


def wkt_or_none(text):
    try:
        return shapely.from_wkt(text) if text else None
    except shapely.errors.GEOSException:
        return "bad-wkt"


def _text_column(frame: pd.DataFrame, name: str, path: Path, required=True) -> np.ndarray:
    if name not in frame.columns:
        if not required:
            return np.full(len(frame), None, dtype=object)
        raise InputError(f"{path.name}: no column {name!r} (columns: {', '.join(map(str, frame.columns))})")
    col = frame[name]
    if pd.api.types.is_float_dtype(col):
        col = col.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    out = col.astype(object).where(col.notna(), None).to_numpy()
    return np.array([None if v is None or str(v).strip() == "" else str(v).strip() for v in out], dtype=object)


def _int_column(frame: pd.DataFrame, name: str, problems: Problems, codes) -> np.ndarray:
    if name not in frame.columns:
        return np.zeros(len(frame), dtype="int64")
    values = pd.to_numeric(frame[name].replace("", "0"), errors="coerce")
    bad = values.isna() | (values < 0) | (values % 1 != 0)
    problems.add_mask(bad, codes, lambda i: f"{name} must be a whole number >= 0, got {frame[name].iloc[i]!r}")
    return values.fillna(0).astype("int64").to_numpy()


def _check_geometries(geoms, source_crs: str, problems: Problems, codes, *, what="Polygon or MultiPolygon"):
    """Check type, validity and place of every geometry; return them in storage CRS as MultiPolygons."""
    geoms = np.array([g if isinstance(g, shapely.Geometry) or g is None else None for g in geoms], dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    problems.add_mask(missing, codes, "missing or unreadable geometry")
    types = shapely.get_type_id(geoms)
    wrong = ~missing & ~np.isin(types, (3, 6))
    problems.add_mask(wrong, codes, lambda i: f"wrong geometry type {geoms[i].geom_type} (expected {what})")
    ok = ~missing & ~wrong
    out = geo.transform_geoms(geoms, source_crs)
    # lon/lat sources are checked as given (so swapped axes are recognised), others once in lon/lat
    _check_place(geoms if geo.is_geographic(source_crs) else out, ok, problems, codes)
    valid = shapely.is_valid(out)
    bad = ok & ~valid
    problems.add_mask(bad, codes, lambda i: f"invalid geometry: {shapely.is_valid_reason(out[i])}")
    polys = ok & (types == 3)
    if polys.any():
        out[polys] = shapely.multipolygons(out[polys][:, None])
    return out


def _check_place(geoms, ok, problems: Problems, codes):
    bounds = shapely.bounds(geoms)
    for i in np.flatnonzero(ok):
        why = geo.bounds_problem(*bounds[i])
        if why:
            problems.add(i + 1, why, codes[i])


def _check_codes(codes, existing: set[str], problems: Problems, what="code"):
    missing = np.array([c is None for c in codes])
    problems.add_mask(missing, None, f"missing {what}")
    first_seen: dict[str, int] = {}
    for i, c in enumerate(codes):
        if c is None:
            continue
        if c in first_seen:
            problems.add(i + 1, f"duplicate code {c} (also row {first_seen[c]})", c)
        else:
            first_seen[c] = i + 1
        if c in existing:
            problems.add(i + 1, f"code {c} already exists in the current version (use --replace to version it)", c)


def _check_issued(codes, level: str, issued: dict, problems: Problems):
    for i, c in enumerate(codes):
        was_level, retired = issued.get(c, (level, None))
        if retired is not None:
            problems.add(i + 1, f"code {c} was retired on {retired}; a code is never issued again", c)
        elif was_level != level:
            problems.add(i + 1, f"code {c} was issued for a {was_level}, not a {level}", c)


def _check_parents(parents, parent_codes: set[str], plevel: str, problems: Problems, codes):
    for i, p in enumerate(parents):
        if p is None:
            problems.add(i + 1, f"missing parent code (a grid of this level needs a parent {plevel})", codes[i])
        elif p not in parent_codes:
            problems.add(i + 1, f"unknown parent code {p} (no current {plevel} has it)", codes[i])


def read_grids(
    path,
    level: str,
    *,
    crs=None,
    fields: Fields = Fields(),
    existing_codes: set[str] = frozenset(),
    parent_codes: set[str] | None = None,
    issued_of=None,
) -> pd.DataFrame:
    """Read and check a grid file; return columns code, name, level, kind, parent_code, households,
    population, geometry (MultiPolygon, storage CRS).

    ``existing_codes``: codes already current (duplicates are errors); ``parent_codes``: current codes of
    the parent level; ``issued_of(codes)``: the codes ever issued, ``{code: (level, retired_at text)}`` (a
    retired code, or one issued for another level, is an error).
    Raises ImportRejected with every bad row, InputError for a bad file or option.
    """
    check_level(level)
    path = Path(path)
    frame, geoms, source = read_table(path, crs)
    if len(frame) == 0:
        raise InputError(f"{path.name} has no rows")
    problems = Problems(path)
    codes = _text_column(frame, fields.code, path)
    names = _text_column(frame, fields.name, path)
    _check_codes(codes, set(existing_codes), problems)
    if issued_of is not None:
        _check_issued(codes, level, issued_of([c for c in codes if c is not None]), problems)
    problems.add_mask([n is None for n in names], codes, "missing name")
    plevel = parent_level(level)
    parents = _text_column(frame, fields.parent, path, required=plevel is not None)
    if plevel is not None:
        _check_parents(parents, parent_codes or set(), plevel, problems, codes)
    kinds = _text_column(frame, "kind", path, required=False)
    if level == SPECIAL:
        for i, k in enumerate(kinds):
            if k not in SPECIAL_KINDS:
                problems.add(i + 1, f"special grid kind {k!r} is not one of {', '.join(SPECIAL_KINDS)}", codes[i])
    else:
        kinds = np.full(len(frame), None, dtype=object)
    households = _int_column(frame, "households", problems, codes)
    population = _int_column(frame, "population", problems, codes)
    out_geoms = _check_geometries(geoms, source, problems, codes)
    problems.raise_if_any()
    # ``multipart`` (true/1/yes): a grid allowed in several pieces, a courtyard cut by a public road
    multipart = (
        frame["multipart"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes", "t")).to_numpy(dtype=bool)
        if "multipart" in frame.columns
        else np.zeros(len(frame), dtype=bool)
    )
    return pd.DataFrame(
        {
            "code": codes,
            "multipart": multipart,
            "name": names,
            "level": level,
            "kind": kinds,
            "parent_code": parents if plevel else None,
            "households": households,
            "population": population,
            "geometry": out_geoms,
        }
    )


def parse_units(text) -> list[int]:
    """Units' households from ``"12;12;18"`` (or a JSON list); ValueError when malformed or not > 0."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        raise ValueError("no units")
    if isinstance(text, (list, tuple, np.ndarray)):
        values = list(text)
    else:
        s = str(text).strip()
        values = json.loads(s) if s.startswith("[") else [v for v in s.replace(",", ";").split(";") if v.strip()]
    units = [int(v) for v in values]
    if not units:
        raise ValueError("no units")
    bad = [u for u in units if u <= 0]
    if bad:
        raise ValueError(f"unit households must be > 0, got {bad[0]}")
    return units


def read_buildings(
    path,
    *,
    crs=None,
    fields: Fields = Fields(parent="courtyard_code"),
    existing_codes: set[str] = frozenset(),
    courtyard_codes: set[str] = frozenset(),
) -> pd.DataFrame:
    """Read and check a building file: code, name, courtyard code, number, floors, units
    (households per unit as ``"12;12;18"``), footprint.  Raises ImportRejected/InputError."""
    path = Path(path)
    frame, geoms, source = read_table(path, crs)
    problems = Problems(path)
    codes = _text_column(frame, fields.code, path)
    _check_codes(codes, set(existing_codes), problems)
    names = _text_column(frame, fields.name, path, required=False)
    numbers = _text_column(frame, "number", path, required=False)
    parents = _text_column(frame, fields.parent, path)
    _check_parents(parents, set(courtyard_codes), "courtyard", problems, codes)
    floors = _int_column(frame, "floors", problems, codes)
    if "units" not in frame.columns:
        raise InputError(f"{path.name}: no column 'units' (households per unit, e.g. \"12;12;18\")")
    units = []
    for i, text in enumerate(frame["units"].to_numpy()):
        try:
            units.append(parse_units(text))
        except (ValueError, TypeError) as exc:
            problems.add(i + 1, f"bad units {text!r}: {exc}", codes[i])
            units.append([])
    per_floor = _floor_households(frame, units, problems, codes)
    out_geoms = _check_geometries(geoms, source, problems, codes)
    problems.raise_if_any()
    return pd.DataFrame(
        {
            "code": codes,
            "floor_households": per_floor,
            "name": [n or (num or c) for n, num, c in zip(names, numbers, codes)],
            "number": numbers,
            "courtyard_code": parents,
            "floors": floors,
            "units": units,
            "households": [sum(u) for u in units],
            "geometry": out_geoms,
        }
    )


def _floor_households(frame: pd.DataFrame, units: list, problems: Problems, codes) -> list:
    """The optional ``floor_households`` column: per building a JSON list, per unit, of households on
    floors 1..n (``[[4, 4, 4], [3, 3, 3]]``), each summing to the unit's households; None per building
    where it is absent (the households are then spread evenly over the building's floors)."""
    if "floor_households" not in frame.columns:
        return [None] * len(units)
    out = []
    for i, (text, hh) in enumerate(zip(frame["floor_households"].to_numpy(), units)):
        if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
            out.append(None)
            continue
        try:
            value = json.loads(text) if isinstance(text, str) else text
            per = [[int(h) for h in unit] for unit in value]
        except (ValueError, TypeError):
            problems.add(
                i + 1, f"bad floor_households {text!r}: expected a JSON list of lists of whole numbers", codes[i]
            )
            out.append(None)
            continue
        if len(per) != len(hh):
            problems.add(i + 1, f"floor_households has {len(per)} units, units {len(hh)}", codes[i])
        elif any(sum(f) != h or min(f, default=0) < 0 or not f for f, h in zip(per, hh)):
            bad = next(n for n, (f, h) in enumerate(zip(per, hh), 1) if sum(f) != h or min(f, default=0) < 0 or not f)
            problems.add(
                i + 1,
                f"floor_households of unit {bad} sum to {sum(per[bad - 1])}, the unit has {hh[bad - 1]} households",
                codes[i],
            )
        out.append(per)
    return out


def level_kind(level: str) -> str:
    """'grid', 'building', 'person' (a roster), 'party_org' or 'share' (a membership CSV) for an import
    --level value."""
    if level in ("building", "person", "party_org", "share"):
        return level
    check_level(level)
    return "grid"


IMPORT_LEVELS = LEVELS + (SPECIAL, "building", "person", "party_org", "share")
