"""Files of points in and out for ``gridmap assign`` and ``gridmap record``, without geometry objects
the job does not need.

Plain Parquet, CSV and Excel files with coordinate columns are read with Arrow (CSV as text columns,
UTF-8 with or without a BOM, or GBK/GB18030) and written back as the same columns plus the chain's,
through Arrow again: no shapely object per row.  A GeoParquet file's points are decoded from their
WKB bytes in NumPy, and its geometry column is written back untouched.  GeoJSON and GeoPackage go
through GDAL (pyogrio), with point geometries built vectorised.
"""

from __future__ import annotations

import codecs
import csv as std_csv
import json
import weakref
from pathlib import Path

import lazy_loader
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..domain.lookup import CHAIN, STATUS, Assigned, GridIndex
from ..errors import InputError
from .files import write_csv

pd = lazy_loader.load("pandas")

PLAIN = (".csv", ".parquet", ".xlsx")
GEO = (".geojson", ".json", ".gpkg")
FORMATS = (*PLAIN, *GEO)
#: An Excel sheet's rows, header included.
EXCEL_ROWS = 1_048_576


class Points:
    """A file's rows (an Arrow table, pass-through) with lon/lat (or the address column) pulled out."""

    def __init__(self, table: pa.Table, lon=None, lat=None, crs: str | None = None, geo_meta=None):
        self.table, self.lon, self.lat, self.crs, self.geo_meta = table, lon, lat, crs, geo_meta

    def column(self, name: str) -> list:
        return self.table.column(name).to_pylist()


def read(path: Path, lon_col=None, lat_col=None, address_col=None) -> Points:
    """The rows of ``path``; InputError naming the file and the problem."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # deferred: only for files of this kind (short CLI start)

            table = pq.read_table(path)
        elif suffix == ".csv":
            table = _read_csv(path)
        elif suffix == ".xlsx":
            table = pa.Table.from_pandas(pd.read_excel(path, dtype=object, engine="openpyxl"), preserve_index=False)
        else:
            return _read_geo(path, lon_col, lat_col, address_col)
    except InputError:
        raise
    except Exception as exc:  # Arrow/openpyxl raise many types; all mean "cannot read this file"
        raise InputError(f"cannot read {path.name}: {str(exc).strip().splitlines()[0]}") from None
    return points_of(table, path, lon_col, lat_col, address_col, _geo_metadata(table))


def points_of(table: pa.Table, path: Path, lon_col=None, lat_col=None, address_col=None, geo_meta=None) -> Points:
    """The :class:`Points` of a table read from ``path`` (a whole file, or one partition of
    ``--engine dask``, which passes the file's ``geo_meta``); InputError naming a missing column."""
    if address_col is not None:
        _need(path, table, [address_col], "--address-col")
        return Points(table, crs=_geo_crs(geo_meta), geo_meta=geo_meta)
    if lon_col is None and lat_col is None and geo_meta and "lon" not in table.column_names:
        lon, lat = _wkb_points(table.column(geo_meta["primary_column"]))
        return Points(table, lon, lat, _geo_crs(geo_meta), geo_meta)
    lon_col, lat_col = lon_col or "lon", lat_col or "lat"
    _need(path, table, [lon_col, lat_col], "--lon-col/--lat-col or --address-col")
    return Points(table, _numbers(table.column(lon_col)), _numbers(table.column(lat_col)), _geo_crs(geo_meta), geo_meta)


def _need(path, table, columns, hint):
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(
            f"{path.name}: no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, table.column_names))}); use {hint}"
        )


def _read_csv(path: Path) -> pa.Table:
    """A CSV as text columns, UTF-8 (with or without a BOM) or GBK/GB18030."""
    from pyarrow import csv  # deferred: only for files of this kind (short CLI start)

    with open(path, "rb") as f:
        head = f.read(1 << 20)
    encoding = "utf-8"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            encoding = "gb18030"
    if encoding == "gb18030":
        try:
            head.decode("gb18030")
        except UnicodeDecodeError:
            raise InputError(
                f"cannot read {path.name}: neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8"
            ) from None
    types = {name: pa.string() for name in _csv_header(head, encoding)}
    return csv.read_csv(
        path,
        read_options=csv.ReadOptions(encoding=encoding),
        convert_options=csv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def _csv_header(head: bytes, encoding: str) -> list[str]:

    text = head.decode(encoding, errors="ignore").lstrip("\ufeff")
    return next(std_csv.reader([text.splitlines()[0] if text else ""]), [])


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A column as float64, NaN where a value is not a number."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).astype("float64")
    text = column.cast(pa.string())
    try:
        return pc.cast(pc.utf8_trim_whitespace(text), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # some value is not a number: those rows become "bad", not the file
        return pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)), errors="coerce").to_numpy("float64")


def _geo_metadata(table) -> dict | None:
    raw = (getattr(table, "schema", table).metadata or {}).get(b"geo")
    return json.loads(raw) if raw else None


