"""Floors end to end on the real PostGIS: towers partitioned by floors and committed with their shares, a
courtyard in two parts, --all going on past a failed courtyard, the membership file, and every new
integrity rule failing on data made to break it (and agreeing with PostGIS on the geometry as stored)."""

import json
import time

import pandas as pd
import shapely
import sqlalchemy as sa

import cityfactory as cf

YARD = "41019900100100{}"


def tower_city(units="99;99", floors=33, per_floor=3):
    """The test city with courtyard 1's two slabs replaced by one tower of two tall units."""
    c = cf.city()
    c["building"] = [b for b in c["building"] if b["courtyard_code"] != YARD.format(1)]
    c["building"].append(
        {
            "code": f"{YARD.format(1)}B001",
            "name": "1号楼",
            "number": "1号楼",
            "courtyard_code": YARD.format(1),
            "floors": floors,
            "units": units,
            "floor_households": json.dumps([[per_floor] * floors for _ in units.split(";")]),
            "geometry": cf.rect(400, 400, 436, 416),
        }
    )
    hh = sum(int(u) for u in units.split(";"))
    for lvl, code in (
        ("courtyard", YARD.format(1)),
        ("community", "410199001001"),
        ("street", "410199001"),
        ("district", "410199"),
    ):
        row = cf.find(c, lvl, code)
        row["households"] += hh - 120
    for m in c["micro"]:  # the old micro-grids: 60 each, split the tower's total between them
        if m["parent_code"] == YARD.format(1):
            m["households"] = hh // 2 + (hh % 2 if m["code"].endswith("01") else 0)
    return c


def shares_of(engine, yard):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT g.code, s.building_code, s.unit, s.floor_from, s.floor_to, s.households FROM grid_share s "
                "JOIN grid g ON g.id = s.grid_id WHERE g.valid_to IS NULL AND g.parent_code = :y ORDER BY 1, 3, 4"
            ),
            {"y": yard},
        ).all()


def test_tower_partitioned_by_floors_commits_shares_that_validate(engine, cli, tmp_path):
    cf.load(cli, tower_city(), tmp_path)
    res = cli("partition", "--courtyard", YARD.format(1), "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    s = report["summary"]
    assert s["micro_grids"] == 3 and s["households_in_band_share"] == 1.0 and s["units_split_by_floor"] >= 1
    assert s["buildings_shared"] == 1 and s["largest_grid"]["households"] <= 70 and report["written"]["shares"] >= 3
    rows = shares_of(engine, YARD.format(1))
    # every floor of both units once, households from the floors
    for unit in (1, 2):
        ranges = sorted((r[3], r[4]) for r in rows if r[2] == unit)
        assert ranges[0][0] == 1 and ranges[-1][1] == 33
        assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:]))
    assert sum(r[5] for r in rows) == 198
    res = cli("validate")
    assert res.exit_code == 0, res.output
    out = tmp_path / "shares.csv"
    assert cli("export", "--level", "share", "--format", "csv", out).exit_code == 0
    # utf-8-sig: the CSV export starts with a byte-order mark so that Excel reads it as UTF-8
    header = out.read_text(encoding="utf-8-sig").splitlines()[0]
    assert header == "building,unit,floor_from,floor_to,micro_code,households"


def test_validate_catches_floors_in_no_grid_or_two_and_wrong_households(engine, cli, tmp_path):
    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    assert cli("validate").exit_code == 0
    rows = shares_of(engine, YARD.format(1))
    code, building, unit, f0, f1, hh = rows[0]
    with engine.begin() as conn:  # floors f0..f1 of the unit also in a second grid, with wrong households
        other = next(r[0] for r in rows if r[0] != code)
        conn.execute(
            sa.text(
                "INSERT INTO grid_share SELECT id, :b, :u, :f0, :f1, :hh FROM grid WHERE code = :c AND valid_to IS NULL"
            ),
            {"b": building, "u": unit, "f0": f0, "f1": f1, "hh": hh + 1, "c": other},
        )
    res = cli("validate", "--format", "json")
    kinds = {p["kind"] for p in json.loads(res.output)["problems"]}
    assert res.exit_code == 1 and {"floor_twice", "share_households", "grid_households"} <= kinds
    with engine.begin() as conn:  # drop both: the floors are in no grid
        conn.execute(
            sa.text("DELETE FROM grid_share WHERE building_code = :b AND unit = :u AND floor_from = :f0"),
            {"b": building, "u": unit, "f0": f0},
        )
    res = cli("validate", "--format", "json")
    problems = json.loads(res.output)["problems"]
    assert any(p["kind"] == "floor_unassigned" and f"floors {f0}-{f1} of unit {unit}" in p["message"] for p in problems)


