"""The real Flask app over the real demo database."""

import re

import pytest
import sqlalchemy as sa

from gridmap.store import db


@pytest.fixture(scope="module")
def micro_count(demo_url):
    """Micro-grids of the demo city: as many as the partitioner made of its courtyards."""
    with db.engine(demo_url).connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM grid WHERE level = 'micro' AND valid_to IS NULL")).scalar()


def test_map_page_uses_only_local_assets(demo_client):
    res = demo_client.get("/")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/leaflet/leaflet.js" in urls and "/static/vendor/leaflet/leaflet.css" in urls
    assert "/static/vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js" in urls
    assert "/static/vendor/markercluster/leaflet.markercluster.js" in urls
    assert not [u for u in urls if "//" in u]
    assert not re.search(r"https?://(?!www\.w3\.org)", html.replace("http-equiv", ""))
    for url in urls:
        assert demo_client.get(url).status_code == 200, url
    for level in ("district", "street", "community", "courtyard", "micro", "special"):
        assert f"/tiles/{level}/{{z}}/{{x}}/{{y}}.pbf" in html
    for layer in ("risk-red", "risk-yellow", "risk-blue", "shade-micro", "buildings"):
        assert f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.pbf" in html


def test_grid_with_chain(demo_client, demo_viewer):
    res = demo_client.get("/api/v1/grids/410104006010001", headers=demo_viewer)  # people: a viewer token
    assert res.status_code == 200
    feature = res.get_json()
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "MultiPolygon"
    props = feature["properties"]
    assert [c["level"] for c in props["chain"]] == ["district", "street", "community", "courtyard"]
    assert [c["name"] for c in props["chain"][:3]] == ["管城回族区", "二里岗街道", "宇通花园社区"]
    assert props["children"] >= 1
    # its people (a viewer token): names, phones masked below dispatcher (web/privacy.py)
    assert props["people"] and all(p["name"] and "****" in (p["phone"] or "****") for p in props["people"])
    lon, lat = feature["geometry"]["coordinates"][0][0][0]
    assert 113.6 < lon < 113.9 and 34.6 < lat < 34.9


def test_unknown_grid_is_404_json(demo_client):
    res = demo_client.get("/api/v1/grids/999")
    assert res.status_code == 404
    assert res.get_json()["error"] == {"code": "not_found", "message": "no grid with code '999'"}


@pytest.mark.parametrize(
    "query, message",
    [
        ("level=planet", "unknown level 'planet'"),
        ("", "level is required"),
        ("level=street&bbox=1,2,3", "bbox must be"),
        ("level=street&simplify_m=x", "simplify_m must be a number"),
    ],
)
def test_level_collection_bad_input(demo_client, query, message):
    res = demo_client.get(f"/api/v1/grids?{query}")
    assert res.status_code == 400 and message in res.get_json()["error"]["message"]


def test_level_collection_and_bbox(demo_client, micro_count):
    streets = demo_client.get("/api/v1/grids?level=street").get_json()
    assert len(streets["features"]) == 14
    part = demo_client.get("/api/v1/grids?level=micro&bbox=113.70,34.70,113.72,34.72").get_json()
    everything = demo_client.get("/api/v1/grids?level=micro").get_json()
    assert 0 < len(part["features"]) < len(everything["features"]) == micro_count


def test_bad_date_is_400(demo_client):
    res = demo_client.get("/api/v1/grids/410104?at=yesterday")
    assert res.status_code == 400 and "not an ISO date" in res.get_json()["error"]["message"]
    assert demo_client.get("/api/v1/grids/410104?at=2001-01-01").status_code == 404


def test_stats(demo_client, demo_url, micro_count):
    import sqlalchemy as sa

    from gridmap.store import db

    body = demo_client.get("/api/v1/stats").get_json()
    with db.engine(demo_url).connect() as conn:
        buildings = conn.execute(sa.text("SELECT count(*) FROM building WHERE valid_to IS NULL")).scalar()
    assert body["levels"]["micro"]["grids"] == micro_count and body["buildings"] == buildings > 1000


