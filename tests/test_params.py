"""Every request parameter is parsed by ``gridmap/web/params.py``: one behaviour per kind, the same
one-line 400 on every route that takes it (issue #11: three parsers disagreed on bboxes, booleans
and CRSs, and four routes checked unknown keys by hand)."""

from __future__ import annotations

import pytest

CODE = "410104006010001"  # a courtyard of the demo city

BBOX_ROUTES = [
    "/api/v1/grids?level=street&bbox={}",
    "/api/v1/reports?bbox={}",
    "/api/v1/risk/elements?bbox={}",
    "/ogc/collections/street/items?bbox={}",
]
BAD_BOXES = [
    ("1,2,3", "bbox must be 4 numbers minlon,minlat,maxlon,maxlat (or 6 with heights), got '1,2,3'"),
    ("nan,34,113,35", "bbox must be 4 numbers minlon,minlat,maxlon,maxlat (or 6 with heights), got 'nan,34,113,35'"),
    ("113,34,inf,35", "bbox must be 4 numbers minlon,minlat,maxlon,maxlat (or 6 with heights), got '113,34,inf,35'"),
    ("113.7,95,113.8,96", "bbox must be in lon/lat degrees (lon -180..180, lat -90..90), got '113.7,95,113.8,96'"),
    ("200,34,201,35", "bbox must be in lon/lat degrees (lon -180..180, lat -90..90), got '200,34,201,35'"),
    (
        "113.8,34.7,113.7,34.8",
        "bbox: minlon 113.8 is east of maxlon 113.7 (a bbox across the antimeridian is not supported)",
    ),
    ("113.7,34.8,113.8,34.7", "bbox: minlat 34.8 is above maxlat 34.7"),
]
CRS_ROUTES = [
    f"/api/v1/grids/{CODE}?crs={{}}",
    "/api/v1/search?q=宇通&crs={}",
    "/api/v1/reports?crs={}",
    "/tiles/micro/15/26865/13198.pbf?crs={}",
]
AT_ROUTES = [
    f"/api/v1/grids/{CODE}?at={{}}",
    "/api/v1/lookup?lon=113.68&lat=34.75&at={}",
    "/api/v1/risk/elements?at={}",
    "/api/v1/risk/summary?at={}",
    f"/api/v1/risk/grids/{CODE}?at={{}}",
    "/tiles/micro/15/26865/13198.pbf?at={}",
]
LIMIT_ROUTES = [
    "/api/v1/search?q=宇通&limit={}",
    "/api/v1/reports?limit={}",
    "/api/v1/risk/elements?limit={}",
    "/ogc/collections/street/items?limit={}",
]


def error(res, status=400) -> str:
    assert res.status_code == status, res.get_data(as_text=True)
    message = res.get_json()["error"]["message"]
    assert "\n" not in message
    return message


@pytest.mark.parametrize("route", BBOX_ROUTES)
@pytest.mark.parametrize("box, message", BAD_BOXES)
def test_bad_bbox_is_the_same_400_everywhere(demo_client, route, box, message):
    assert error(demo_client.get(route.format(box))) == message


@pytest.mark.parametrize("route", BBOX_ROUTES)
def test_good_bbox_is_taken_everywhere(demo_client, route):
    assert demo_client.get(route.format("113.60,34.70,113.72,34.76")).status_code == 200
    assert demo_client.get(route.format("113.60,34.70,0,113.72,34.76,100")).status_code == 200  # 3D form


@pytest.mark.parametrize("route", CRS_ROUTES)
def test_base_map_crs_is_checked_the_same_everywhere(demo_client, route):
    assert (
        error(demo_client.get(route.format("bd09"))) == "crs must be wgs84 or gcj02 (the base map's frame), got 'bd09'"
    )
    assert demo_client.get(route.format("gcj02")).status_code == 200


@pytest.mark.parametrize("route", AT_ROUTES)
def test_bad_date_is_the_same_400_everywhere(demo_client, route):
    message = "at: 'yesterday' is not an ISO date such as 2026-01-31 or 2026-01-31T08:00+08:00"
    assert error(demo_client.get(route.format("yesterday"))) == message


@pytest.mark.parametrize("route", LIMIT_ROUTES)
@pytest.mark.parametrize(
    "value, message",
    [
        ("nan", "must be a whole number, got 'nan'"),
        ("ten", "must be a whole number, got 'ten'"),
        ("0", "must be between 1 and"),
    ],
)
def test_whole_numbers_are_checked_the_same_everywhere(demo_client, route, value, message):
    assert error(demo_client.get(route.format(value))).startswith("limit " + message)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "x"])
def test_numbers_are_finite_and_ranged(demo_client, value):
    message = error(demo_client.get(f"/api/v1/grids?level=street&simplify_m={value}"))
    assert message.startswith("simplify_m must be ")


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "false", "0"])
def test_flags_take_true_false_1_0(demo_client, value):
    assert demo_client.get(f"/api/v1/risk/elements?overdue={value}&limit=1").status_code == 200


@pytest.mark.parametrize(
    "method, route",
    [
        ("get", "/api/v1/risk/elements?overdue=yes"),
        ("post", "/ogc/collections/micro/items?dry_run=yes"),
        ("put", "/ogc/collections/micro/items/x?dry_run=yes"),
        ("patch", "/ogc/collections/micro/items/x?dry_run=yes"),
        ("delete", "/ogc/collections/micro/items/x?dry_run=yes"),
    ],
)
def test_flags_say_the_same_everywhere(client, bearer, method, route):
    name = "overdue" if "overdue" in route else "dry_run"
    res = getattr(client, method)(route, headers=bearer("planner"))
    assert error(res) == f"{name} must be true or false, got 'yes'"


@pytest.mark.parametrize(
    "route, body, name",
    [
        ("/api/v1/partition", {"courtyard": CODE, "commit": "yes"}, "commit"),
        ("/api/v1/edits", {"op": "update", "code": CODE, "dry_run": "yes"}, "dry_run"),
    ],
)
def test_body_flags_say_the_same(client, bearer, route, body, name):
    res = client.post(route, json=body, headers=bearer("planner"))
    assert error(res) == f"{name} must be true or false, got 'yes'"


@pytest.mark.parametrize(
    "route",
    [
        "/api/v1/risk/elements",
        "/ogc/",
        "/ogc/conformance",
        "/ogc/collections",
        "/ogc/collections/street",
        "/ogc/collections/street/items",
        f"/ogc/collections/courtyard/items/{CODE}",
    ],
)
def test_unknown_query_keys_are_refused_the_same_way(demo_client, route):
    assert error(demo_client.get(route + "?colur=red")).startswith("unknown query parameter 'colur' (known: ")


@pytest.mark.parametrize(
    "route, body, role",
    [
        ("/api/v1/partition", {"courtyard": CODE, "colur": 1}, "planner"),
        ("/api/v1/risk/visits", {"element": 1, "visitor": "王芳", "colur": 1}, "dispatcher"),
    ],
)
def test_unknown_body_fields_are_refused_the_same_way(client, bearer, route, body, role):
    res = client.post(route, json=body, headers=bearer(role))
    assert error(res).startswith("unknown field 'colur' (known: ")
