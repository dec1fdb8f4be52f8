"""Point -> grid chain: boundaries, holes, multipolygons, outside points, every CRS, dates, staleness."""

import json
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import prcoords
import pytest
import shapely
from shapely.geometry import MultiPolygon

from gridmap.domain.lookup import GridIndex
from gridmap.services import locator as lookups
from gridmap.store import db
from gridmap.store import grids as store

import cityfactory as cf

Y1 = "410199001001001"  # courtyard x 0..1000, y 0..2000; micro 01 below y=1000, 02 above


def lonlat(x, y):
    """A point given in metres on the test city's plane, as lon/lat."""
    p = cf.geo.from_local([shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


@pytest.fixture
def city_locator(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    return lookups.Locator(engine)


def micro_at(locator, x, y, **kw):
    return locator.lookup(*lonlat(x, y), **kw).get("micro")


def test_chain_specials_and_people(city_locator, cli, tmp_path):
    people = tmp_path / "people.csv"
    people.write_text(f"grid_code,name,role,phone\n{Y1}01,王芳,grid_worker,13900000000\n")
    assert cli("import", people, "--level", "person").exit_code == 0
    body = city_locator.lookup(*lonlat(350, 350))
    assert body["inside"] and body["micro"] == Y1 + "01"
    assert [c["code"] for c in body["chain"]] == ["410199", "410199001", "410199001001", Y1, Y1 + "01"]
    assert body["specials"] == [{"code": "410199001001S01", "name": "测试小学"}]
    # the grid worker as stored; the web layer shows them per role (test_people, test_privacy)
    assert body["people"] == [{"name": "王芳", "role": "grid_worker", "phone": "13900000000"}]


@pytest.mark.parametrize(
    "x, y, expected",
    [
        (500, 1000, Y1 + "01"),  # shared edge of 01 and 02: lowest code
        (1000, 500, Y1 + "01"),  # edge between two courtyards: 410199001001001.. < ..002..
        (1000, 1000, Y1 + "01"),  # vertex shared by four micro-grids
        (2000, 2000, "41019900100100202"),  # street corner: four communities meet; lowest code wins
        (0, 0, Y1 + "01"),  # the city's outer corner: covers includes the boundary
    ],
)
def test_boundary_points_resolve_to_exactly_one_lowest_code(city_locator, engine, x, y, expected):
    assert micro_at(city_locator, x, y) == expected
    assert lookups.sql_lookup(engine, *lonlat(x, y))["micro"] == expected


def test_holes_and_multipolygons(engine, cli, tmp_path):
    city = cf.city()
    outer = cf.find(city, "micro", Y1 + "01")
    inner = cf.rect(400, 400, 600, 600)
    outer["geometry"] = cf.rect(0, 0, 1000, 1000).difference(inner)  # a ring around the hole
    island = cf.find(city, "micro", Y1 + "02")
    # 02 is the upper half plus the island in 01's hole: a multipolygon
    island["geometry"] = MultiPolygon([cf.rect(0, 1000, 1000, 2000), inner])
    cf.load(cli, city, tmp_path)
    locator = lookups.Locator(engine)
    assert micro_at(locator, 500, 500) == Y1 + "02"  # in the hole: the island
    assert micro_at(locator, 450, 400) == Y1 + "01"  # on the hole's edge: lowest code
    assert micro_at(locator, 200, 200) == Y1 + "01"
    assert micro_at(locator, 500, 1500) == Y1 + "02"


def test_outside_gives_nearest_and_distance(city_locator):
    body = city_locator.lookup(*lonlat(-500, 300))
    assert body["inside"] is False and body["chain"] == []
    assert body["nearest"]["code"] == Y1 + "01"
    assert body["nearest"]["distance_m"] == pytest.approx(500, rel=0.01)


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "cgcs2000", "EPSG:4547"])
def test_each_crs_gives_the_same_answer(city_locator, crs):
    lon, lat = lonlat(1500, 2500)
    if crs == "gcj02":
        lat2, lon2 = prcoords.wgs_gcj((lat, lon))
    elif crs == "bd09":
        lat2, lon2 = prcoords.wgs_bd((lat, lon))
    elif crs == "cgcs2000":
        lon2, lat2 = lon, lat
    else:
        x, y = cf.geo.transform_xy([lon], [lat], "EPSG:4326", "EPSG:4547")
        lon2, lat2 = float(x[0]), float(y[0])
    wgs = city_locator.lookup(lon, lat)
    other = city_locator.lookup(lon2, lat2, crs=crs)
    assert other["micro"] == wgs["micro"] == "41019900100200201"
    assert other["lon"] == pytest.approx(lon, abs=1e-6) and other["lat"] == pytest.approx(lat, abs=1e-6)


def test_raw_gcj02_point_without_crs_lands_hundreds_of_metres_off(city_locator):
    lon, lat = lonlat(1500, 2500)
    glat, glon = prcoords.wgs_gcj((lat, lon))
    assert city_locator.lookup(glon, glat)["micro"] != city_locator.lookup(glon, glat, crs="gcj02")["micro"]


def replace_micro(cli, tmp_path, rows, name="moved"):
    path = cf.write(rows, tmp_path, name)
    res = cli("import", path, "--level", "micro", "--replace")
    assert res.exit_code == 0, res.output


def test_at_date_and_index_sees_change_immediately(city_locator, cli, tmp_path):
    city = cf.city()
    before_any = city_locator.lookup(*lonlat(500, 1100))
    assert before_any["micro"] == Y1 + "02"
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    m1, m2 = cf.find(city, "micro", Y1 + "01"), cf.find(city, "micro", Y1 + "02")
    m1["geometry"], m2["geometry"] = cf.rect(0, 0, 1000, 1200), cf.rect(0, 1200, 1000, 2000)
    replace_micro(cli, tmp_path, [m1, m2])
    # the same Locator, no restart: the next lookup sees the new boundary
    assert city_locator.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01"
    assert city_locator.lookup(*lonlat(500, 1100), at=moment)["micro"] == Y1 + "02"
    res = cli("lookup", *lonlat(500, 1100), "--at", moment.isoformat())
    assert json.loads(res.output)["micro"] == Y1 + "02"


@pytest.mark.parametrize(
    "lon, lat, message",
    [
        ("nan", "34.7", "lon and lat must be numbers"),
        ("34.75", "113.70", "swapped lat/lon"),
        ("200", "34", "out of range"),
        ("2.35", "48.85", "outside China"),
        ("abc", "34", "lon must be a number"),
    ],
)
def test_bad_coordinates_are_400(client, lon, lat, message):
    res = client.get(f"/api/v1/lookup?lon={lon}&lat={lat}")
    assert res.status_code == 400 and message in res.get_json()["error"]["message"]


def test_http_lookup_and_batch(city_locator, client):
    lon, lat = lonlat(2500, 3500)
    res = client.get(f"/api/v1/lookup?lon={lon}&lat={lat}")
    assert res.status_code == 200 and res.get_json()["micro"] == "41019900200200102"
    points = [
        {"id": "a", "lon": lon, "lat": lat},
        {"id": "b", "lon": "x", "lat": 1},
        {"lon": 34.7, "lat": 113.7},
        {"lon": lonlat(-500, 0)[0], "lat": lonlat(-500, 0)[1]},
    ]
    res = client.post("/api/v1/lookup", json={"points": points})
    results = res.get_json()["results"]
    assert res.status_code == 200 and len(results) == 4
    assert results[0]["id"] == "a" and results[0]["micro"] == "41019900200200102"
    assert results[1] == {
        "id": "b",
        "error": "lon and lat must be numbers",
        "input": {"lon": "x", "lat": 1, "crs": "EPSG:4326"},
    }
    assert "swapped" in results[2]["error"]
    assert results[3]["inside"] is False and results[3]["nearest"]["distance_m"] > 400
    too_many = [{"lon": lon, "lat": lat}] * (lookups.MAX_BATCH + 1)
    res = client.post("/api/v1/lookup", json=too_many)
    assert res.status_code == 413 and res.get_json()["error"]["code"] == "payload_too_large"
    res = client.post("/api/v1/lookup", data="not json", content_type="text/plain")
    assert res.status_code == 400
    for scalar in ("3", '"text"', "null", "true"):
        res = client.post("/api/v1/lookup", data=scalar, content_type="application/json")
        assert res.status_code == 400 and "send JSON" in res.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"foo": 1},
        {"points": [{"lon": 113.7, "lat": 34.7}], "foo": 1},
        {"lon": 113.7, "lat": 34.7, "foo": 1},
        {"lon": [113.7], "lat": [34.7], "foo": 1},
    ],
)
def test_an_unknown_batch_field_lists_every_field_a_batch_takes(client, body):
    res = client.post("/api/v1/lookup", json=body)
    assert res.status_code == 400
    assert res.get_json()["error"]["message"] == (
        "unknown field 'foo' (known: address, at, crs, format, id, lat, lon, points)"
    )


