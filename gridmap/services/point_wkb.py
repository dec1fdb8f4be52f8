"""Point columns of GeoParquet as plain arrays, both ways, without a shapely object per row.

A 2D point in WKB is 21 bytes: byte order, type 1, x, y.  Decoding a million of them through
shapely builds a million geometry objects to read two numbers each (about 3 s here); encoding
them through a GeoDataFrame costs twice that.  These helpers read and write the bytes with
NumPy and Arrow directly; anything that is not a little-endian 2D point falls back to shapely.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import shapely

POINT_LE = b"\x01\x01\x00\x00\x00"  # little-endian, type 1 (Point)
SIZE = 21


def xy(wkb) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a WKB column (an Arrow binary array, or bytes objects); NaN where a value is
    missing, empty or not a point."""
    if isinstance(wkb, pa.ChunkedArray | pa.Array):
        found = _xy_arrow(wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb)
        if found is not None:
            return found
        wkb = wkb.to_numpy(zero_copy_only=False)
    values = np.asarray(wkb, dtype=object)
    try:
        joined = b"".join(values)  # TypeError on a missing value
    except TypeError:
        joined = b""
    if len(values) and len(joined) == SIZE * len(values):
        raw = np.frombuffer(joined, dtype=np.uint8).reshape(-1, SIZE)
        # every record a little-endian point: the lengths were all 21 (a shorter one would shift the next header)
        if (raw[:, :5] == np.frombuffer(POINT_LE, dtype=np.uint8)).all():
            coords = np.ascontiguousarray(raw[:, 5:]).view("<f8")
            return coords[:, 0].copy(), coords[:, 1].copy()
    geoms = shapely.from_wkb(values)
    points = shapely.get_type_id(geoms) == 0
    return np.where(points, shapely.get_x(geoms), np.nan), np.where(points, shapely.get_y(geoms), np.nan)


def _xy_arrow(arr: pa.Array):
    """(x, y) read from the Arrow buffers when every value is a little-endian 2D point, else None."""
    if arr.null_count or not len(arr) or not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_binary(arr.type) else np.int32)
    offsets = offsets[arr.offset : arr.offset + len(arr) + 1]
    if not (np.diff(offsets) == SIZE).all():
        return None
    raw = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, SIZE)
    if not (raw[:, :5] == np.frombuffer(POINT_LE, dtype=np.uint8)).all():
        return None
    coords = np.ascontiguousarray(raw[:, 5:]).view("<f8")
    return coords[:, 0].copy(), coords[:, 1].copy()


def point_array(x, y) -> pa.Array:
    """WKB points as an Arrow binary array; null where a coordinate is not finite."""
    x = np.asarray(x, dtype="<f8")
    y = np.asarray(y, dtype="<f8")
    n = len(x)
    finite = np.isfinite(x) & np.isfinite(y)
    rec = np.zeros((n, SIZE), dtype=np.uint8)
    rec[:, :5] = np.frombuffer(POINT_LE, dtype=np.uint8)
    rec[:, 5:13] = np.where(finite, x, 0).view(np.uint8).reshape(n, 8)
    rec[:, 13:] = np.where(finite, y, 0).view(np.uint8).reshape(n, 8)
    lengths = np.where(finite, SIZE, 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = rec[finite].tobytes()
    validity = pa.array(finite).buffers()[1] if not finite.all() else None
    return pa.Array.from_buffers(
        pa.large_binary(), n, [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)], null_count=-1
    )


def write_geoparquet(chunks, crs: str | None, path) -> None:
    """Frames with a WKB point ``geometry`` column as GeoParquet 1.0 (what geopandas reads), one row
    group per chunk of ``(frame, x, y)``, so a writer holds one chunk at a time."""
    column = {"encoding": "WKB", "geometry_types": ["Point"]}
    column["crs"] = pyproj.CRS.from_user_input(crs).to_json_dict() if crs else None
    geo = json.dumps({"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": column}}).encode()
    writer = None
    try:
        for frame, x, y in chunks:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            geometry = point_array(x, y)
            table = table.append_column(pa.field("geometry", geometry.type), geometry)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema.with_metadata({**table.schema.metadata, b"geo": geo}))
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
