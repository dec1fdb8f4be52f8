"""The test city with an event centre: departments of every kind at its communities, streets and
district, a grid worker, users of every role (a handler in the community's departments), and
helpers to file and act on cases through the real app."""

from __future__ import annotations

import pytest
import shapely
import sqlalchemy as sa

from gridmap.domain.demo import cases as demo_cases
from gridmap.services import events, matters
from gridmap.services.locator import Locator
from gridmap.settings import Settings
from gridmap.store import departments

import cityfactory as cf

MICRO = "41019900100100101"  # courtyard 410199001001001 (x 0..1000), below y = 1000
COMMUNITY, STREET, DISTRICT = "410199001001", "410199001", "410199"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def lonlat(x, y):
    p = cf.geo.from_local([shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


def catalogue():
    return matters.load(Settings.from_env().layers_dir)


def pick(auto: bool, level: str, kind: str | None = None, verify: str | None = None):
    """A matter of the shipped catalogue with these properties (the tests do not pin codes)."""
    return next(
        m
        for m in catalogue().matters.values()
        if m.auto == auto
        and m.level == level
        and (kind is None or m.handlers[level] == kind)
        and (verify is None or m.verify == verify)
    )


@pytest.fixture
def event_city(engine, cli, tmp_path, bearer):
    """The test city, a department of each kind at its communities, streets and district, a grid
    worker on MICRO, and users: a handler in the community's 城市管理 and 网格工作站, a verifier."""
    cf.load(cli, cf.city(), tmp_path)
    headers = {r: bearer(r) for r in ("dispatcher", "handler", "verifier", "supervisor", "admin", "viewer", "ingest")}
    with engine.begin() as conn:
        departments.insert_many(conn, demo_cases.department_rows(catalogue(), departments.grids_with_departments(conn)))
        pid = conn.execute(
            sa.text("INSERT INTO person (name, phone) VALUES ('王网格', '13800000001') RETURNING id")
        ).scalar()
        conn.execute(
            sa.text("INSERT INTO grid_post (person_id, grid_code, role) VALUES (:p, :g, 'grid_worker')"),
            {"p": pid, "g": MICRO},
        )
        uid = conn.execute(sa.text("SELECT id FROM app_user WHERE name = 'test-handler'")).scalar()
        for code in (f"{COMMUNITY}-cg", f"{COMMUNITY}-zz"):
            assert departments.add_member(conn, code, uid)
    return headers


def centre(engine):
    return events.make_centre(Settings.from_env(), engine, Locator(engine))


def file(client, headers, matter, x=300, y=500, **extra):
    lon, lat = lonlat(x, y)
    body = {
        "matter": matter.code,
        "lon": lon,
        "lat": lat,
        "text": "井盖没了，很危险",
        "channel": "app",
        "contact": {"name": "李四", "phone": "13900000000"},
        **extra,
    }
    res = client.post("/api/v1/events", json=body, headers=headers)
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def act(client, case_id, action, headers=None, **body):
    return client.post(f"/api/v1/events/{case_id}/{action}", json=body, headers=headers or {})
