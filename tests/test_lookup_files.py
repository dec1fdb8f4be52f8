"""Issue #16: plain Parquet, CSV and Excel in and out of ``gridmap assign``; columnar batch answers."""

import io
import stat

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_lookup import Y1, lonlat

from gridmap.services import locator as lookups

import cityfactory as cf

ROWS = [lonlat(350, 350), lonlat(2500, 3500), (float("nan"), 34.7), lonlat(-800, 100), (34.75, 113.7)]
EXPECTED_STATUS = ["placed", "placed", "bad", "outside", "bad"]


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    return lookups.Locator(engine)


def points_frame():
    # ids with leading zeros: a text column must come back as text, not as a number
    return pd.DataFrame(
        {"id": ["001", "002", "003", "004", "005"], "lon": [r[0] for r in ROWS], "lat": [r[1] for r in ROWS]}
    )


def read_back(path):
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    if path.suffix == ".xlsx":
        return pd.read_excel(path, dtype=object)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.mark.parametrize(
    "src_suffix, dst_suffix",
    [(".parquet", ".parquet"), (".csv", ".csv"), (".xlsx", ".xlsx"), (".parquet", ".csv"), (".csv", ".parquet")],
)
def test_plain_files_in_and_out(city, cli, tmp_path, src_suffix, dst_suffix):
    frame = points_frame()
    src = tmp_path / f"pts{src_suffix}"
    if src_suffix == ".parquet":
        frame.to_parquet(src, index=False)  # plain Parquet: no geo metadata, no geometry column
        assert b"geo" not in (pq.read_schema(src).metadata or {})
    elif src_suffix == ".xlsx":
        frame.to_excel(src, index=False)
    else:
        frame.to_csv(src, index=False)
    dst = tmp_path / f"out{dst_suffix}"
    res = cli("assign", src, dst)
    assert res.exit_code == 0, res.output
    assert "5 rows: 2 placed, 1 outside, 2 bad" in res.output
    out = read_back(dst)
    assert [str(v) for v in out["id"]] == ["001", "002", "003", "004", "005"]
    assert list(out["status"]) == EXPECTED_STATUS
    assert list(out["micro_code"][:2]) == [Y1 + "01", "41019900200200102"]
    assert list(out["district_code"][:2]) == ["410199", "410199"]
    assert out["nearest_micro_code"][3] == Y1 + "01"
    assert float(out["nearest_distance_m"][3]) == pytest.approx(800, rel=0.01)
    assert "swapped" in out["error"][4]
    if dst_suffix == ".parquet":  # plain Parquet out: no geometry written
        schema = pq.read_schema(dst)
        assert b"geo" not in (schema.metadata or {}) and "geometry" not in schema.names


@pytest.mark.parametrize("dst_suffix", [".csv", ".parquet", ".xlsx", ".geojson"])
def test_outputs_get_the_permissions_of_a_plain_open(city, cli, tmp_path, dst_suffix):
    src = tmp_path / "pts.csv"
    points_frame().to_csv(src, index=False)  # 0666 less the umask, as any program writes a file
    dst = tmp_path / f"out{dst_suffix}"
    assert cli("assign", src, dst).exit_code == 0
    assert stat.S_IMODE(dst.stat().st_mode) == stat.S_IMODE(src.stat().st_mode)
    assert not list(tmp_path.glob(".gridmap-*"))  # no temporary file left behind


def test_geoparquet_points_read_from_wkb_and_geometry_kept(city, cli, tmp_path):
    frame = points_frame().fillna({"lon": 0.0})
    gdf = gpd.GeoDataFrame(frame[["id"]], geometry=gpd.points_from_xy(frame.lon, frame.lat), crs=4326)
    src, dst = tmp_path / "pts.parquet", tmp_path / "out.parquet"
    gdf.to_parquet(src)
    res = cli("assign", src, dst)
    assert res.exit_code == 0, res.output
    out = gpd.read_parquet(dst)  # still GeoParquet, geometry as it came in
    assert list(out["status"]) == ["placed", "placed", "bad", "outside", "bad"]
    assert out.geometry.equals(gdf.geometry)


