"""The real Flask app over the real demo database."""
import re

import pytest


def test_map_page_uses_only_local_assets(demo_client):
    res = demo_client.get("/")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/leaflet/leaflet.js" in urls and "/static/vendor/leaflet/leaflet.css" in urls
    assert not [u for u in urls if "//" in u]
    assert not re.search(r"https?://(?!www\.w3\.org)", html.replace('http-equiv', ''))
    for url in urls:
        assert demo_client.get(url).status_code == 200, url
    for level in ("district", "street", "community", "courtyard", "micro", "special"):
        assert f"/api/v1/grids?level={level}" in html


def test_grid_with_chain(demo_client):
    res = demo_client.get("/api/v1/grids/410104006010001")
    assert res.status_code == 200
    feature = res.get_json()
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "MultiPolygon"
    props = feature["properties"]
    assert [c["level"] for c in props["chain"]] == ["district", "street", "community", "courtyard"]
    assert [c["name"] for c in props["chain"][:3]] == ["管城回族区", "二里岗街道", "宇通花园社区"]
    assert props["people"][0]["role"] == "grid_leader" and props["children"] >= 1
    lon, lat = feature["geometry"]["coordinates"][0][0][0]
    assert 113.6 < lon < 113.9 and 34.6 < lat < 34.9


def test_unknown_grid_is_404_json(demo_client):
    res = demo_client.get("/api/v1/grids/999")
    assert res.status_code == 404
    assert res.get_json()["error"] == {"code": "not_found", "message": "no grid with code '999'"}


@pytest.mark.parametrize("query, message", [
    ("level=planet", "unknown level 'planet'"), ("", "level is required"),
    ("level=street&bbox=1,2,3", "bbox must be"), ("level=street&simplify_m=x", "simplify_m must be a number")])
def test_level_collection_bad_input(demo_client, query, message):
    res = demo_client.get(f"/api/v1/grids?{query}")
    assert res.status_code == 400 and message in res.get_json()["error"]["message"]


def test_level_collection_and_bbox(demo_client):
    streets = demo_client.get("/api/v1/grids?level=street").get_json()
    assert len(streets["features"]) == 14
    part = demo_client.get("/api/v1/grids?level=micro&bbox=113.70,34.70,113.72,34.72").get_json()
    everything = demo_client.get("/api/v1/grids?level=micro").get_json()
    assert 0 < len(part["features"]) < len(everything["features"]) == 1878


def test_bad_date_is_400(demo_client):
    res = demo_client.get("/api/v1/grids/410104?at=yesterday")
    assert res.status_code == 400 and "not an ISO date" in res.get_json()["error"]["message"]
    assert demo_client.get("/api/v1/grids/410104?at=2001-01-01").status_code == 404


def test_stats(demo_client):
    body = demo_client.get("/api/v1/stats").get_json()
    assert body["levels"]["micro"]["grids"] == 1878 and body["buildings"] > 1878
