"""Personal data is private by default (web/privacy.py): every GET route, anonymously and with a token
of each role, on open reads.  Anonymous callers, bad tokens and ingest tokens get no names or phones of
people, no risk reasons or markers, no report texts, no staff names; viewers and above get them."""

from __future__ import annotations

import mapbox_vector_tile
import mercantile
import pytest
import sqlalchemy as sa

from gridmap.domain.roles import ROLES
from gridmap.store import db, users
from gridmap.web import create_app

#: Keys that only ever hold personal data (grid names are public, so "name" is checked per route).
PERSONAL = {"people", "phone", "reason", "marked_by", "attrs", "text", "actor"}
SEES = {"viewer", "dispatcher", "planner", "admin"}
#: The OpenAPI document names the personal fields in its schemas; it holds no data.
SCHEMAS = {"/api/v1/openapi.json", "/ogc/api"}


@pytest.fixture(scope="module")
def world(demo_url):
    """The open-read app on the demo city, a token per role, and values to fill every route's path."""
    eng = db.engine(demo_url)
    tokens = {}
    with eng.begin() as conn:
        for role in ROLES:
            name = f"privacy-{role}-{conn.execute(sa.text('SELECT md5(random()::text)')).scalar()[:8]}"
            users.add_user(conn, name, role)
            tokens[role] = {"Authorization": f"Bearer {users.issue_token(conn, name)}"}
        # a micro-grid with people, open reports and a red person element
        code, lon, lat = conn.execute(
            sa.text(
                "SELECT e.micro_code, ST_X(e.geom), ST_Y(e.geom) FROM risk_element e "
                "JOIN grid_person p ON p.grid_code = e.micro_code "
                "WHERE e.kind = 'person' AND e.colour = 'red' AND GeometryType(e.geom) = 'POINT' LIMIT 1"
            )
        ).one()
    tokens["anonymous"] = {}
    tokens["bad token"] = {"Authorization": "Bearer gm_not-a-token"}
    app = create_app({"DATABASE_URL": demo_url, "TESTING": True})
    tile = mercantile.tile(lon, lat, 16)
    fill = {
        "code": code,
        "edit_id": "1",
        "level": "micro",
        "layer": "risk-red",
        "z": str(tile.z),
        "x": str(tile.x),
        "y": str(tile.y),
        "filename": "gridmap.css",
    }
    query = {
        "/api/v1/lookup": f"?lon={lon}&lat={lat}",
        "/api/v1/grids": "?level=micro&bbox="
        + ",".join(str(v) for v in (lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)),
        "/api/v1/search": f"?q={code}",
        "/api/v1/risk/elements": f"?grid={code}",
        "/api/v1/reports": "?limit=200",
    }
    return app, tokens, fill, query, (lon, lat)


def _urls(app, fill, query):
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", fill[arg]).replace(f"<int:{arg}>", fill[arg])
            path = path.replace(f"<path:{arg}>", fill[arg])
        assert "<" not in path, f"no value to fill {rule.rule} with"
        yield path + query.get(rule.rule, "")


def _keys(value) -> set:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


def test_every_get_route_per_identity(world):
    app, tokens, fill, query, _ = world
    client = app.test_client()
    seen_personal = set()
    for url in _urls(app, fill, query):
        for identity, headers in tokens.items():
            res = client.get(url, headers=headers)
            assert res.status_code < 500, (url, identity, res.status_code)
            if not res.is_json or url in SCHEMAS:
                continue
            found = _keys(res.get_json()) & PERSONAL
            if identity in SEES:
                seen_personal |= found
            else:
                assert not found, f"{identity} got {sorted(found)} from {url}"
    # the routes do carry personal data, for those who may read it
    assert {"people", "phone", "reason", "marked_by", "text"} <= seen_personal


def test_person_elements_have_no_place_or_name_for_strangers(world):
    app, tokens, fill, _, _ = world
    client = app.test_client()
    url = f"/api/v1/risk/elements?grid={fill['code']}&kind=person"
    anonymous = client.get(url).get_json()["features"]
    assert anonymous and all(f["geometry"] is None and "name" not in f["properties"] for f in anonymous)
    viewer = client.get(url, headers=tokens["viewer"]).get_json()["features"]
    assert all(f["geometry"] is not None and f["properties"]["name"] for f in viewer)
    places = client.get(f"/api/v1/risk/elements?grid={fill['code']}&kind=place").get_json()["features"]
    assert all(f["geometry"] is not None and "name" not in f["properties"] for f in places)


def test_risk_tiles_leave_out_names_and_people_for_strangers(world):
    app, tokens, fill, _, _ = world
    client = app.test_client()
    url = f"/tiles/risk-red/{fill['z']}/{fill['x']}/{fill['y']}.pbf"

    def features(headers):
        res = client.get(url, headers=headers)
        layer = mapbox_vector_tile.decode(res.data).get("risk-red", {"features": []}) if res.data else {"features": []}
        return res, layer["features"]

    res, anonymous = features({})
    assert all("name" not in f["properties"] and f["properties"]["kind"] != "person" for f in anonymous)
    assert "public" in res.headers["Cache-Control"]
    res, viewer = features(tokens["viewer"])
    assert any(f["properties"]["kind"] == "person" and f["properties"]["name"] for f in viewer)
    assert "private" in res.headers["Cache-Control"]  # no shared cache keeps a tile drawn for a token


def test_panel_people_and_reports_per_role(world):
    app, tokens, fill, _, _ = world
    client = app.test_client()
    url = f"/api/v1/grids/{fill['code']}/panel"
    anonymous = client.get(url).get_json()["properties"]
    assert "people" not in anonymous and anonymous["households"] >= 0
    assert all("text" not in r for r in anonymous["reports"]["latest"])
    for role in ("viewer", "dispatcher", "planner", "admin"):
        props = client.get(url, headers=tokens[role]).get_json()["properties"]
        assert props["people"] and props["people"][0]["phone"], role
    ingest = client.get(url, headers=tokens["ingest"]).get_json()["properties"]
    assert "people" not in ingest  # scripts run lookups; they do not read people
