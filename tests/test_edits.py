"""Boundary edits on the small test city through the real API, CLI and PostGIS: each operation
accepted and rejected, the impact preview on a known case, dated history and at= queries,
412 on a stale edit (two concurrent edits: exactly one wins), and validate passing after commits.

The city (tests/cityfactory.py): courtyard Y1 = 410199001001001 is x 0..1000, y 0..2000 m with
micro-grids M1 (y 0..1000) and M2 (y 1000..2000), each with one building of two 30-household units
near its south-west corner; courtyard Y2 = ...002 is x 1000..2000.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import mapping

from gridmap import geo
from gridmap.domain.risk import Rules
from gridmap.errors import PreconditionFailed
from gridmap.services import boundary_edits as edits
from gridmap.store import users

import cityfactory as cf

Y1, Y2 = "410199001001001", "410199001001002"
M1, M2 = Y1 + "01", Y1 + "02"
COMMUNITY = "410199001001"
#: m² in EPSG:4547 per m² of the test city's local plane
SCALE = float(geo.area_m2(geo.from_local([cf.rect(0, 0, 1000, 1000)]))[0]) / 1e6


def ll(geom):
    """A geometry on the city's local plane (cf.rect) -> lon/lat GeoJSON geometry."""
    return mapping(geo.from_local([geom])[0])


def m2(geom) -> float:
    """The area of a local-plane geometry as gridmap measures it (EPSG:4547)."""
    return float(geo.area_m2(geo.from_local([geom]))[0])


