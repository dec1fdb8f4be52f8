"""Bounded work and one validation for every input: small versions of issue #17's attacks on the small
test city (tests/cityfactory.py) through the real app and PostGIS.  Each refused request names the
field, answers 4xx, and writes nothing."""

from __future__ import annotations

import threading

import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import mapping

from gridmap import geo
from gridmap.domain import budget, values
from gridmap.domain.risk import Rules
from gridmap.errors import Busy, EditRejected, WorkLimit
from gridmap.services import boundary_edits as edits

import cityfactory as cf

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    return engine


@pytest.fixture
def planner(bearer):
    return bearer("planner")


def ll(geom):
    return mapping(geo.from_local([geom])[0])


def written(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM edit_log")).scalar(),
            conn.execute(sa.text("SELECT count(*) FROM grid")).scalar(),
        )


def post(client, headers, body):
    res = client.post("/api/v1/edits", json=body, headers={**headers, "If-Match": '"*"'})
    return res.status_code, (res.get_json() or {}).get("error", {}).get("message", "")


def zigzag_outline(n: int) -> dict:
    """M1's outline (0..1000 × 0..1000 m) with its south edge made of ``n`` zigzag vertices."""
    south = [(1000 * i / n, 0.5 * (i % 2)) for i in range(n + 1)]
    ring = south + [(1000, 1000), (0, 1000), (0, 0)]
    return ll(shapely.Polygon([(cf.X0 + x, cf.Y0 + y) for x, y in ring]))