def test_siblings_may_overlap_on_a_shared_tower_only(engine, cli, tmp_path):
    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    with engine.connect() as conn:
        pairs = conn.execute(
            sa.text("""
            SELECT a.code, b.code FROM grid a JOIN grid b ON a.parent_code = b.parent_code AND a.code < b.code
            WHERE a.valid_to IS NULL AND b.valid_to IS NULL AND a.parent_code = :y
              AND ST_Area(ST_Intersection(a.geom, b.geom)::geography) > 1"""),
            {"y": YARD.format(1)},
        ).all()
    assert pairs  # grids sharing the tower overlap on its footprint, and validate accepts it
    assert cli("validate").exit_code == 0
    a, b = pairs[0]
    with engine.begin() as conn:  # grow one of them over the other's open ground
        conn.execute(
            sa.text(
                "UPDATE grid SET geom = ST_Multi(ST_Union(geom, (SELECT ST_Buffer(ST_Centroid(g.geom), 0.0002) "
                "FROM grid g WHERE g.code = :b AND g.valid_to IS NULL))) WHERE code = :a AND valid_to IS NULL"
            ),
            {"a": a, "b": b},
        )
    kinds = {p["kind"] for p in json.loads(cli("validate", "--format", "json").output)["problems"]}
    assert "overlap" in kinds


