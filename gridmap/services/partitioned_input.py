"""Input of a distributed run, read in partitions: a Parquet file (one partition per row group) or
folder, a GeoParquet dataset, or a glob of CSV files (blocks of ``blocksize`` bytes).  No process
reads the whole input: the client reads only the schema, each task one partition.

A partition reaches its task as a pandas frame (Dask's unit) and is turned back into the Arrow table
the single-process command would have read (:func:`part_table`): Parquet columns are kept as Arrow
in pandas (``pd.ArrowDtype``), so the round trip is lossless; CSV columns are text, as
:mod:`.point_files` reads them.  From there the workers run the single-process code."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import lazy_loader
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from . import point_files
from .ingest import CSV_ENCODINGS

pd = lazy_loader.load("pandas")

#: CSV block size: about a million short rows, a few hundred MB once parsed (README "Beyond one machine").
CSV_BLOCK = "64MB"


@dataclass(frozen=True)
class Partitioned:
    """A partitioned input: the Dask frame, its files, the Arrow schema every partition is read
    back to, and the GeoParquet metadata (None for plain Parquet and CSV)."""

    frame: object  # dask.dataframe.DataFrame
    files: tuple[str, ...]
    schema: pa.Schema
    geo_meta: dict | None
    name: str

    def empty(self) -> pa.Table:
        """No rows, the input's columns (for checks before the run)."""
        return self.schema.empty_table()


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
                schema = pa.schema([(str(c), pa.string()) for c in frame.columns])
                return Partitioned(frame, files, schema, None, name)
            schema = pq.read_schema(files[0])
            geo_meta = point_files.geo_metadata(schema)
            _check_geometry(geo_meta, files[0])
            # every column stays Arrow inside pandas: no Python object per row, and the partition
            # turns back into the very table the single-process reader gets
            frame = dd.read_parquet(
                list(files),
                split_row_groups=True,
                calculate_divisions=False,
                arrow_to_pandas={"types_mapper": pd.ArrowDtype},
            )
        except InputError:
            raise
        except Exception as exc:  # pyarrow/fsspec raise many types; all mean "cannot read this input"
            raise InputError(f"cannot read {name}: {str(exc).strip().splitlines()[0]}") from None
    return Partitioned(frame, files, schema, geo_meta, name)


def part_table(part: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """One partition as the Arrow table of the input's ``schema`` (its metadata too, as the
    single-process reader keeps it, not a description of this pandas frame)."""
    table = pa.Table.from_pandas(part.reset_index(drop=True), schema=schema, preserve_index=False)
    return table.replace_schema_metadata(schema.metadata)


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


def _check_geometry(geo_meta, path: str) -> None:
    """InputError for a GeoParquet geometry the point reader cannot read (not WKB)."""
    if geo_meta is None:
        return
    spec = geo_meta.get("columns", {}).get(geo_meta["primary_column"], {})
    if spec.get("encoding", "WKB").upper() != "WKB":
        raise InputError(f"{Path(path).name}: geometry encoding {spec['encoding']!r}; --engine dask reads WKB")