BAD_EDITS = [
    ({"op": "split", "code": M1, "codes": ["../../etc <script>", "Z" * 3000], "parts": []}, "codes"),
    (
        {"op": "split", "code": M1, "codes": "ab", "line": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
        "codes",
    ),
    ({"op": "merge", "codes": [M1, M2], "name": ["x"]}, "name"),
    ({"op": "retire", "code": M1, "gap_to": M1}, "gap_to"),
    ({"op": "update", "code": M1, "properties": {"kind": "mall"}}, "kind"),
    ({"op": "update", "code": M1, "properties": {"households": 10**30}}, "households"),
    ({"op": "update", "code": M1, "properties": {"households": "abc"}}, "households"),
    ({"op": "update", "code": M1, "properties": {"households": {}}}, "households"),
    ({"op": "update", "code": M1, "properties": {"households": 1.5}}, "households"),
    ({"op": "update", "code": M1, "properties": [1]}, "properties"),
    ({"op": "update", "code": M1, "properties": {"name": "x" * 1_000_000}}, "name"),
    (
        {
            "op": "replace",
            "code": M1,
            "geometry": {"type": "Polygon", "coordinates": [[[1e308, 34], [113, 34], [113, 35]]]},
        },
        "coordinate",
    ),
    ({"op": "move_boundary", "code": M1, "other": M1, "geometry": {"type": "Point", "coordinates": [0, 0]}}, "other"),
    ({"op": "update", "code": ["x"], "properties": {}}, "code"),
]


@pytest.mark.parametrize("body,field", BAD_EDITS, ids=[f"{b['op']}-{f}-{i}" for i, (b, f) in enumerate(BAD_EDITS)])
def test_bad_edits_are_refused_naming_the_field_and_write_nothing(city, client, planner, body, field):
    before = written(city)
    status, message = post(client, planner, body)
    assert status == 400 and field in message, (status, message)
    assert len(message) <= 500  # a prefix of the input at most
    assert written(city) == before


def test_split_codes_must_have_the_levels_format_under_the_parent(city, client, planner):
    line = ll(shapely.LineString([(cf.X0 - 10, cf.Y0 + 500), (cf.X0 + 1010, cf.Y0 + 500)]))
    status, message = post(client, planner, {"op": "split", "code": M1, "line": line, "codes": [M1, "410199001002001"]})
    assert status == 400 and "micro code" in message
    status, message = post(
        client, planner, {"op": "split", "code": M1, "line": line, "codes": [M1, "41019900100200101"]}
    )
    assert status == 400 and f"must start with its parent's code {Y1}" in message


def test_json_that_python_would_take_is_refused(city, client, planner):
    for raw, says in (
        (b'{"op": "update", "code": "%s", "properties": {"households": Infinity}}' % M1.encode(), "Infinity"),
        (b'{"op": "update", "code": "%s", "properties": {"households": 1e400}}' % M1.encode(), "1e400"),
        (b"[" * 5000 + b"]" * 5000, "nested"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"op": "update", "code": "%s", "properties": {"population": -Infinity}}' % M1.encode(), "Infinity"),
    ):
        res = client.post("/api/v1/edits", data=raw, content_type="application/json", headers=planner)
        assert res.status_code == 400 and says in res.get_json()["error"]["message"], raw[:60]
    res = client.post("/api/v1/lookup", data=b'{"points": [], "crs": ["x"]}', content_type="application/json")
    assert res.status_code == 400 and "crs" in res.get_json()["error"]["message"]


def test_vertices_are_bounded_before_any_work(city, client, planner):
    before = written(city)
    status, message = post(
        client, planner, {"op": "replace", "code": M1, "geometry": zigzag_outline(values.MAX_VERTICES + 10)}
    )
    assert status == 413 and "vertices" in message
    assert written(city) == before


def test_an_edit_past_its_budget_stops_and_writes_nothing(city):
    before = written(city)
    op = {"op": "replace", "code": M1, "geometry": zigzag_outline(200)}
    with budget.limit(0.0), pytest.raises(WorkLimit, match="time budget"):
        edits.apply(city, op, actor="t", rules=Rules())
    gone = threading.Event()
    gone.set()
    with budget.limit(60.0, gone), pytest.raises(WorkLimit, match="went away"):
        edits.apply(city, op, actor="t", rules=Rules())
    assert written(city) == before
    with pytest.raises(EditRejected, match="not covered"):  # outside a budget the checks run to their verdict
        edits.apply(city, op, actor="t", rules=Rules(), dry_run=True)


def test_an_edit_waits_for_locks_only_so_long(city, client, planner, monkeypatch):
    """Another transaction holds M1's row: the edit gives up after its lock timeout with 503 busy."""
    monkeypatch.setattr(edits, "LOCK_TIMEOUT_MS", 300)
    with city.connect() as holder:
        holder.execute(sa.text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL FOR UPDATE"), {"c": M1})
        with pytest.raises(Busy):
            edits.apply(city, {"op": "update", "code": M1, "properties": {"name": "x"}}, actor="t", rules=Rules())
        res = client.post(
            "/api/v1/edits",
            json={"op": "update", "code": M1, "properties": {"name": "x"}},
            headers={**planner, "If-Match": '"*"'},
        )
        assert res.status_code == 503 and res.headers["Retry-After"] and res.get_json()["error"]["code"] == "busy"
        holder.rollback()


def test_loose_query_and_body_values_are_refused(city, client, bearer):
    for url, says in (
        ("/api/v1/grids?level=micro&bbox=nan,nan,nan,nan", "bbox"),
        ("/api/v1/grids?level=micro&simplify_m=nan", "simplify_m"),
        ("/api/v1/grids?level=micro&simplify_m=-1e308", "simplify_m"),
        ("/api/v1/risk/elements?limit=1e400", "limit"),
        ("/ogc/collections/micro/items?bbox=nan,0,1,1", "bbox"),
    ):
        res = client.get(url)
        assert res.status_code == 400 and says in res.get_json()["error"]["message"], url
    dispatcher = bearer("dispatcher")
    for body, says in (
        ({"element": 1.5, "visitor": "王芳"}, "element"),
        ({"element": "1", "visitor": "王芳"}, "element"),
        ({"element": 1, "visitor": "x" * 3_000_000}, "visitor"),
        ({"element": 1, "visitor": "王芳", "note": "x" * 10_000}, "note"),
        ({"element": 1, "visitor": ["王芳"]}, "visitor"),
    ):
        res = client.post("/api/v1/risk/visits", json=body, headers=dispatcher)
        assert res.status_code == 400 and says in res.get_json()["error"]["message"], str(body)[:60]


def test_csv_reader_errors_are_one_line_exit_2(city, cli, tmp_path):
    head = "kind,colour,name,reason,marked_by,marked_at,lon,lat\n"
    for name, text in (
        ("short", head + "person,red\n"),
        ("quote", head + 'person,red,"x,y,z,2026-11-01,113.68,34.73\n'),
        ("nul", head + "person,red,a\x00b,r,m,2026-11-01,113.68,34.73\n"),
    ):
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        for args in (("risk", "import", path), ("record", "reports", path), ("import", path, "--level", "micro")):
            res = cli(*args)
            lines = res.output.strip().splitlines()
            assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("gridmap: error:"), (args, res.output)