def test_grid_in_two_pieces_is_a_problem_unless_multipart(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    assert cli("validate").exit_code == 0
    code = f"{YARD.format(1)}01"
    with engine.begin() as conn:  # an edit-like change: a hole cut right across the grid
        conn.execute(
            sa.text(
                "UPDATE grid SET geom = ST_Multi(ST_Difference(geom, ST_Buffer(ST_MakeLine("
                "ST_MakePoint(0, ST_Y(ST_Centroid(geom))), ST_MakePoint(200, ST_Y(ST_Centroid(geom)))), 0.00001)"
                "::geometry(Polygon, 4326))) WHERE code = :c AND valid_to IS NULL"
            ),
            {"c": code},
        )
    problems = json.loads(cli("validate", "--format", "json").output)["problems"]
    assert any(p["kind"] == "disconnected" and p["codes"] == [code] for p in problems)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE grid SET multipart = true WHERE code = :c AND valid_to IS NULL"), {"c": code})
    problems = json.loads(cli("validate", "--format", "json").output)["problems"]
    assert not any(p["kind"] == "disconnected" for p in problems)


def test_courtyard_in_two_parts_and_all_going_on_past_a_failure(engine, cli, tmp_path):
    c = cf.city()
    yard = cf.find(c, "courtyard", YARD.format(2))
    road = cf.rect(1000, 990, 2000, 1010)  # a public road across courtyard 2
    yard["geometry"] = shapely.difference(yard["geometry"], road)
    for m in c["micro"]:
        if m["parent_code"] == YARD.format(2):
            m["geometry"] = shapely.difference(m["geometry"], road)
    # courtyard 3 loses its buildings: it cannot be planned, the others go on
    c["building"] = [b for b in c["building"] if b["courtyard_code"] != "410199001002001"]
    for lvl, code, hh in (
        ("courtyard", "410199001002001", 0),
        ("community", "410199001002", 120),
        ("street", "410199001", 360),
        ("district", "410199", 840),
    ):
        cf.find(c, lvl, code)["households"] = hh
    for m in c["micro"]:
        if m["parent_code"] == "410199001002001":
            m["households"] = 0
    cf.load(cli, c, tmp_path)
    res = cli("partition", "--all", "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["failed"] == [
        {"courtyard": "410199001002001", "reason": "courtyard 410199001002001 has no buildings: nothing to partition"}
    ]
    assert report["summary"]["micro_grids"] == 14 and report["written"]["opened"] == 14
    assert cli("validate", "--level", "micro").exit_code == 0


def test_a_server_answers_from_the_shares_it_holds_while_it_reads_new_ones(engine, cli, tmp_path):
    """After the shares change, a server's lookup answers at once from the shares it held (reading a
    city's shares took every request thread a second or more after each edit) and, once its own
    thread has read them, from the new ones."""
    from gridmap.services.locator import Locator

    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    lon, lat = shapely.get_coordinates(cf.frame([{"geometry": cf.rect(418, 408, 418.1, 408.1)}]).geometry[0].centroid)[
        0
    ]
    locator = Locator(engine, background=True)
    before = locator.lookup(lon, lat)
    assert before["shared_building"]["building"] == f"{YARD.format(1)}B001"
    held = locator._members
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grid_share"))  # moves the epoch
    assert "shared_building" in locator.lookup(lon, lat)  # the held shares, not a wait for the new
    deadline = time.monotonic() + 30
    while "shared_building" in locator.lookup(lon, lat):
        assert time.monotonic() < deadline, "the new shares were never read"
        time.sleep(0.05)
    assert locator._members is not held and not locator._members[3]  # no building shared any more


def test_lookup_of_a_shared_tower_by_point_and_by_address_with_floor(engine, cli, tmp_path):
    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    rows = shares_of(engine, YARD.format(1))
    holders = sorted({r[0] for r in rows})
    lon, lat = shapely.get_coordinates(cf.frame([{"geometry": cf.rect(418, 408, 418.1, 408.1)}]).geometry[0].centroid)[
        0
    ]
    body = json.loads(cli("lookup", lon, lat).output)
    assert body["inside"] and body["shared_building"]["building"] == f"{YARD.format(1)}B001"
    assert body["micro_grids"] == holders  # every grid sharing the tower, with its floors
    assert {
        (h["code"], f["unit"], f["floor_from"], f["floor_to"])
        for h in body["shared_building"]["grids"]
        for f in h["floors"]
    } == {(r[0], r[2], r[3], r[4]) for r in rows}
    # an address with a floor, or a room, answers with exactly the grid holding that floor
    for unit, floor in ((1, 1), (1, 33), (2, 17)):
        want = next(r[0] for r in rows if r[2] == unit and r[3] <= floor <= r[4])
        for address in (f"测试10011花园1号楼{unit}单元{floor}层", f"测试10011花园1号楼{unit}单元{floor}02室"):
            res = cli("lookup", "--address", address)
            assert res.exit_code == 0, res.output
            body = json.loads(res.output)
            assert body["micro"] == want and body["address"]["floor"] == floor
            assert next(c["code"] for c in body["chain"] if c["level"] == "micro") == want
    # a floor above the top is named as such (before: "floor 40 … is in no micro-grid")
    address = "测试10011花园1号楼1单元40层"
    res = cli("lookup", "--address", address)
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == (
        f"gridmap: error: unit 1 of building {YARD.format(1)}B001 has 33 floors: there is no floor 40 ({address!r})"
    )
    # batch assignment uses the floor column when the address has none
    src = tmp_path / "households.csv"
    src.write_text("address,floor\n测试10011花园1号楼1单元,1\n测试10011花园1号楼1单元,33\n", encoding="utf-8")
    out = tmp_path / "placed.csv"
    res = cli("assign", src, out, "--address-col", "address")
    assert res.exit_code == 0, res.output
    placed = pd.read_csv(out)
    assert placed["micro_code"].astype(str).tolist() == [
        next(r[0] for r in rows if r[2] == 1 and r[3] <= f <= r[4]) for f in (1, 33)
    ]


def test_a_command_asks_postgis_for_the_towers_under_a_few_points_and_agrees_with_the_city_read(engine, cli, tmp_path):
    """A command answering a few points reads only the shares of the buildings under them (reading a
    city's shares took a fresh ``gridmap lookup`` a second); the answer equals the one from the whole
    city's shares (a server, or a command with more than FEW_POINTS points)."""
    from gridmap.services import locator as loc

    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    inside = cf.frame([{"geometry": cf.rect(418, 408, 418.1, 408.1)}]).geometry[0].centroid
    outside = cf.frame([{"geometry": cf.rect(5, 5, 5.1, 5.1)}]).geometry[0].centroid  # no building there
    few, server = loc.Locator(engine), loc.Locator(engine, background=True)
    for pt in (inside, outside):
        a, b = few.lookup(pt.x, pt.y), server.lookup(pt.x, pt.y)
        assert a.get("shared_building") == b.get("shared_building")
        assert a.get("micro_grids") == b.get("micro_grids")
    assert few._members is None  # the command never read the city's shares
    assert "shared_building" in few.lookup(inside.x, inside.y)
    many = [{"lon": inside.x, "lat": inside.y}] * (loc.FEW_POINTS + 1)
    bodies = few.lookup_many(many)
    assert few._members is not None  # many points: the city's shares, read once
    assert {b["shared_building"]["building"] for b in bodies} == {f"{YARD.format(1)}B001"}
    assert bodies[0]["shared_building"] == server.lookup(inside.x, inside.y)["shared_building"]


def test_an_edit_that_leaves_a_grid_in_two_pieces_is_rejected(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    code, sibling = f"{YARD.format(1)}01", f"{YARD.format(1)}02"
    # micro-grid 01 (0..1000 x 0..1000) keeps two squares at its ends; its sibling takes the middle strip
    two = shapely.MultiPolygon([cf.rect(0, 0, 400, 1000), cf.rect(600, 0, 1000, 1000)])
    path = cf.write([{"code": code, "geometry": two}], tmp_path, "two")
    res = cli("edit", "replace", code, path, "--gap-to", sibling, "--format", "json")
    assert res.exit_code == 2
    assert f"grid {code} is in 2 separate pieces" in res.output and "not declared multipart" in res.output
    with engine.connect() as conn:  # nothing written
        assert conn.execute(sa.text("SELECT count(*) FROM grid WHERE code = :c"), {"c": code}).scalar() == 1
    # a move of the same border that keeps both in one piece goes through, and validates as stored
    one = cf.rect(0, 0, 600, 1000)
    path = cf.write([{"code": code, "geometry": one}], tmp_path, "one")
    res = cli("edit", "replace", code, path, "--gap-to", sibling)
    assert res.exit_code == 0, res.output
    assert cli("validate").exit_code == 0


def test_membership_file_round_trip_and_bad_rows_named(engine, cli, tmp_path):
    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    before = shares_of(engine, YARD.format(1))
    out = tmp_path / "shares.csv"
    assert cli("export", "--level", "share", "--format", "csv", out).exit_code == 0
    frame = pd.read_csv(out, dtype=str)
    mine = frame[frame["micro_code"].str.startswith(YARD.format(1))]
    # move the boundary between the first two sharers of unit 1 by one floor, and import it back
    unit1 = mine[mine["unit"] == "1"].sort_values("floor_from", key=lambda c: c.astype(int))
    a, b = unit1.index[0], unit1.index[1]
    mine.loc[a, "floor_to"] = str(int(mine.loc[a, "floor_to"]) + 1)
    mine.loc[b, "floor_from"] = str(int(mine.loc[b, "floor_from"]) + 1)
    edited = tmp_path / "edited.csv"
    mine.drop(columns="households").to_csv(edited, index=False)
    res = cli("import", edited, "--level", "share")
    assert res.exit_code == 0, res.output
    after = shares_of(engine, YARD.format(1))
    assert len(after) == len(before) and sum(r[5] for r in after) == sum(r[5] for r in before)
    assert {r[4] for r in after if r[2] == 1} != {r[4] for r in before if r[2] == 1}
    res = cli("validate", "--format", "json")  # the grids' households no longer match their floors: said so
    kinds = {p["kind"] for p in json.loads(res.output)["problems"]}
    assert kinds == {"grid_households"}
    micro = mine["micro_code"].iloc[0]  # a current micro-grid (codes are issued once, so not always ...01)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "building,unit,floor_from,floor_to,micro_code\n"
        f"{YARD.format(1)}B001,1,1,5,{micro}\n{YARD.format(1)}B001,9,1,5,{micro}\n"
    )
    res = cli("import", bad, "--level", "share")
    assert res.exit_code == 2 and f"row 2: building {YARD.format(1)}B001 has no unit 9" in res.output


def test_a_server_keeps_its_shares_without_a_digest_when_no_edit_touched_them(engine, cli, tmp_path, monkeypatch):
    """After an edit of a grid that holds no shares, a server keeps the shares it holds without asking
    PostgreSQL for their digest (migration 0017's count of share and building writes, and the grid
    change log, say nothing they hold moved); an edit of a grid holding shares, or a write to the
    shares, makes it ask; a statement that wrote no share row counts nothing."""
    from gridmap.services.locator import Locator
    from gridmap.store import shares as stored_shares

    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", YARD.format(1)).exit_code == 0
    real, asked = stored_shares.digest, []
    monkeypatch.setattr(stored_shares, "digest", lambda conn: asked.append(1) or real(conn))
    server = Locator(engine, background=True)

    def read_again():
        server._members = server._read_members(server.epoch())
        return server._members

    def rename(code):
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE grid SET name = name || '·' WHERE code = :c AND valid_to IS NULL"), {"c": code}
            )

    first = read_again()
    holding = sorted(first[6])
    with engine.connect() as conn:
        free = conn.execute(
            sa.text("SELECT min(code) FROM grid WHERE valid_to IS NULL AND NOT code = ANY(:h)"),  # a street, say
            {"h": holding},
        ).scalar_one()
    assert holding and free and len(asked) == 1
    rename(free)
    second = read_again()
    assert second[0] > first[0] and second[1] is first[1] and len(asked) == 1  # kept, not asked
    rename(holding[0])
    assert read_again()[1] is first[1] and len(asked) == 2  # asked: same digest, so still kept
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grid_share WHERE false"))  # moves the epoch, writes no row
    assert read_again()[1] is first[1] and len(asked) == 2
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grid_share WHERE unit = (SELECT min(unit) FROM grid_share)"))
    after = read_again()
    assert len(asked) == 3 and after[1] is not first[1] and after[4] != first[4]  # read again