def _geo_crs(geo_meta) -> str | None:
    """The CRS of a GeoParquet file's primary column as ``EPSG:n`` (None: lon/lat, the default)."""
    if not geo_meta:
        return None
    crs = geo_meta["columns"][geo_meta["primary_column"]].get("crs")
    if not crs:
        return None
    ident = crs.get("id", {}) if isinstance(crs, dict) else {}
    if ident.get("authority") == "EPSG":
        return f"EPSG:{ident['code']}"
    if ident.get("authority") == "OGC" and str(ident.get("code")).upper() == "CRS84":
        return None
    from pyproj import CRS  # deferred: only for files of this kind (short CLI start)

    return CRS.from_user_input(crs).to_string()


def geo_metadata(table_or_schema) -> dict | None:
    """The GeoParquet metadata (``geo``) of a table or schema, or None for plain Parquet."""
    return _geo_metadata(table_or_schema)


def _wkb_points(column: pa.ChunkedArray):
    """x, y of WKB points, decoded in NumPy (21-byte little-endian 2D points; shapely otherwise), NaN
    for anything that is not a point."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    large = pa.types.is_large_binary(column.type)
    if (pa.types.is_binary(column.type) or large) and column.null_count == 0:
        width = np.int64 if large else np.int32
        offsets = np.frombuffer(column.buffers()[1], dtype=width)[column.offset : column.offset + len(column) + 1]
        data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
        if len(column) and np.all(np.diff(offsets) == 21):
            rows = data[offsets[0] : offsets[-1]].reshape(-1, 21)
            if np.all(rows[:, 0] == 1) and np.all(rows[:, 1:5].view("<u4").ravel() == 1):
                xy = rows[:, 5:].copy().view("<f8")
                return xy[:, 0].copy(), xy[:, 1].copy()
    import shapely  # deferred: only for files of this kind (short CLI start)

    geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
    point = shapely.get_type_id(geoms) == 0
    return np.where(point, shapely.get_x(geoms), np.nan), np.where(point, shapely.get_y(geoms), np.nan)


def _read_geo(path, lon_col, lat_col, address_col) -> Points:
    import geopandas as gpd  # deferred: only for files of this kind (short CLI start)

    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio/GDAL raise many types; all mean "cannot read this file"
        raise InputError(f"cannot read {path.name}: {str(exc).strip().splitlines()[0]}") from None
    crs = gdf.crs.to_string() if gdf.crs is not None else None
    if crs and crs.lower().endswith("crs84"):
        crs = None
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if address_col is not None:
        _need(path, table, [address_col], "--address-col")
        return Points(table, crs=crs)
    if lon_col is None and lat_col is None:
        lon, lat = _wkb_points(pa.array(gdf.geometry.to_wkb().to_numpy(), type=pa.binary()))
        return Points(table, lon, lat, crs)
    lon_col, lat_col = lon_col or "lon", lat_col or "lat"
    _need(path, table, [lon_col, lat_col], "--lon-col/--lat-col or --address-col")
    return Points(table, _numbers(table.column(lon_col)), _numbers(table.column(lat_col)), crs)


def write(
    table: pa.Table,
    path: Path,
    suffix: str,
    *,
    lon,
    lat,
    crs: str | None,
    layer: str,
    geo_meta=None,
    encoding: str = "utf-8-sig",
) -> None:
    """Write ``table`` to ``path`` in the format of ``suffix``; points from ``lon``/``lat`` (in
    ``crs``) only where the format needs a geometry; a CSV in ``encoding`` (default UTF-8 with a BOM,
    which Excel needs to read it as UTF-8)."""
    if suffix == ".parquet":
        write_parquet([table], path, geo_meta)
    elif suffix == ".csv":
        _write_csv(_plain(table, keep_dictionaries=encoding in ("utf-8", "utf-8-sig")), path, encoding)
    elif suffix == ".xlsx":
        if table.num_rows >= EXCEL_ROWS:
            raise InputError(f"{table.num_rows} rows do not fit an Excel sheet (at most {EXCEL_ROWS - 1}): write CSV")
        _plain(table).to_pandas().to_excel(path, index=False, engine="openpyxl")
    else:
        import geopandas as gpd  # deferred: only for files of this kind (short CLI start)
        import shapely  # deferred: only for files of this kind (short CLI start)

        frame = _plain(table).to_pandas()
        finite = np.isfinite(lon) & np.isfinite(lat)
        points = shapely.points(np.where(finite, lon, 0), np.where(finite, lat, 0))
        points[~finite] = None
        gdf = gpd.GeoDataFrame(frame, geometry=points, crs=None if crs in ("gcj02", "bd09") else crs)
        path.unlink(missing_ok=True)
        gdf.to_file(path, driver="GPKG" if suffix == ".gpkg" else "GeoJSON", engine="pyogrio", layer=layer)


def write_parquet(tables, path: Path, geo_meta=None) -> None:
    """Tables of one schema as one Parquet file, a row group each (a writer holds one table at a time:
    ``assign``'s whole file, or a ``--engine dask`` partition a chunk at a time); GeoParquet when the
    input was (``geo_meta``: its geometry column came through untouched)."""
    import pyarrow.parquet as pq  # deferred: only for files of this kind (short CLI start)

    writer = None
    try:
        for table in tables:
            if geo_meta:
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo_meta)})
            if writer is None:
                # min/max statistics only for plain columns: over the chain's dictionary columns they cost
                # most of the write and, rows being in the input's order, could not skip a row group anyway
                plain = [f.name for f in table.schema if not pa.types.is_dictionary(f.type)]
                writer = pq.ParquetWriter(path, table.schema, write_statistics=plain)
            writer.write_table(table)  # row groups of at most a million rows (Arrow's default)
    finally:
        if writer is not None:
            writer.close()


def _write_csv(table: pa.Table, path: Path, encoding: str) -> None:
    """Arrow's fast writer for UTF-8 (a BOM first for ``utf-8-sig``); GBK/GB18030 through
    :func:`.files.write_csv`, which names a value the encoding cannot hold."""
    if encoding not in ("utf-8", "utf-8-sig"):
        write_csv(table.to_pandas(), path, encoding)
        return
    from pyarrow import csv  # deferred: only for files of this kind (short CLI start)

    with open(path, "wb") as out:
        if encoding == "utf-8-sig":
            out.write(codecs.BOM_UTF8)
        csv.write_csv(table, out)


def plain(table: pa.Table) -> pa.Table:
    """:func:`_plain`, for the record commands' frames."""
    return _plain(table)


def _plain(table: pa.Table, *, keep_dictionaries: bool = False) -> pa.Table:
    """Dictionary columns as plain strings, and binary (a geometry's WKB) dropped: for text formats.
    ``keep_dictionaries``: for Arrow's CSV writer, which writes a dictionary column's values itself
    (the same bytes, in half the time of casting first: 0.4 s of a million-row ``assign``)."""
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_dictionary(column.type) and not keep_dictionaries:
            column = column.cast(column.type.value_type)
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            continue
        columns.append(column)
        names.append(name)
    return pa.table(columns, names=names)


_DICTIONARIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _dictionaries(index: GridIndex, level: str) -> tuple[pa.Array, pa.Array]:
    """Arrow arrays of a level's codes and distinct names, made once per index."""
    made = _DICTIONARIES.setdefault(index, {})
    if level not in made:
        _, codes, _, names = index.level_values(level)
        made[level] = (pa.array(codes), pa.array(names))
    return made[level]


def answer_columns(index: GridIndex, a: Assigned) -> dict[str, pa.Array]:
    """The chain's columns as Arrow arrays: dictionary arrays over each level's own codes and names."""

    def dictionary(numbers, values):
        return pa.DictionaryArray.from_arrays(pa.array(numbers.astype(np.int32), mask=numbers < 0), values)

    out = {}
    for level in CHAIN:
        pos, _, name_of, _ = index.level_values(level)
        codes, names = _dictionaries(index, level)
        p = pos[a.rows[level]]  # row -1 reads the extra slot: -1
        out[f"{level}_code"] = dictionary(p, codes)
        out[f"{level}_name"] = dictionary(np.where(p >= 0, name_of[np.maximum(p, 0)], -1), names)
    out["special_codes"] = dictionary(a.special, pa.array(a.special_labels, type=pa.string()))
    out["status"] = dictionary(a.status.astype(np.int64), pa.array(STATUS))
    out["error"] = pa.array(a.error, type=pa.string())
    pos = index.level_values("micro")[0]
    out["nearest_micro_code"] = dictionary(pos[a.nearest], _dictionaries(index, "micro")[0])
    out["nearest_distance_m"] = pa.array(a.distance, from_pandas=True)
    out["lon_wgs84"] = pa.array(a.x, from_pandas=True)
    out["lat_wgs84"] = pa.array(a.y, from_pandas=True)
    return out


def answer_lists(index: GridIndex, a: Assigned) -> dict[str, list]:
    """The same columns as :func:`answer_columns`, as JSON-ready lists (null where absent)."""
    return {k: v.tolist() for k, v in answer_arrays(index, a).items()}


def answer_arrays(index: GridIndex, a: Assigned) -> dict[str, np.ndarray]:
    """The same columns as :func:`answer_columns`, as NumPy object arrays (None where absent)."""

    def pick(values, numbers):
        return np.where(numbers >= 0, values[np.maximum(numbers, 0)], None)

    out = {}
    for level in CHAIN:
        r = a.rows[level]
        out[f"{level}_code"] = pick(index.code, r)
        out[f"{level}_name"] = pick(index.name, r)
    out["special_codes"] = pick(np.array(a.special_labels + [""], dtype=object), a.special)
    out["status"] = np.array(STATUS, dtype=object)[a.status]
    out["error"] = np.asarray(a.error, dtype=object)
    out["nearest_micro_code"] = pick(index.code, a.nearest)
    out["nearest_distance_m"] = np.where(np.isnan(a.distance), None, a.distance)
    out["lon_wgs84"] = np.where(np.isnan(a.x), None, a.x)
    out["lat_wgs84"] = np.where(np.isnan(a.y), None, a.y)
    return out


def parquet_bytes(columns: dict[str, pa.Array]) -> bytes:
    """Columns as one Parquet file in memory."""
    import pyarrow.parquet as pq  # deferred: only for files of this kind (short CLI start)

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()