@pytest.mark.parametrize("suffix", [".csv", ".geojson", ".gpkg", ".parquet"])
def test_assign_files_with_bad_rows(city_locator, cli, tmp_path, suffix):
    rows = [lonlat(350, 350), lonlat(2500, 3500), (float("nan"), 34.7), lonlat(-800, 100), (34.75, 113.7)]
    frame = pd.DataFrame({"report": list("abcde"), "lon": [r[0] for r in rows], "lat": [r[1] for r in rows]})
    src = tmp_path / f"reports{suffix}"
    if suffix == ".csv":
        frame.to_csv(src, index=False)
        args = []
    else:
        import geopandas as gpd

        gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.lon.fillna(0), frame.lat), crs=4326)
        gdf.to_parquet(src) if suffix == ".parquet" else gdf.to_file(src)
        args = ["--lon-col", "lon", "--lat-col", "lat"]
    dst = tmp_path / f"out{suffix}"
    res = cli("assign", src, dst, *args)
    assert res.exit_code == 0, res.output
    assert "5 rows: 2 placed, 1 outside, 2 bad" in res.output
    if suffix == ".csv":
        out = pd.read_csv(dst, dtype=str, keep_default_na=False)
    else:
        import geopandas as gpd

        out = gpd.read_parquet(dst) if suffix == ".parquet" else gpd.read_file(dst)
    assert list(out["report"]) == list("abcde")
    assert list(out["micro_code"][:2]) == [Y1 + "01", "41019900200200102"]
    assert list(out["status"]) == ["placed", "placed", "bad", "outside", "bad"]
    assert "swapped" in out["error"][4]
    assert out["nearest_micro_code"][3] == Y1 + "01"