def test_grid_panel(demo_client, demo_viewer, micro_count):
    res = demo_client.get("/api/v1/grids/410104006010001/panel", headers=demo_viewer)
    assert res.status_code == 200
    p = res.get_json()["properties"]
    assert [c["level"] for c in p["chain"]] == ["district", "street", "community", "courtyard"]
    assert p["households"] > 0 and all("****" in (m["phone"] or "****") for m in p["people"])
    risk = p["risk"]
    assert set(risk) >= {"red", "yellow", "blue", "overdue", "colour", "by_kind"}
    micro = demo_client.get("/api/v1/stats").get_json()
    assert micro["levels"]["micro"]["grids"] == micro_count
    assert p["reports"]["open"] >= len(p["reports"]["latest"])
    assert demo_client.get("/api/v1/grids/nope/panel").status_code == 404


def test_panel_counts_open_reports_below(demo_client, demo_url):
    import sqlalchemy as sa

    from gridmap.store import db

    with db.engine(demo_url).connect() as conn:
        code, n = conn.execute(
            sa.text("""
            SELECT g.parent_code, count(*) FROM report r JOIN grid g ON g.code = r.micro_code AND g.valid_to IS NULL
            WHERE r.status = 'open' GROUP BY g.parent_code ORDER BY count(*) DESC, g.parent_code LIMIT 1""")
        ).one()
    p = demo_client.get(f"/api/v1/grids/{code}/panel").get_json()["properties"]
    assert p["level"] == "courtyard" and p["reports"]["open"] == n


def test_search_by_code_name_and_address(demo_client):
    hits = demo_client.get("/api/v1/search?q=410104006010001").get_json()["results"]
    assert hits[0]["code"] == "410104006010001" and hits[0]["type"] == "grid"
    x0, y0, x1, y1 = hits[0]["bbox"]
    assert 113.6 < x0 < x1 < 113.9 and 34.6 < y0 < y1 < 34.9
    by_name = demo_client.get("/api/v1/search?q=宇通花园社区").get_json()["results"]
    assert by_name[0]["name"] == "宇通花园社区" and by_name[0]["level"] == "community"
    address = demo_client.get("/api/v1/search?q=二里岗街道宇通花园1号楼1单元").get_json()["results"]
    assert address and address[-1]["type"] == "address" and address[-1]["level"] == "micro"
    assert demo_client.get("/api/v1/search?q=").status_code == 400
    assert demo_client.get("/api/v1/search?q=zzzz-nothing").get_json()["results"] == []
    unknown = demo_client.get("/api/v1/search?q=宇通花园99号楼2单元").get_json()
    assert unknown["results"] == [] and "宇通花园" in unknown["address_error"]


def test_reports_in_a_box(demo_client):
    everything = demo_client.get("/api/v1/reports?limit=50000").get_json()
    assert everything["numberMatched"] == everything["numberReturned"] > 0
    f = everything["features"][0]
    lon, lat = f["geometry"]["coordinates"]
    box = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    part = demo_client.get(f"/api/v1/reports?bbox={box}").get_json()
    assert 0 < part["numberMatched"] <= everything["numberMatched"]
    assert f["id"] in {g["id"] for g in part["features"]}
    opened = demo_client.get("/api/v1/reports?status=open&limit=50000").get_json()
    assert all(g["properties"]["status"] == "open" for g in opened["features"])
    assert demo_client.get("/api/v1/reports?status=lost").status_code == 400
    assert demo_client.get("/api/v1/reports?limit=0").status_code == 400


def test_micro_household_histogram(demo_client, micro_count):
    h = demo_client.get("/api/v1/stats/micro-households?bin=5").get_json()
    assert h["count"] == micro_count == sum(b["grids"] for b in h["bins"])
    assert all(b["to"] - b["from"] == 4 for b in h["bins"])
    assert h["in_band"] <= h["count"] and h["band"] == [50, 70]
    assert demo_client.get("/api/v1/stats/micro-households?bin=x").status_code == 400
