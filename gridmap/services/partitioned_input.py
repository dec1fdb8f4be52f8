"""Input of a distributed run, read in partitions: a Parquet file (one partition per row group) or
folder, a GeoParquet dataset, or a glob of CSV files (blocks of ``blocksize`` bytes).  No process
reads the whole input: the client reads only the schema, each task one partition."""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj

from ..errors import InputError
from . import point_wkb
from .ingest import CSV_ENCODINGS

#: CSV block size: about a million short rows, a few hundred MB once parsed (README "Beyond one machine").
CSV_BLOCK = "64MB"


@dataclass(frozen=True)
class Partitioned:
    """A partitioned input: the Dask frame, its files, the GeoParquet geometry column (WKB) and CRS."""

    frame: object  # dask.dataframe.DataFrame
    files: tuple[str, ...]
    geometry: str | None
    crs: str | None
    name: str

    def columns(self) -> pd.DataFrame:
        """An empty frame with the attribute columns (for checks before the run)."""
        return pd.DataFrame(columns=[c for c in self.frame.columns if c != self.geometry])


def open_input(src: str) -> Partitioned:
    """Open ``src`` lazily; InputError naming the problem when it is missing, empty or unsupported."""
    try:
        # deferred: the scale extra (dask)
        import dask
        import dask.dataframe as dd
    except ImportError:
        raise InputError("--engine dask needs the scale extra: pip install 'gridmap[scale]'") from None
    files = _files(src)
    name = Path(src).name
    # plain object columns, as the single-process command reads them, so both write the same file
    with dask.config.set({"dataframe.convert-string": False}):
        try:
            if files[0].lower().endswith(".csv"):
                frame = dd.read_csv(
                    list(files),
                    dtype=str,
                    keep_default_na=False,
                    encoding=_csv_encoding(files[0]),
                    blocksize=CSV_BLOCK,
                )
                return Partitioned(frame, files, None, None, name)
            geometry, crs = _geoparquet(files[0])
            # the geometry stays Arrow binary: its points are read from the buffers, no bytes object per row
            frame = dd.read_parquet(
                list(files),
                split_row_groups=True,
                calculate_divisions=False,
                arrow_to_pandas={"types_mapper": _binary_as_arrow},
            )
        except InputError:
            raise
        except Exception as exc:  # pyarrow/fsspec raise many types; all mean "cannot read this input"
            raise InputError(f"cannot read {name}: {str(exc).strip().splitlines()[0]}") from None
    return Partitioned(frame, files, geometry, crs, name)


def part_rows(part: pd.DataFrame, geometry: str | None):
    """(attributes, lon, lat) of one partition: the point coordinates of its GeoParquet geometry
    (NaN for empty or non-point geometries, as the single-process command reads them)."""
    if geometry is None:
        return part.reset_index(drop=True), None, None
    column = part[geometry]
    x, y = point_wkb.xy(pa.array(column.array) if isinstance(column.dtype, pd.ArrowDtype) else column.to_numpy())
    return part.drop(columns=[geometry]).reset_index(drop=True), x, y


def _binary_as_arrow(arrow_type):
    """Arrow binary columns (WKB) kept as Arrow in pandas; every other type converted as usual."""
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def _files(src: str) -> tuple[str, ...]:
    path = Path(src)
    if any(ch in src for ch in "*?["):
        files = sorted(glob.glob(src))
    elif path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in (".parquet", ".csv"))
    elif path.exists():
        files = [src]
    else:
        raise InputError(f"no such file: {src}")
    if not files:
        raise InputError(f"no input files match {src}")
    kinds = {Path(f).suffix.lower() for f in files}
    if len(kinds) > 1 or kinds - {".parquet", ".csv"}:
        raise InputError(f"{Path(src).name}: --engine dask reads Parquet files or CSV files (one kind), got {kinds}")
    return tuple(files)


def _csv_encoding(path: str) -> str:
    """The first of UTF-8 / GBK / GB18030 that decodes the file's first megabyte."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    for encoding in CSV_ENCODINGS:
        try:
            head.decode(encoding)
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # a character cut by the megabyte's end
                return encoding
            continue
        return encoding
    raise InputError(f"cannot read {Path(path).name}: neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8")


def _geoparquet(path: str) -> tuple[str | None, str | None]:
    """The primary geometry column and CRS of a GeoParquet file (None, None for plain Parquet)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"geo")
    if raw is None:
        return None, None
    geo = json.loads(raw)
    column = geo["primary_column"]
    spec = geo.get("columns", {}).get(column, {})
    if spec.get("encoding", "WKB").upper() != "WKB":
        raise InputError(f"{Path(path).name}: geometry encoding {spec['encoding']!r}; --engine dask reads WKB")
    if "crs" not in spec:  # the GeoParquet default
        return column, "EPSG:4326"
    return column, None if spec["crs"] is None else pyproj.CRS.from_user_input(spec["crs"]).to_string()