def test_assign_refuses_unknown_format(city_locator, cli, tmp_path):
    src = tmp_path / "in.ods"
    src.write_text("x")
    res = cli("assign", src, tmp_path / "out.csv")
    assert res.exit_code == 2 and "unsupported file type '.ods'" in res.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--address-col", "addr", "--lon-col", "lon"], "give either --address-col or --lon-col/--lat-col, not both"),
        ([], "no such folder"),
    ],
)
def test_assign_refuses_bad_options_in_one_line(city_locator, cli, tmp_path, extra, message):
    src = tmp_path / "in.csv"
    src.write_text("lon,lat,addr\n113.7,34.75,x\n")
    dst = tmp_path / ("out.csv" if extra else "missing/out.csv")
    res = cli("assign", src, dst, *extra)
    assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1
    assert not dst.exists()


def test_assign_unreadable_csv_is_one_line(city_locator, cli, tmp_path):
    src = tmp_path / "empty.csv"
    src.write_text("")
    res = cli("assign", src, tmp_path / "out.csv")
    assert res.exit_code == 2 and "cannot read empty.csv" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cells_agree_with_exact_test_on_demo_city(demo_url):
    with db.engine(demo_url).connect() as conn:
        index = GridIndex(store.index_frame(conn), cell_m=40.0)
    x0, y0, x1, y1 = shapely.total_bounds(index.micro_geom)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(x0, x1, 200_000), rng.uniform(y0, y1, 200_000)
    # points on micro-grid vertices too: the hardest boundary cases
    verts = shapely.get_coordinates(index.micro_geom[:300])
    x, y = np.concatenate([x, verts[:, 0]]), np.concatenate([y, verts[:, 1]])
    found = index.locate(x, y)
    assert np.array_equal(found.micro, index._exact(x, y))
    assert 0.5 < index.stats()["pure_share"] < 1


def test_single_point_path_agrees_with_batch(demo_url):
    with db.engine(demo_url).connect() as conn:
        index = GridIndex(store.index_frame(conn))
    x0, y0, x1, y1 = shapely.total_bounds(index.micro_geom)
    rng = np.random.default_rng(9)
    x, y = rng.uniform(x0, x1, 3000), rng.uniform(y0, y1, 3000)
    verts = shapely.get_coordinates(index.micro_geom[:50])
    x, y = np.concatenate([x, verts[:, 0]]), np.concatenate([y, verts[:, 1]])
    batch = index.answers(x, y)
    assert [index.answer_one(a, b) for a, b in zip(x, y)] == batch


def test_date_before_any_grid_answers_outside(city_locator):
    body = city_locator.lookup(*lonlat(500, 500), at=datetime(2001, 1, 1, tzinfo=UTC))
    assert body["inside"] is False and body["nearest"] is None and body["chain"] == []


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_assign_reads_csv_saved_by_chinese_excel(city_locator, cli, tmp_path, encoding):
    """Excel on Chinese Windows saves CSV as GBK (or UTF-8 with a BOM): both are read."""
    lon, lat = lonlat(350, 350)
    src = tmp_path / "上报.csv"
    src.write_bytes(f"事项,lon,lat\n路灯不亮,{lon},{lat}\n".encode(encoding))
    res = cli("assign", src, tmp_path / "out.csv")
    assert res.exit_code == 0, res.output
    out = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert list(out["事项"]) == ["路灯不亮"] and list(out["micro_code"]) == [Y1 + "01"]