def pt(x, y):
    p = geo.from_local([shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


def token(engine, role: str, name: str | None = None) -> dict:
    name = name or f"t-{role}"
    with engine.begin() as conn:
        users.add_user(conn, name, role)
        secret = users.issue_token(conn, name)
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def planner(city):
    return token(city, "planner", "王规划")


def etag_of(client, code):
    res = client.get(f"/api/v1/grids/{code}")
    assert res.status_code == 200
    return res.headers["ETag"]


def post(client, headers, body, if_match=None):
    h = dict(headers)
    if if_match:
        h["If-Match"] = if_match
    return client.post("/api/v1/edits", json=body, headers=h)


def retire(client, headers, code, gap_to):
    """Commit the retirement of ``code``, its area to ``gap_to``; the response."""
    body = {"op": "retire", "code": code, "gap_to": gap_to, "if_match": {gap_to: etag_of(client, gap_to)}}
    return post(client, headers, body, if_match=etag_of(client, code))


def add_report(engine, x, y, text="路灯不亮"):
    lon, lat = pt(x, y)
    with engine.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO report (text, geom, micro_code) VALUES (:t, ST_SetSRID(ST_MakePoint(:x, :y), 4326), "
                "(SELECT code FROM grid WHERE level = 'micro' AND valid_to IS NULL AND "
                "ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) ORDER BY code LIMIT 1)) RETURNING id"
            ),
            {"t": text, "x": lon, "y": lat},
        ).scalar_one()


def report_grid(engine, rid):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT micro_code FROM report WHERE id = :i"), {"i": rid}).scalar_one()


def validate_ok(cli):
    res = cli("validate", "--format", "json")
    problems = [p for p in json.loads(res.output)["problems"] if p["kind"] != "households_mismatch"]
    assert problems == [], problems


# --- replace ---------------------------------------------------------------------------


def test_replace_with_gap_to_preview_then_commit(client, city, planner, cli):
    rid = add_report(city, 500, 950)  # in M1 now; in M2 once M1 ends at y = 900
    assert report_grid(city, rid) == M1
    body = {"op": "replace", "code": M1, "geometry": ll(cf.rect(0, 0, 1000, 900)), "gap_to": M2}
    preview = post(client, planner, {**body, "dry_run": True})
    assert preview.status_code == 200, preview.get_json()
    r = preview.get_json()
    assert r["dry_run"] is True and r["closed"] == [M1, M2] and r["opened"] == [M1, M2]
    assert r["moved"]["reports"] == {"count": 1, "items": [{"id": rid, "from": M1, "to": M2}]}
    assert "buildings" not in r["moved"]  # buildings belong to courtyards: a micro-grid edit moves none
    before, after = r["grids"]["before"], r["grids"]["after"]
    assert before[M1]["households"] == 60 and after[M1]["households"] == 60 and after[M2]["households"] == 60
    assert after[M1]["area_m2"] == pytest.approx(900_000 * SCALE, rel=1e-3)
    assert after[M2]["area_m2"] == pytest.approx(1_100_000 * SCALE, rel=1e-3)
    assert r["out_of_band"] == []
    assert report_grid(city, rid) == M1  # a dry run writes nothing
    res = post(
        client,
        planner,
        {**body, "reason": "新楼盘道路调整", "if_match": {M2: etag_of(client, M2)}},
        if_match=etag_of(client, M1),
    )
    assert res.status_code == 201, res.get_json()
    done = res.get_json()
    assert done["edit_id"] > 0 and set(done["etags"]) == {M1, M2}
    assert report_grid(city, rid) == M2
    assert etag_of(client, M1) == done["etags"][M1]
    validate_ok(cli)
    # the same report is stored with the edit
    stored = client.get(f"/api/v1/edits/{done['edit_id']}", headers=planner).get_json()  # names: a token
    assert stored["actor"] == "王规划" and stored["reason"] == "新楼盘道路调整"
    assert stored["detail"]["report"]["moved"]["reports"]["count"] == 1


def test_replace_leaving_a_gap_is_rejected_with_the_gap(client, planner, city):
    version = etag_of(client, M1)
    res = post(
        client, planner, {"op": "replace", "code": M1, "geometry": ll(cf.rect(0, 0, 1000, 900))}, if_match=version
    )
    assert res.status_code == 422
    err = res.get_json()["error"]
    assert err["code"] == "edit_rejected" and "not covered by any of its children" in err["message"]
    gap = next(p for p in err["detail"]["problems"] if p["kind"] == "gap")
    assert gap["codes"] == [Y1] and gap["area_m2"] == pytest.approx(100_000 * SCALE, rel=1e-3)
    area = geo.area_m2([shapely.geometry.shape(gap["geometry"])])[0]
    assert area == pytest.approx(100_000 * SCALE, rel=1e-3)
    assert etag_of(client, M1) == version  # nothing written


@pytest.mark.parametrize(
    "geom, kind",
    [
        (cf.rect(0, 0, 1000, 1100), "overlap"),  # into M2
        (cf.rect(-50, 0, 1000, 1000), "outside_parent"),  # out of courtyard Y1 (and out of the city)
        (
            shapely.Polygon(
                [(cf.X0, cf.Y0), (cf.X0 + 1000, cf.Y0 + 1000), (cf.X0 + 1000, cf.Y0), (cf.X0, cf.Y0 + 1000)]
            ),
            "invalid_geometry",
        ),  # a bow tie
    ],
)
def test_replace_rejections(client, planner, city, geom, kind):
    res = post(client, planner, {"op": "replace", "code": M1, "geometry": ll(geom)}, if_match=etag_of(client, M1))
    assert res.status_code == 422, res.get_json()
    kinds = {p["kind"] for p in res.get_json()["error"]["detail"]["problems"]}
    assert kind in kinds


def test_a_child_sticking_out_is_rejected(client, planner, city):
    """Courtyard Y1 shrinks to x 0..900 (Y2 takes the strip): its micro-grids would stick out."""
    res = post(
        client,
        planner,
        {
            "op": "replace",
            "code": Y1,
            "geometry": ll(cf.rect(0, 0, 900, 2000)),
            "gap_to": Y2,
            "if_match": {Y2: etag_of(client, Y2)},
        },
        if_match=etag_of(client, Y1),
    )
    assert res.status_code == 422
    problems = res.get_json()["error"]["detail"]["problems"]
    out = [p for p in problems if p["kind"] == "outside_parent"]
    assert {p["codes"][0] for p in out} == {M1, M2}
    assert sum(p["area_m2"] for p in out) == pytest.approx(200_000 * SCALE, rel=1e-3)


# --- move boundary, split, merge, create, retire -----------------------------------------


def test_move_boundary_changes_both_sides(client, planner, city, cli):
    res = post(
        client,
        planner,
        {
            "op": "move_boundary",
            "code": M1,
            "other": M2,
            "geometry": ll(cf.rect(0, 0, 1000, 1200)),
            "if_match": {M1: etag_of(client, M1), M2: etag_of(client, M2)},
        },
    )
    assert res.status_code == 201, res.get_json()
    after = res.get_json()["grids"]["after"]
    assert after[M1]["area_m2"] == pytest.approx(1_200_000 * SCALE, rel=1e-3)
    assert after[M2]["area_m2"] == pytest.approx(800_000 * SCALE, rel=1e-3)
    validate_ok(cli)


def test_move_boundary_into_another_sibling_is_rejected(client, planner, city):
    grab = shapely.union(cf.rect(0, 0, 1000, 1000), cf.rect(1000, 0, 1100, 500))  # reaches into courtyard Y2
    res = post(
        client,
        planner,
        {
            "op": "move_boundary",
            "code": M1,
            "other": M2,
            "geometry": ll(grab),
            "if_match": {M1: etag_of(client, M1), M2: etag_of(client, M2)},
        },
    )
    assert res.status_code == 422
    assert "outside_parent" in {p["kind"] for p in res.get_json()["error"]["detail"]["problems"]}


def test_split_courtyard_by_a_line_children_and_buildings_follow(client, planner, city, cli):
    a, b = pt(-10, 1000), pt(1010, 1000)
    res = post(
        client,
        planner,
        {"op": "split", "code": Y1, "line": {"type": "LineString", "coordinates": [a, b]}, "names": ["南院", "北院"]},
        if_match=etag_of(client, Y1),
    )
    assert res.status_code == 201, res.get_json()
    r = res.get_json()
    parts = r["opened"]
    assert len(parts) == 2 and Y1 not in parts and all(p.startswith(COMMUNITY) and len(p) == len(Y1) for p in parts)
    assert sorted(r["children_moved"]) == [M1, M2] and len(set(r["children_moved"].values())) == 2
    assert r["buildings_moved"] == 2
    assert sorted(a["households"] for a in r["grids"]["after"].values()) == [60, 60]
    validate_ok(cli)
    with city.connect() as conn:
        yards = set(
            conn.execute(
                sa.text("SELECT courtyard_code FROM building WHERE valid_to IS NULL AND code LIKE :p"), {"p": Y1 + "B%"}
            ).scalars()
        )
    assert yards == set(parts)
    assert client.get(f"/api/v1/grids/{Y1}").status_code == 410  # retired (Gone), and its history stays
    assert len(client.get(f"/api/v1/grids/{Y1}/history").get_json()["versions"]) == 1


def test_split_across_a_child_is_rejected(client, planner, city):
    a, b = pt(-10, 500), pt(1010, 500)  # cuts M1 in half
    res = post(
        client,
        planner,
        {"op": "split", "code": Y1, "line": {"type": "LineString", "coordinates": [a, b]}},
        if_match=etag_of(client, Y1),
    )
    assert res.status_code == 422
    assert {p["kind"] for p in res.get_json()["error"]["detail"]["problems"]} == {"child_cut"}  # says which


def test_merge_flags_the_band_and_rejects_non_siblings(client, planner, city, cli):
    res = post(
        client,
        planner,
        {
            "op": "merge",
            "codes": [M1, M2],
            "name": "合并网格",
            "if_match": {M1: etag_of(client, M1), M2: etag_of(client, M2)},
        },
    )
    assert res.status_code == 201, res.get_json()
    r = res.get_json()
    assert r["opened"] == [M1] and r["grids"]["after"][M1]["households"] == 120 and r["out_of_band"] == [M1]
    assert client.get(f"/api/v1/grids/{M2}").status_code == 410
    validate_ok(cli)
    other = Y2 + "01"
    bad = post(client, planner, {"op": "merge", "codes": [M1, other], "dry_run": True})
    assert bad.status_code == 400 and "not a sibling" in bad.get_json()["error"]["message"]


def test_create_carves_and_overlap_without_carve_is_rejected(client, planner, city, cli):
    spec = {"level": "micro", "parent_code": Y1, "name": "新建网格", "geometry": ll(cf.rect(500, 0, 1000, 500))}
    res = post(client, planner, {"op": "create", "grid": spec, "dry_run": True})
    assert res.status_code == 422 and "overlap" in res.get_json()["error"]["message"]
    res = post(client, planner, {"op": "create", "grid": spec, "carve": True, "if_match": {M1: etag_of(client, M1)}})
    assert res.status_code == 201, res.get_json()
    r = res.get_json()
    new = [c for c in r["opened"] if c != M1][0]
    assert new == Y1 + "03" and r["grids"]["after"][new]["households"] == 0 and new in r["out_of_band"]
    assert r["grids"]["after"][M1]["area_m2"] == pytest.approx(750_000 * SCALE, rel=1e-3)
    validate_ok(cli)


def test_retire_needs_a_taker(client, planner, city, cli):
    rid = add_report(city, 500, 1500)  # in M2
    res = post(client, planner, {"op": "retire", "code": M2}, if_match=etag_of(client, M2))
    assert res.status_code == 422
    assert [p["kind"] for p in res.get_json()["error"]["detail"]["problems"]] == ["gap"]
    res = retire(client, planner, M2, M1)
    assert res.status_code == 201, res.get_json()
    assert report_grid(city, rid) == M1
    validate_ok(cli)


def test_update_attributes_is_a_new_version(client, planner, city):
    res = post(
        client, planner, {"op": "update", "code": M1, "properties": {"name": "幸福网格"}}, if_match=etag_of(client, M1)
    )
    assert res.status_code == 201
    assert client.get(f"/api/v1/grids/{M1}").get_json()["properties"]["name"] == "幸福网格"
    bad = post(
        client, planner, {"op": "update", "code": M1, "properties": {"households": -1}}, if_match=etag_of(client, M1)
    )
    assert bad.status_code == 400 and "households" in bad.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"op": "paint"}, "op must be one of"),
        ({"code": M1}, 'an edit names its "op": one of replace, update,'),  # before: "got None"
        ({"op": "replace", "code": M1, "geometry": {"type": "Point", "coordinates": [113.7, 34.75]}}, "Polygon"),
        ({"op": "replace", "code": M1, "geometry": "POLYGON"}, "GeoJSON geometry"),
        ({"op": "replace", "code": "nope", "geometry": None}, "code must be a grid code"),
        ({"op": "replace", "code": M1[:-2] + "99", "geometry": None}, "no current grid"),
        ({"op": "retire", "code": M1, "colour": "red"}, "does not take colour"),
    ],
)
def test_bad_edits_are_400_or_404(client, planner, city, body, message):
    res = post(client, planner, {**body, "dry_run": True})
    assert res.status_code in (400, 404)
    assert message in res.get_json()["error"]["message"]


