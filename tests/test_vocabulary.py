"""One vocabulary for lookups (issue #15 item 13): the CLI and the API name a bad point the same way;
``POST /api/v1/lookup`` takes the address ``GET`` takes; a batch echoes its input as given."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from gridmap import geo
from gridmap.cli import main

ADDRESS = "二里岗街道宇通花园1号楼1单元"


def test_cli_and_api_say_the_same_about_a_bad_point(demo_client, demo_url, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"lon": ["abc", "113.68"], "lat": ["34.75", ""]}).to_csv(src, index=False)
    res = CliRunner().invoke(main, ["assign", str(src), str(out)], env={"GRIDMAP_DATABASE_URL": demo_url})
    assert res.exit_code == 0, res.output
    cli_errors = pd.read_csv(out, dtype=str)["error"].tolist()
    api = demo_client.post("/api/v1/lookup", json=[{"lon": "abc", "lat": 34.75}, {"lon": 113.68, "lat": None}])
    api_errors = [r["error"] for r in api.get_json()["results"]]
    assert cli_errors == api_errors == ["lon and lat must be numbers"] * 2


def test_post_takes_the_address_get_takes(demo_client):
    got = demo_client.get("/api/v1/lookup", query_string={"address": ADDRESS}).get_json()
    one = demo_client.post("/api/v1/lookup", json={"address": ADDRESS})
    assert one.status_code == 200, one.get_json()
    batch = demo_client.post("/api/v1/lookup", json=[{"address": ADDRESS, "id": "a"}, {"address": "没有这个小区1号楼"}])
    results = [one.get_json()["results"][0], *batch.get_json()["results"]]
    assert [r["chain"] for r in results[:2]] == [got["chain"]] * 2
    assert results[0]["input"] == {"address": ADDRESS} and results[1]["id"] == "a"
    assert "error" in results[2] and results[2]["input"] == {"address": "没有这个小区1号楼"}


def test_a_gcj02_batch_echoes_its_input_and_rounds_wgs84(demo_client):
    wgs = (113.6854321, 34.7456789)
    lon, lat = (float(v[0]) for v in geo.transform_xy([wgs[0]], [wgs[1]], "EPSG:4326", "gcj02"))
    res = demo_client.post("/api/v1/lookup", json={"points": [{"lon": lon, "lat": lat}], "crs": "gcj02"})
    answer = res.get_json()["results"][0]
    assert answer["input"] == {"lon": lon, "lat": lat, "crs": "gcj02"}
    assert len(repr(answer["lon"]).split(".")[1]) <= 7 and len(repr(answer["lat"]).split(".")[1]) <= 7
    assert abs(answer["lon"] - wgs[0]) < 1e-6 and abs(answer["lat"] - wgs[1]) < 1e-6