def test_gbk_csv_and_bad_numbers_are_rows_not_failures(city, cli, tmp_path):
    src, dst = tmp_path / "gbk.csv", tmp_path / "out.csv"
    lon, lat = lonlat(350, 350)
    src.write_bytes(f"名称,lon,lat\n宇通花园,{lon},{lat}\n坏行,abc,34.7\n".encode("gb18030"))
    res = cli("assign", src, dst)
    assert res.exit_code == 0, res.output
    out = read_back(dst)
    assert list(out["名称"]) == ["宇通花园", "坏行"] and list(out["status"]) == ["placed", "bad"]
    assert out["error"][1] == "lon and lat must be numbers"


def test_excel_too_large_is_one_line(city, cli, tmp_path, monkeypatch):
    from gridmap.services import point_files

    monkeypatch.setattr(point_files, "EXCEL_ROWS", 3)  # the real limit needs a million rows
    src, dst = tmp_path / "pts.csv", tmp_path / "out.xlsx"
    points_frame().to_csv(src, index=False)
    res = cli("assign", src, dst)
    assert res.exit_code == 2 and "do not fit an Excel sheet" in res.output and not dst.exists()


def test_batch_columns_and_parquet(city, client):
    lon, lat = zip(*[lonlat(350, 350), lonlat(2500, 3500), lonlat(-500, 300), (34.75, 113.7)])
    body = {"lon": list(lon), "lat": list(lat), "id": ["a", "b", "c", "d"]}
    res = client.post("/api/v1/lookup", json=body)
    assert res.status_code == 200
    cols = res.get_json()["columns"]
    assert cols["id"] == ["a", "b", "c", "d"]
    assert cols["micro_code"] == [Y1 + "01", "41019900200200102", None, None]
    assert cols["status"] == ["placed", "placed", "outside", "bad"]
    assert cols["special_codes"][0] == "410199001001S01"
    assert cols["nearest_micro_code"][2] == Y1 + "01" and cols["nearest_distance_m"][2] == pytest.approx(500, rel=0.01)
    assert "swapped" in cols["error"][3]
    # the same points as objects, answered as columns; and as Parquet
    points = [{"lon": a, "lat": b} for a, b in zip(lon, lat)]
    res = client.post("/api/v1/lookup?format=columns", json=points)
    assert res.get_json()["columns"]["micro_code"] == cols["micro_code"]
    res = client.post("/api/v1/lookup", json=body, headers={"Accept": "application/vnd.apache.parquet"})
    assert res.status_code == 200 and res.mimetype == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(res.data)).to_pandas()
    assert list(table["micro_code"].astype(object).where(table["micro_code"].notna(), None)) == cols["micro_code"]
    assert list(table["id"]) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"lon": [1, 2], "lat": [1]}, "same length"),
        ({"lon": [1], "lat": [1], "id": "x"}, "id must be a list"),
        ({"lon": [1], "lat": [1], "format": "xml"}, "format must be one of"),
        ({"lon": [1], "lat": [1], "colour": 1}, "colour"),
    ],
)
def test_batch_columns_bad_input_is_400(city, client, body, message):
    res = client.post("/api/v1/lookup", json=body)
    assert res.status_code == 400 and message in res.get_json()["error"]["message"]


def test_batch_columns_limit(city, client):
    n = lookups.MAX_BATCH + 1
    res = client.post("/api/v1/lookup", json={"lon": [113.7] * n, "lat": [34.75] * n})
    assert res.status_code == 413


def test_columns_bad_entries_are_rows(city, client):
    lon, lat = lonlat(350, 350)
    res = client.post("/api/v1/lookup", json={"lon": [lon, "x", True], "lat": [lat, 34.7, 34.7]})
    cols = res.get_json()["columns"]
    assert cols["status"] == ["placed", "bad", "bad"]
    assert cols["error"][1:] == ["lon and lat must be numbers"] * 2
    assert np.isnan(np.array(cols["nearest_distance_m"][1:], dtype=float)).all()