# --- versions, concurrency, history ----------------------------------------------------------


def test_commit_needs_if_match_and_a_stale_one_gets_412(client, planner, city):
    body = {"op": "update", "code": M1, "properties": {"name": "A"}}
    res = post(client, planner, body)
    assert res.status_code == 428 and res.get_json()["error"]["detail"]["etags"][M1] == etag_of(client, M1)
    old = etag_of(client, M1)
    assert post(client, planner, body, if_match=old).status_code == 201
    stale = post(client, planner, {**body, "properties": {"name": "B"}}, if_match=old)
    assert stale.status_code == 412
    err = stale.get_json()["error"]
    assert err["detail"]["etags"][M1] == etag_of(client, M1) != old
    assert client.get(f"/api/v1/grids/{M1}").get_json()["properties"]["name"] == "A"


def test_two_concurrent_edits_exactly_one_wins(city):
    with city.connect() as conn:
        base = edits.current_etags(city, [M1, M2])
    barrier = threading.Barrier(2)
    results = []

    def run(y):
        barrier.wait()
        try:
            edits.apply(
                city,
                {"op": "move_boundary", "code": M1, "other": M2, "geometry": ll(cf.rect(0, 0, 1000, y))},
                actor=f"planner{y}",
                rules=Rules(),
                if_match=base,
            )
            results.append("won")
        except PreconditionFailed:
            results.append("412")
        except Exception as exc:  # noqa: BLE001 - shown in the assertion
            results.append(repr(exc))

    threads = [threading.Thread(target=run, args=(y,)) for y in (1100, 1300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["412", "won"]
    with city.connect() as conn:
        versions = conn.execute(sa.text("SELECT count(*) FROM grid WHERE code = :c"), {"c": M1}).scalar_one()
    assert versions == 2


def test_an_edit_that_waited_while_its_grid_was_moved_uses_the_new_parent(city):
    """An edit of the school waits for its community's lock while another transaction gives the
    community a new code (the school's version now names the new one); once it has its locks it reads
    the parent again (before: "parent 410199001001 is not a current grid", naming a grid it never mentioned)."""
    school, old, new = "410199001001S01", "410199001001", "410199001009"
    results = []
    with city.connect() as holder:
        tx = holder.begin()
        # as an edit of the community does: its row locked first (the school's edit locks it too, and waits)
        holder.execute(sa.text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL FOR UPDATE"), {"c": old})

        def run():
            try:
                edits.apply(
                    city, {"op": "update", "code": school, "properties": {"name": "新校名"}}, actor="b", rules=Rules()
                )
                results.append("won")
            except Exception as exc:  # noqa: BLE001 - shown in the assertion
                results.append(repr(exc))

        waiter = threading.Thread(target=run)
        waiter.start()
        for _ in range(200):  # until the edit waits for the community's row
            with city.connect() as probe:
                waiting = probe.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                ).scalar_one()
            if waiting:
                break
            waiter.join(0.05)
        assert waiting, results
        ids = [
            r[0]
            for r in holder.execute(
                sa.text("SELECT id FROM grid WHERE valid_to IS NULL AND (code = :o OR parent_code = :o)"), {"o": old}
            )
        ]
        holder.execute(sa.text("UPDATE grid SET valid_to = now() WHERE id = ANY(:ids)"), {"ids": ids})
        holder.execute(
            sa.text(
                "INSERT INTO grid (code, name, level, kind, parent_code, households, population, geom, attrs, "
                "multipart, valid_from) SELECT CASE WHEN code = :o THEN :n ELSE code END, name, level, kind, "
                "CASE WHEN parent_code = :o THEN :n ELSE parent_code END, households, population, geom, attrs, "
                "multipart, now() FROM grid WHERE id = ANY(:ids)"
            ),
            {"o": old, "n": new, "ids": ids},
        )
        tx.commit()
    waiter.join(30)
    assert results == ["won"]
    with city.connect() as conn:
        row = conn.execute(
            sa.text("SELECT name, parent_code FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": school}
        ).one()
    assert tuple(row) == ("新校名", new)


def test_history_and_past_dates(client, planner, city):
    with city.connect() as conn:
        before = conn.execute(sa.text("SELECT now()")).scalar_one()
    lon, lat = pt(500, 950)
    assert client.get(f"/api/v1/lookup?lon={lon}&lat={lat}").get_json()["micro"] == M1
    res = post(
        client,
        planner,
        {
            "op": "replace",
            "code": M1,
            "geometry": ll(cf.rect(0, 0, 1000, 900)),
            "gap_to": M2,
            "reason": "调整",
            "if_match": {M2: etag_of(client, M2)},
        },
        if_match=etag_of(client, M1),
    )
    assert res.status_code == 201
    assert all("actor" not in e for e in client.get(f"/api/v1/grids/{M1}/history").get_json()["edits"])
    h = client.get(f"/api/v1/grids/{M1}/history", headers=planner).get_json()  # staff names: a token
    assert [v["valid_to"] is None for v in h["versions"]] == [False, True]
    assert h["versions"][0]["valid_to"] == h["versions"][1]["valid_from"]
    assert h["versions"][0]["area_m2"] == pytest.approx(1_000_000 * SCALE, rel=1e-3)
    # the import that opened M1, then the edit (imports and partitions are in a grid's history too: #11)
    assert [(e["action"], e["actor"], e["reason"]) for e in h["edits"]] == [
        ("import micro", "cli", None),
        ("replace", "王规划", "调整"),
    ]
    at = before.isoformat()
    old = client.get(f"/api/v1/grids/{M1}", query_string={"at": at}).get_json()
    assert geo.area_m2([shapely.geometry.shape(old["geometry"])])[0] == pytest.approx(1_000_000 * SCALE, rel=1e-3)
    assert client.get(f"/api/v1/lookup?lon={lon}&lat={lat}").get_json()["micro"] == M2
    assert client.get("/api/v1/lookup", query_string={"lon": lon, "lat": lat, "at": at}).get_json()["micro"] == M1
    assert client.get("/api/v1/grids/nope/history").status_code == 404


# --- roles and the CLI ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "role, status",
    [(None, 401), ("viewer", 403), ("dispatcher", 403), ("ingest", 403), ("planner", 200), ("admin", 200)],
)
def test_edit_roles(client, city, role, status):
    headers = token(city, role) if role else {}
    res = post(client, headers, {"op": "update", "code": M1, "properties": {"name": "x"}, "dry_run": True})
    assert res.status_code == status


def test_cli_edit_and_history(cli, city, tmp_path):
    geom = tmp_path / "m1.geojson"
    geom.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": ll(cf.rect(0, 0, 1000, 900))}))
    res = cli("edit", "replace", M1, geom, "--dry-run")
    assert res.exit_code == 2 and "not covered by any of its children" in res.output
    res = cli("edit", "replace", M1, geom, "--gap-to", M2, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "dry run: nothing written" in res.output and f"{M1}: 60 households" in res.output
    res = cli("edit", "replace", M1, geom, "--gap-to", M2, "--reason", "CLI 调整", "--if-match", f"{M1}=v1")
    assert res.exit_code == 2 and "has changed since version v1" in res.output
    res = cli("edit", "replace", M1, geom, "--gap-to", M2, "--reason", "CLI 调整")
    assert res.exit_code == 0, res.output
    assert "committed edit" in res.output
    res = cli("history", M1)
    edits_shown = [ln for ln in res.output.splitlines() if ln.startswith("edit ")]
    assert res.exit_code == 0 and [ln.split("  ")[2] for ln in edits_shown] == [
        "import micro by cli",
        "replace by cli: CLI 调整",
    ]
    assert "CLI 调整" in res.output and len([ln for ln in res.output.splitlines() if ln.startswith('"v')]) == 2


def test_map_tiles_show_a_past_date(client, planner, city):
    """Grid tiles with at= draw the boundaries valid then (the map page's "boundaries as of")."""
    import mapbox_vector_tile
    import mercantile

    with city.connect() as conn:
        before = conn.execute(sa.text("SELECT now()")).scalar_one().isoformat()
    res = post(
        client,
        planner,
        {"op": "merge", "codes": [M1, M2], "if_match": {M1: etag_of(client, M1), M2: etag_of(client, M2)}},
    )
    assert res.status_code == 201
    lon, lat = pt(500, 1000)
    t = mercantile.tile(lon, lat, 15)

    def codes(**query):
        data = client.get(f"/tiles/micro/{t.z}/{t.x}/{t.y}.pbf", query_string=query).data
        layer = mapbox_vector_tile.decode(data).get("micro", {"features": []}) if data else {"features": []}
        return {f["properties"]["code"] for f in layer["features"]}

    assert M1 in codes() and M2 not in codes()
    assert {M1, M2} <= codes(at=before)
    assert client.get(f"/tiles/micro/{t.z}/{t.x}/{t.y}.pbf?at=yesterday").status_code == 400


def _rounded(geometry: dict, digits: int) -> dict:
    g = shapely.geometry.shape(geometry)
    return mapping(shapely.transform(g, lambda c: np.round(c, digits)))


@pytest.mark.parametrize("digits", [7, 6])
def test_an_outline_sent_back_as_served_is_no_edit_at_all(client, planner, city, digits):
    """The API serves 7 decimals and Leaflet sends 6: that rounding alone must not open gaps
    (vertices snap back onto the neighbours' within 0.2 m)."""
    geometry = _rounded(client.get(f"/api/v1/grids/{Y1}").get_json()["geometry"], digits)
    res = post(client, planner, {"op": "replace", "code": Y1, "geometry": geometry, "dry_run": True})
    assert res.status_code == 200, res.get_json()
    r = res.get_json()
    assert r["grids"]["after"][Y1]["area_m2"] == pytest.approx(r["grids"]["before"][Y1]["area_m2"], abs=0.5)
    assert all(m["count"] == 0 for m in r["moved"].values())


def test_gap_to_leaves_no_slivers_and_the_neighbour_stays_editable(client, planner, city, cli):
    served = shapely.geometry.shape(client.get(f"/api/v1/grids/{M1}").get_json()["geometry"])
    x0, y0, x1, y1 = served.bounds
    shrunk = _rounded(mapping(shapely.box(x0, y0, x1, y1 - (y1 - y0) * 0.1)), 6)  # as Leaflet would send it
    res = post(
        client,
        planner,
        {"op": "replace", "code": M1, "geometry": shrunk, "gap_to": M2, "if_match": {M2: etag_of(client, M2)}},
        if_match=etag_of(client, M1),
    )
    assert res.status_code == 201, res.get_json()
    with city.connect() as conn:
        parts = conn.execute(
            sa.text("SELECT ST_NumGeometries(geom) FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": M2}
        ).scalar_one()
    assert parts == 1
    validate_ok(cli)
    again = _rounded(client.get(f"/api/v1/grids/{M2}").get_json()["geometry"], 7)
    res = post(client, planner, {"op": "replace", "code": M2, "geometry": again, "dry_run": True})
    assert res.status_code == 200, res.get_json()


def test_a_line_drawn_along_a_boundary_splits_exactly_on_it(client, planner, city, cli):
    (ax, ay), (bx, by) = pt(-10, 1000), pt(1010, 1000)
    line = {"type": "LineString", "coordinates": [[round(ax, 6), round(ay, 6)], [round(bx, 6), round(by, 6)]]}
    res = post(client, planner, {"op": "split", "code": Y1, "line": line}, if_match=etag_of(client, Y1))
    assert res.status_code == 201, res.get_json()
    validate_ok(cli)


def test_if_match_header_is_the_first_grids_and_428_says_where_the_others_go(client, planner, city):
    body = {"op": "merge", "codes": [M1, M2]}
    res = post(client, planner, body, if_match=etag_of(client, M1))
    assert res.status_code == 428
    assert f'"if_match": {{"{M2}": "{etag_of(client, M2)}"}} in the body' in res.get_json()["error"]["message"]
    res = post(client, planner, {**body, "if_match": {M2: etag_of(client, M2)}}, if_match=etag_of(client, M1))
    assert res.status_code == 201


def test_rejection_names_the_largest_problem_first_and_hints_gap_to(client, planner, city):
    res = post(client, planner, {"op": "retire", "code": M2, "dry_run": True})
    msg = res.get_json()["error"]["message"]
    assert res.status_code == 422 and "name the sibling that takes it with gap_to" in msg
