"""OGC API – Features against the real app and PostGIS.

Part 1 (reads) on the demo city: landing page, conformance, collections with their extents, items
paged by ``next`` links until every current grid was seen exactly once, bbox, datetime, one item
with its ETag, clear 400/404s.  Part 4 (transactions) on the small test city (tests/cityfactory.py):
create, replace, patch, delete through the shared edit engine, with its rejections (422 naming the
gap), If-Match (412), roles (401/403), media types (415), OPTIONS and dry runs; history by datetime.
GDAL's OAPIF driver (bundled in pyogrio's wheel) lists and reads the collections from `gridmap serve`.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import box, mapping, shape

from gridmap import geo
from gridmap.domain.levels import ALL_LEVELS
from gridmap.services import boundary_edits as edits
from gridmap.store import db
from gridmap.web import ogc

import cityfactory as cf
from servers import serving

GEOJSON = "application/geo+json"
Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"
COMMUNITY = "410199001001"
SCHOOL = "410199001001S01"


def ll(geom):
    return mapping(geo.from_local([geom])[0])


def rel(body: dict, name: str) -> dict | None:
    return next((link for link in body["links"] if link["rel"] == name), None)


def path_of(href: str) -> str:
    parts = urlsplit(href)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def current(url: str, sql: str, **params):
    with db.engine(url).connect() as conn:
        return conn.execute(sa.text(sql), params).all()


# --- Part 1 on the demo city ---------------------------------------------------------------------


def test_landing_conformance_and_api(demo_client):
    res = demo_client.get("/ogc")
    assert res.status_code == 200 and res.mimetype == "application/json"
    links = {link["rel"]: link for link in res.get_json()["links"]}
    assert set(links) >= {"self", "service-desc", "conformance", "data"}
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    api = demo_client.get(path_of(links["service-desc"]["href"]))
    assert api.status_code == 200 and api.mimetype == "application/vnd.oai.openapi+json"
    assert api.get_json()["openapi"].startswith("3.0")
    assert "/ogc/collections/{collectionId}/items" in api.get_json()["paths"]
    conf = demo_client.get(path_of(links["conformance"]["href"])).get_json()["conformsTo"]
    for uri in (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
        "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    ):
        assert uri in conf
    # f=json and f=html both answer JSON; other formats are a 400 naming f
    assert demo_client.get("/ogc/?f=html").get_json()["title"] == "gridmap"
    bad = demo_client.get("/ogc/conformance?f=xml")
    assert bad.status_code == 400 and "f must be json" in bad.get_json()["error"]["message"]


def test_collections_one_per_level_with_extents(demo_client, demo_url):
    body = demo_client.get("/ogc/collections").get_json()
    assert [c["id"] for c in body["collections"]] == list(ALL_LEVELS)
    rows = current(
        demo_url,
        "SELECT level, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT level, ST_Extent(geom) e FROM grid WHERE valid_to IS NULL GROUP BY level) s",
    )
    for level, *bbox in rows:
        c = next(c for c in body["collections"] if c["id"] == level)
        assert c["itemType"] == "feature" and c["crs"] == [ogc.CRS84]
        assert c["extent"]["spatial"]["bbox"][0] == pytest.approx(bbox, abs=1e-6)
        start, end = c["extent"]["temporal"]["interval"][0]
        assert start.endswith("+08:00") and end is None  # current versions: open-ended; office zone (GRIDMAP_TZ)
        items = rel(c, "items")
        assert items["type"] == GEOJSON and path_of(items["href"]) == f"/ogc/collections/{level}/items"
    one = demo_client.get("/ogc/collections/street")
    assert one.status_code == 200 and one.get_json()["id"] == "street"
    missing = demo_client.get("/ogc/collections/building")
    assert missing.status_code == 404 and "no collection 'building'" in missing.get_json()["error"]["message"]


def test_items_page_through_every_current_grid_once(demo_client, demo_url):
    codes = {c for (c,) in current(demo_url, "SELECT code FROM grid WHERE level = 'micro' AND valid_to IS NULL")}
    assert len(codes) > 1000
    url, seen, pages = "/ogc/collections/micro/items?limit=500", [], 0
    while url:
        res = demo_client.get(url)
        assert res.status_code == 200 and res.mimetype == GEOJSON
        body = res.get_json()
        assert body["numberMatched"] == len(codes) and body["numberReturned"] == len(body["features"])
        assert body["timeStamp"].endswith("+08:00")  # the office zone (GRIDMAP_TZ)
        assert (rel(body, "prev") is not None) == (pages > 0)
        seen += [f["id"] for f in body["features"]]
        nxt = rel(body, "next")
        url = path_of(nxt["href"]) if nxt else None
        pages += 1
    assert pages == -(-len(codes) // 500) and len(seen) == len(set(seen)) and set(seen) == codes
    f = demo_client.get("/ogc/collections/micro/items?limit=1").get_json()["features"][0]
    assert set(f["properties"]) == {
        "code",
        "name",
        "level",
        "kind",
        "parent_code",
        "households",
        "population",
        "valid_from",
        "valid_to",
    }
    assert f["id"] == f["properties"]["code"] and f["geometry"]["type"] == "MultiPolygon"
    assert shapely.is_ccw(shape(f["geometry"]).geoms[0].exterior)  # RFC 7946: counter-clockwise shells
    # the default page is 100; a page past the end is empty, with no next link
    assert demo_client.get("/ogc/collections/micro/items").get_json()["numberReturned"] == 100
    end = demo_client.get(f"/ogc/collections/micro/items?offset={len(codes)}").get_json()
    assert end["features"] == [] and rel(end, "next") is None


def test_items_bbox(demo_client, demo_url):
    bbox = (113.70, 34.70, 113.72, 34.72)
    want = {
        c
        for (c,) in current(
            demo_url,
            "SELECT code FROM grid WHERE level = 'courtyard' AND valid_to IS NULL "
            "AND ST_Intersects(geom, ST_MakeEnvelope(113.70, 34.70, 113.72, 34.72, "
            "4326))",
        )
    }
    assert 0 < len(want)
    body = demo_client.get("/ogc/collections/courtyard/items?limit=10000&bbox=" + ",".join(map(str, bbox))).get_json()
    assert {f["id"] for f in body["features"]} == want and body["numberMatched"] == len(want)
    assert all(shape(f["geometry"]).intersects(box(*bbox)) for f in body["features"])
    # the 6-number form (with heights) gives the same
    six = demo_client.get("/ogc/collections/courtyard/items?limit=10000&bbox=113.70,34.70,0,113.72,34.72,100")
    assert {f["id"] for f in six.get_json()["features"]} == want


@pytest.mark.parametrize(
    "query, names",
    [
        ("bbox=1,2,3", "bbox must be 4 numbers"),
        ("bbox=113.8,34.7,113.7,34.8", "bbox: minlon 113.8 is east of maxlon 113.7"),
        ("bbox=113.7,95,113.8,96", "bbox must be in lon/lat degrees"),
        ("bbox=nan,34,113,35", "bbox must be 4 numbers"),
        ("limit=0", "limit must be between 1 and 10000"),
        ("limit=10001", "limit must be between 1 and 10000"),
        ("limit=ten", "limit must be a whole number"),
        ("offset=-1", "offset must be between 0"),
        ("datetime=yesterday", "datetime: 'yesterday' is not an RFC 3339"),
        ("datetime=2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", "ends before it starts"),
        ("datetime=a/b/c", "datetime: an interval has one '/'"),
        ("crs=http://www.opengis.net/def/crs/EPSG/0/3857", "crs must be http://www.opengis.net/def/crs/OGC/1.3/CRS84"),
        ("filter=name='x'", "unknown query parameter 'filter'"),
    ],
)
def test_items_bad_parameters_are_400_naming_them(demo_client, query, names):
    res = demo_client.get(f"/ogc/collections/street/items?{query}")
    assert res.status_code == 400
    assert names in res.get_json()["error"]["message"]


def test_one_item_with_its_etag(demo_client, demo_url):
    ((vid, code),) = current(
        demo_url, "SELECT id, code FROM grid WHERE level = 'street' AND valid_to IS NULL ORDER BY code LIMIT 1"
    )
    res = demo_client.get(f"/ogc/collections/street/items/{code}")
    assert res.status_code == 200 and res.mimetype == GEOJSON
    assert res.headers["ETag"] == edits.etag(vid) == f'"v{vid}"'
    body = res.get_json()
    assert body["id"] == code and body["properties"]["level"] == "street" and body["properties"]["valid_to"] is None
    assert path_of(rel(body, "collection")["href"]) == "/ogc/collections/street"
    # a code of another level is not in this collection; an unknown code neither
    wrong = demo_client.get(f"/ogc/collections/micro/items/{code}")
    assert wrong.status_code == 404 and f"no micro grid with code {code!r}" in wrong.get_json()["error"]["message"]
    assert demo_client.get("/ogc/collections/street/items/nope").status_code == 404
    interval = demo_client.get(f"/ogc/collections/street/items/{code}?datetime=2026-01-01T00:00:00Z/..")
    assert interval.status_code == 400 and "must be an instant" in interval.get_json()["error"]["message"]


# --- Part 4 and datetime on the small test city -----------------------------------------------------


def etag(client, level, code):
    res = client.get(f"/ogc/collections/{level}/items/{code}")
    assert res.status_code == 200, res.get_json()
    return res.headers["ETag"]


def validate_ok(cli):
    res = cli("validate", "--format", "json")
    problems = [p for p in json.loads(res.output)["problems"] if p["kind"] != "households_mismatch"]
    assert problems == [], problems


def test_create_a_special_grid(client, city, bearer, cli):
    shop = {
        "type": "Feature",
        "id": "410199001001S02",
        "geometry": ll(cf.rect(600, 600, 700, 700)),
        "properties": {"name": "测试菜市场", "parent_code": COMMUNITY, "kind": "market", "households": 0},
    }
    planner = bearer("planner")
    assert client.post("/ogc/collections/special/items", json=shop).status_code == 401
    assert client.post("/ogc/collections/special/items", json=shop, headers=bearer("viewer")).status_code == 403
    as_text = client.post(
        "/ogc/collections/special/items", data=json.dumps(shop), headers=planner, content_type="text/plain"
    )
    assert as_text.status_code == 415 and "application/geo+json" in as_text.get_json()["error"]["message"]
    dry = client.post("/ogc/collections/special/items?dry_run=true", json=shop, headers=planner)
    assert dry.status_code == 200 and dry.get_json()["dry_run"] is True and dry.get_json()["opened"] == [shop["id"]]
    assert client.get(f"/ogc/collections/special/items/{shop['id']}").status_code == 404  # a dry run writes nothing
    res = client.post("/ogc/collections/special/items", data=json.dumps(shop), headers=planner, content_type=GEOJSON)
    assert res.status_code == 201, res.get_json()
    assert path_of(res.headers["Location"]) == f"/ogc/collections/special/items/{shop['id']}"
    got = client.get(path_of(res.headers["Location"]))
    assert got.headers["ETag"] == res.headers["ETag"]
    assert got.get_json()["properties"]["kind"] == "market" and got.get_json()["properties"]["parent_code"] == COMMUNITY
    assert shape(got.get_json()["geometry"]).hausdorff_distance(shape(shop["geometry"])) < 1e-7
    # the same code again is refused; so is a special grid outside its community (the engine's check)
    again = client.post("/ogc/collections/special/items", json=shop, headers=planner)
    assert again.status_code == 409 and "never reused" in again.get_json()["error"]["message"]
    outside = {**shop, "id": "410199001001S03", "geometry": ll(cf.rect(1900, 1900, 2100, 2100))}
    res = client.post("/ogc/collections/special/items", json=outside, headers=planner)
    assert res.status_code == 422 and res.get_json()["error"]["code"] == "edit_rejected"
    # a feature for another level, or without geometry, is a 400 naming it
    res = client.post(
        "/ogc/collections/special/items",
        headers=planner,
        json={**shop, "id": "410199001001S04", "properties": {**shop["properties"], "level": "micro"}},
    )
    assert res.status_code == 400 and "properties.level 'micro'" in res.get_json()["error"]["message"]
    res = client.post("/ogc/collections/special/items", headers=planner, json={**shop, "geometry": None})
    assert res.status_code == 400 and "geometry is required" in res.get_json()["error"]["message"]
    validate_ok(cli)


def test_create_overlapping_a_tiling_level_is_rejected(client, city, bearer):
    new = {
        "type": "Feature",
        "geometry": ll(cf.rect(100, 100, 300, 300)),
        "properties": {"code": Y1 + "03", "name": "新网格", "parent_code": Y1},
    }
    res = client.post("/ogc/collections/micro/items", json=new, headers=bearer("planner"))
    assert res.status_code == 422
    assert any(p["kind"] == "overlap" for p in res.get_json()["error"]["detail"]["problems"])


def test_replace_patch_and_history(client, city, bearer, cli):
    planner = bearer("planner")
    before = client.get(f"/ogc/collections/micro/items/{M1}").get_json()
    v1 = etag(client, "micro", M1)
    smaller = {
        "type": "Feature",
        "id": M1,
        "geometry": ll(cf.rect(0, 0, 1000, 900)),
        "properties": before["properties"],
    }  # what QGIS sends back: every property, unchanged
    gap = client.put(f"/ogc/collections/micro/items/{M1}", json=smaller, headers={**planner, "If-Match": v1})
    assert gap.status_code == 422 and "not covered by any of its children" in gap.get_json()["error"]["message"]
    assert any(p["kind"] == "gap" for p in gap.get_json()["error"]["detail"]["problems"])
    res = client.put(
        f"/ogc/collections/micro/items/{M1}?gap_to={M2}&reason=道路调整",
        json=smaller,
        headers={**planner, "If-Match": v1},
    )
    assert res.status_code == 200, res.get_json()
    v2 = res.headers["ETag"]
    assert v2 != v1 and etag(client, "micro", M1) == v2
    m2 = client.get(f"/ogc/collections/micro/items/{M2}").get_json()
    assert shape(m2["geometry"]).area == pytest.approx(shape(ll(cf.rect(0, 900, 1000, 2000))).area, rel=1e-4)
    # the stale version is refused with 412 and the current ETag
    stale = client.put(f"/ogc/collections/micro/items/{M1}", json=smaller, headers={**planner, "If-Match": v1})
    assert stale.status_code == 412 and v2 in stale.get_json()["error"]["message"]
    # changing a fixed property is a 400 naming it
    moved = client.put(
        f"/ogc/collections/micro/items/{M1}",
        headers=planner,
        json={**smaller, "properties": {**smaller["properties"], "parent_code": "410199001001002"}},
    )
    assert moved.status_code == 400 and "parent_code cannot change" in moved.get_json()["error"]["message"]
    # a merge patch of one property keeps the outline
    patch = client.patch(
        f"/ogc/collections/micro/items/{M1}",
        data=json.dumps({"properties": {"name": "一号网格"}}),
        content_type="application/merge-patch+json",
        headers={**planner, "If-Match": v2},
    )
    assert patch.status_code == 200, patch.get_json()
    after = patch.get_json()
    assert after["properties"]["name"] == "一号网格" and patch.headers["ETag"] not in (v1, v2)
    assert shape(after["geometry"]).hausdorff_distance(shape(res.get_json()["geometry"])) < 1e-9
    bad = client.patch(f"/ogc/collections/micro/items/{M1}", json={"properties": {"households": -3}}, headers=planner)
    assert bad.status_code == 400 and "households" in bad.get_json()["error"]["message"]
    validate_ok(cli)
    # history: three versions of M1, each found by datetime; an interval gives every overlapping one
    rows = current(
        str(city.url.render_as_string(hide_password=False)),
        "SELECT valid_from, valid_to, name FROM grid WHERE code = :c ORDER BY valid_from",
        c=M1,
    )
    assert len(rows) == 3
    first_at = rows[0][0].isoformat()
    old = client.get(f"/ogc/collections/micro/items/{M1}", query_string={"datetime": first_at})
    assert old.status_code == 200 and old.get_json()["properties"]["valid_to"] is not None
    assert shape(old.get_json()["geometry"]).hausdorff_distance(shape(before["geometry"])) < 1e-9
    every = client.get("/ogc/collections/micro/items", query_string={"datetime": f"{first_at}/.."}).get_json()
    assert [f["properties"]["valid_from"] for f in every["features"] if f["id"] == M1] == [
        r[0].isoformat() for r in rows
    ]
    at_first = client.get("/ogc/collections/micro/items", query_string={"datetime": first_at}).get_json()
    assert [f for f in at_first["features"] if f["id"] == M1][0]["properties"]["name"] == rows[0][2]
    now = client.get("/ogc/collections/micro/items").get_json()
    assert [f["properties"]["name"] for f in now["features"] if f["id"] == M1] == ["一号网格"]


def test_delete(client, city, bearer, cli):
    planner = bearer("planner")
    rejected = client.delete(f"/ogc/collections/micro/items/{M1}", headers=planner)
    assert rejected.status_code == 422 and rejected.get_json()["error"]["code"] == "edit_rejected"
    assert any(p["kind"] == "gap" for p in rejected.get_json()["error"]["detail"]["problems"])
    v = etag(client, "micro", M1)
    dry = client.delete(f"/ogc/collections/micro/items/{M1}?gap_to={M2}&dry_run=true", headers=planner)
    assert dry.status_code == 200 and dry.get_json()["closed"] == [M1, M2]
    assert etag(client, "micro", M1) == v
    res = client.delete(f"/ogc/collections/micro/items/{M1}?gap_to={M2}", headers={**planner, "If-Match": v})
    assert res.status_code == 204 and res.data == b""
    assert client.get(f"/ogc/collections/micro/items/{M1}").status_code == 404
    assert client.delete(f"/ogc/collections/micro/items/{M1}", headers=planner).status_code == 404
    # a special grid does not tile anything: it goes without a taker
    assert client.delete(f"/ogc/collections/special/items/{SCHOOL}", headers=planner).status_code == 204
    validate_ok(cli)


def test_options_allow_what_the_caller_may_do(client, city, bearer):
    anon = client.options("/ogc/collections/micro/items")
    assert anon.status_code == 204 and anon.headers["Allow"] == "GET, HEAD, OPTIONS"
    planner = bearer("planner")
    items = client.options("/ogc/collections/micro/items", headers=planner)
    assert set(items.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    one = client.options(f"/ogc/collections/micro/items/{M1}", headers=planner)
    assert set(one.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}
    viewer = client.options(f"/ogc/collections/micro/items/{M1}", headers=bearer("viewer"))
    assert viewer.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert client.options("/ogc/collections/nope/items").status_code == 404


# --- GDAL's OAPIF driver against `gridmap serve` -----------------------------------------------------


@pytest.fixture(scope="module")
def served(demo_url):
    with serving(demo_url, "--workers", "1", "--no-warm") as (base, _port):
        yield f"OAPIF:{base}/ogc"


def test_gdal_oapif_lists_and_reads_the_collections(served, demo_url):
    assert "OAPIF" in pyogrio.list_drivers()
    layers = pyogrio.list_layers(served)
    assert [name for name, _ in layers] == list(ALL_LEVELS)
    assert {kind for _, kind in layers} == {"MultiPolygon"}
    want = dict(current(demo_url, "SELECT code, households FROM grid WHERE level = 'street' AND valid_to IS NULL"))
    # a page size of 5 makes GDAL follow our next links through 3 pages
    streets = pyogrio.read_dataframe(served, layer="street", PAGE_SIZE=5)
    assert len(streets) == len(want) and dict(zip(streets["code"], streets["households"])) == want
    assert (streets["id"] == streets["code"]).all() and set(streets["level"]) == {"street"}
    for column in ("name", "parent_code", "population", "valid_from"):
        assert column in streets.columns
    micro = pyogrio.read_dataframe(served, layer="micro", columns=["code"])
    n_micro = current(demo_url, "SELECT count(*) FROM grid WHERE level = 'micro' AND valid_to IS NULL")[0][0]
    assert len(micro) == n_micro and micro["code"].is_unique
    info = pyogrio.read_info(served, layer="street")
    assert info["features"] == len(want) and info["layer_metadata"]["TITLE"] == "街道/乡镇 street"
    # a spatial filter goes to the server as bbox
    bbox = (113.70, 34.70, 113.72, 34.72)
    inside = pyogrio.read_dataframe(served, layer="courtyard", bbox=bbox, columns=["code"])
    n = current(
        demo_url,
        "SELECT count(*) FROM grid WHERE level = 'courtyard' AND valid_to IS NULL AND "
        "ST_Intersects(geom, ST_MakeEnvelope(113.70, 34.70, 113.72, 34.72, 4326))",
    )[0][0]
    assert 0 < len(inside) == n
