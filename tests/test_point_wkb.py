"""WKB point columns read and written without shapely objects agree with shapely and geopandas."""

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pytest
import shapely

from gridmap.services import point_wkb


def test_point_array_is_shapelys_wkb_and_null_where_not_finite():
    x = np.array([113.7, np.nan, -0.5, 1e-300])
    y = np.array([34.75, 34.0, np.inf, 2.0])
    got = point_wkb.point_array(x, y).to_pylist()
    assert got[0] == shapely.to_wkb(shapely.Point(113.7, 34.75), byte_order=1)
    assert got[1] is None and got[2] is None
    assert shapely.from_wkb(got[3]).equals(shapely.Point(1e-300, 2.0))


@pytest.mark.parametrize(
    "geoms",
    [
        [shapely.Point(113.7, 34.75), shapely.Point(-1.5, 2.25)],
        [shapely.Point(113.7, 34.75), None, shapely.LineString([(0, 0), (1, 1)])],
        [shapely.Point(1, 2), shapely.Point(1, 2, 3)],  # 3D: not 21 bytes, read by shapely
    ],
)
def test_xy_agrees_with_shapely(geoms):
    wkb = [None if g is None else shapely.to_wkb(g, byte_order=1) for g in geoms]
    x, y = point_wkb.xy(wkb)
    for g, a, b in zip(geoms, x, y):
        if g is None or g.geom_type != "Point":
            assert np.isnan(a) and np.isnan(b)
        else:
            assert (a, b) == (g.x, g.y)


def test_geoparquet_reads_back_in_geopandas(tmp_path):
    frame = gpd.pd.DataFrame({"id": ["a", "b", "c"]})
    x, y = np.array([113.7, np.nan, 113.8]), np.array([34.7, 1.0, 34.8])
    point_wkb.write_geoparquet([(frame, x, y)], "EPSG:4326", tmp_path / "p.parquet")
    gdf = gpd.read_parquet(tmp_path / "p.parquet")
    assert gdf.crs.to_epsg() == 4326 and list(gdf["id"]) == ["a", "b", "c"]
    assert gdf.geometry[0].equals(shapely.Point(113.7, 34.7)) and gdf.geometry[1] is None


def test_xy_from_arrow_buffers_agrees_with_bytes():
    pts = [shapely.Point(113.7, 34.75), shapely.Point(-1.5, 2.25), shapely.Point(0.1, 0.2)]
    arr = pa.array([shapely.to_wkb(p, byte_order=1) for p in pts], type=pa.binary()).slice(1)
    x, y = point_wkb.xy(pa.chunked_array([arr]))
    assert list(x) == [-1.5, 0.1] and list(y) == [2.25, 0.2]
    with_null = pa.array([shapely.to_wkb(pts[0], byte_order=1), None], type=pa.binary())
    x, y = point_wkb.xy(with_null)
    assert x[0] == 113.7 and np.isnan(x[1])
