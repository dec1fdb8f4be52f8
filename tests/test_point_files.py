"""Point columns read from WKB without a shapely object per row agree with shapely, and Parquet
written a chunk at a time (``--engine dask``'s parts) reads back as the rows written."""

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from gridmap.services import point_files


@pytest.mark.parametrize(
    "geoms",
    [
        [shapely.Point(113.7, 34.75), shapely.Point(-1.5, 2.25)],
        [shapely.Point(113.7, 34.75), None, shapely.LineString([(0, 0), (1, 1)])],
        [shapely.Point(1, 2), shapely.Point(1, 2, 3)],  # 3D: not 21 bytes, read by shapely
        [shapely.Point(1, 2), shapely.from_wkt("POINT EMPTY")],
    ],
)
@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_wkb_points_agree_with_shapely(geoms, kind):
    wkb = pa.array([None if g is None else shapely.to_wkb(g, byte_order=1) for g in geoms], type=kind)
    x, y = point_files._wkb_points(pa.chunked_array([wkb]))
    for g, a, b in zip(geoms, x, y):
        if g is None or g.geom_type != "Point" or g.is_empty:
            assert np.isnan(a) and np.isnan(b)
        else:
            assert (a, b) == (g.x, g.y)


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_wkb_points_from_a_sliced_arrow_buffer(kind):
    pts = [shapely.Point(113.7, 34.75), shapely.Point(-1.5, 2.25), shapely.Point(0.1, 0.2)]
    arr = pa.array([shapely.to_wkb(p, byte_order=1) for p in pts], type=kind).slice(1)
    x, y = point_files._wkb_points(arr)
    assert list(x) == [-1.5, 0.1] and list(y) == [2.25, 0.2]
    big_endian = pa.array([shapely.to_wkb(pts[0], byte_order=0)], type=kind)
    assert point_files._wkb_points(big_endian)[0][0] == 113.7


def test_parquet_written_a_chunk_at_a_time_keeps_rows_dictionaries_and_geoparquet(tmp_path):
    gdf = gpd.GeoDataFrame({"id": ["a", "b", "c"]}, geometry=gpd.points_from_xy([1, 2, 3], [4, 5, 6]), crs=4326)
    gdf.to_parquet(tmp_path / "in.parquet")
    table = pq.read_table(tmp_path / "in.parquet")
    geo_meta = point_files.geo_metadata(table)

    def chunk(rows, labels):
        part = table.slice(rows[0], len(rows))
        codes = pa.DictionaryArray.from_arrays(pa.array([0] * len(rows), type=pa.int32()), pa.array(labels))
        return part.append_column("special_codes", codes)

    tables = [chunk([0, 1], ["X"]), chunk([2], ["Y"])]  # a different dictionary in each chunk
    point_files.write_parquet(iter(tables), tmp_path / "out.parquet", geo_meta)
    assert pq.ParquetFile(tmp_path / "out.parquet").num_row_groups == 2
    back = gpd.read_parquet(tmp_path / "out.parquet")
    assert list(back["id"]) == ["a", "b", "c"] and list(back["special_codes"].astype(str)) == ["X", "X", "Y"]
    assert back.crs.to_epsg() == 4326 and back.geometry[2].equals(shapely.Point(3, 6))
