"""Several app servers on one PostGIS: two ``gridmap serve`` processes (standing in for two machines),
an edit committed through one seen by the next lookup, tile and panel on the other."""

from __future__ import annotations

import json
import urllib.request

import mapbox_vector_tile
import mercantile
import pytest
from shapely.geometry import mapping

import cityfactory as cf
from servers import serving

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


def lonlat(x, y):
    p = cf.geo.from_local([cf.shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


def http(url, body=None, headers=None):
    """(status, headers, bytes) of a GET, or a POST of JSON ``body``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def lookup(base, x, y):
    lon, lat = lonlat(x, y)
    status, _, body = http(f"{base}/api/v1/lookup?lon={lon}&lat={lat}")
    assert status == 200, body
    return json.loads(body)


def micro_tile(base, x, y):
    """The names in the z15 micro-grid tile holding the point."""
    t = mercantile.tile(*lonlat(x, y), 15)
    status, _, body = http(f"{base}/tiles/micro/{t.z}/{t.x}/{t.y}.pbf?crs=wgs84")
    assert status == 200
    layers = mapbox_vector_tile.decode(body) if body else {}
    return {f["properties"]["code"]: f["properties"]["name"] for layer in layers.values() for f in layer["features"]}


def panel(base, code):
    status, _, body = http(f"{base}/api/v1/grids/{code}/panel")
    assert status == 200, body
    return json.loads(body)["properties"]


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)


def test_an_edit_through_one_server_is_seen_by_the_next_lookup_tile_and_panel_on_the_other(city, database_url, bearer):
    planner = bearer("planner")
    with (
        serving(database_url, "--workers", "1", "--threads", "2") as (a, _),
        serving(database_url, "--workers", "1", "--threads", "2") as (b, _),
    ):
        # server B has its index, tile cache and panel from before the edit
        assert lookup(b, 500, 950)["micro"] == M1
        assert micro_tile(b, 500, 950)[M1] == panel(b, M1)["name"] != "新一号网格"
        status, headers, _ = http(f"{a}/api/v1/grids/{M1}")
        etag_m1 = headers["ETag"]
        etag_m2 = http(f"{a}/api/v1/grids/{M2}")[1]["ETag"]
        shrunk = mapping(cf.geo.from_local([cf.rect(0, 0, 1000, 900)])[0])
        edit = {
            "op": "replace",
            "code": M1,
            "geometry": shrunk,
            "properties": {"name": "新一号网格"},
            "gap_to": M2,
            "if_match": {M2: etag_m2},
        }
        status, _, body = http(f"{a}/api/v1/edits", edit, {**planner, "If-Match": etag_m1})
        assert status == 201, body
        # the very next requests on B see it: the point in the strip given away, the new name
        assert lookup(b, 500, 950)["micro"] == M2
        assert lookup(b, 500, 500)["chain"][-1]["name"] == "新一号网格"
        assert micro_tile(b, 500, 950)[M1] == "新一号网格"
        assert panel(b, M1)["name"] == "新一号网格"
