"""Boundary edits of micro-grids that hold floors of a shared tower (issue #14 item 2: every floor of
every unit in exactly one micro-grid, households adding up from floors to grids to courtyards) keep
that true: a merge, a retire into a sibling and a courtyard split whose line runs through the tower
(cascaded into its micro-grids) each commit, and ``gridmap validate`` finds nothing after them.

Before: a merge kept only the first grid's floors (the second's were in no grid), the cascaded split
was refused for an overlap of the two sharers' pieces on the tower's own footprint, and with that
passed it gave the floors to the wrong grids and counted households by whole units."""

from __future__ import annotations

import json

import shapely
import sqlalchemy as sa
from test_edits import ll, pt
from test_floors_store import YARD, shares_of, tower_city

from gridmap.domain import membership
from gridmap.domain.membership import ShareRow

import cityfactory as cf

Y1 = YARD.format(1)
TOWER = f"{Y1}B001"


def _partitioned(engine, cli, tmp_path) -> list:
    cf.load(cli, tower_city(), tmp_path)
    assert cli("partition", "--courtyard", Y1).exit_code == 0
    assert cli("validate").exit_code == 0
    return shares_of(engine, Y1)


def _every_floor_once(rows) -> None:
    for unit in (1, 2):
        floors = sorted(f for r in rows if r[1] == TOWER and r[2] == unit for f in range(r[3], r[4] + 1))
        assert floors == list(range(1, 34)), (unit, rows)


def _households(engine, codes) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.text("SELECT code, households FROM grid WHERE valid_to IS NULL AND code = ANY(:c)"),
                {"c": list(codes)},
            ).all()
        )


def _sharers(rows) -> tuple[str, str]:
    """Two micro-grids holding floors of the same unit (the lowest run and the one above it)."""
    unit1 = sorted((r for r in rows if r[2] == 1), key=lambda r: r[3])
    assert len({r[0] for r in unit1}) > 1, rows  # the partitioner split the tall unit by floors
    return unit1[0][0], next(r[0] for r in unit1 if r[0] != unit1[0][0])


def test_a_merge_of_two_grids_sharing_a_unit_keeps_every_floor(engine, cli, tmp_path):
    rows = _partitioned(engine, cli, tmp_path)
    a, b = _sharers(rows)
    held = sum(r[5] for r in rows if r[0] in (a, b))
    res = cli("edit", "merge", a, b, "--dry-run", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["grids"]["after"][a]["households"] == held
    res = cli("edit", "merge", a, b, "--format", "json")
    assert res.exit_code == 0, res.output
    after = shares_of(engine, Y1)
    _every_floor_once(after)
    assert b not in {r[0] for r in after}
    assert sum(r[5] for r in after if r[0] == a) == held == _households(engine, [a])[a]
    res = cli("validate")
    assert res.exit_code == 0, res.output


def test_a_retired_sharer_leaves_its_floors_to_the_grid_that_takes_its_ground(engine, cli, tmp_path):
    rows = _partitioned(engine, cli, tmp_path)
    a, b = _sharers(rows)
    res = cli("edit", "retire", b, "--gap-to", a, "--format", "json")
    assert res.exit_code == 0, res.output
    after = shares_of(engine, Y1)
    _every_floor_once(after)
    mine = {(r[1], r[2], f) for r in rows if r[0] in (a, b) for f in range(r[3], r[4] + 1)}
    assert {(r[1], r[2], f) for r in after if r[0] == a for f in range(r[3], r[4] + 1)} == mine
    res = cli("validate")
    assert res.exit_code == 0, res.output


def _line(tmp_path, y: float):
    cut = tmp_path / f"cut{y}.geojson"  # west to east across courtyard 1 at y metres
    line = {"type": "LineString", "coordinates": [pt(-10, y), pt(1010, y)]}
    cut.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": line}))
    return cut


def test_a_courtyard_split_cascades_into_grids_sharing_a_tower_and_validates(engine, cli, tmp_path):
    before = _partitioned(engine, cli, tmp_path)
    cut = _line(tmp_path, 300)  # south of the tower (y 400-416), across the grids sharing it
    res = cli("edit", "split", Y1, "--line", cut, "--cascade", "--dry-run", "--format", "json")
    assert res.exit_code == 0, res.output
    dry = json.loads(res.output)
    sharers = {r[0] for r in before}
    assert sharers & set(dry["closed"])  # the line cuts grids that hold floors of the tower
    res = cli("edit", "split", Y1, "--line", cut, "--cascade", "--format", "json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.output)
    assert done["grids"]["after"] == dry["grids"]["after"]  # the preview counted what the commit wrote
    yards = [c for c in done["opened"] if len(c) == len(Y1)]
    with engine.connect() as conn:
        home = conn.execute(
            sa.text("SELECT courtyard_code FROM building WHERE code = :b AND valid_to IS NULL"), {"b": TOWER}
        ).scalar()
    assert home in yards
    after = shares_of(engine, home)
    _every_floor_once(after)
    assert sum(r[5] for r in after) == 198 == done["grids"]["after"][home]["households"]
    counted = _households(engine, {r[0] for r in after})
    assert all(counted[c] == sum(r[5] for r in after if r[0] == c) for c in counted)
    res = cli("validate")
    assert res.exit_code == 0, res.output


def test_a_courtyard_split_through_a_shared_tower_is_refused_naming_it(engine, cli, tmp_path):
    before = _partitioned(engine, cli, tmp_path)
    res = cli("edit", "split", Y1, "--line", _line(tmp_path, 408), "--cascade")
    assert res.exit_code == 2
    error = res.output.strip().splitlines()[-1]
    assert error.startswith("gridmap: error: split rejected: micros ") and "overlap by" in error
    assert f"on the footprint of building {TOWER}, whose floors they do not both hold; draw the line" in error
    assert shares_of(engine, Y1) == before  # nothing written


def test_a_renamed_sharer_keeps_its_floors_and_its_parts(engine, cli, tmp_path):
    rows = _partitioned(engine, cli, tmp_path)
    code = rows[0][0]
    with engine.begin() as conn:  # declared in two parts (a road): a rename keeps the declaration
        conn.execute(sa.text("UPDATE grid SET multipart = true WHERE code = :c AND valid_to IS NULL"), {"c": code})
    update = tmp_path / "rename.json"
    update.write_text(json.dumps({"op": "update", "code": code, "properties": {"name": "一号网格"}}))
    res = cli("edit", "apply", update)
    assert res.exit_code == 0, res.output
    assert shares_of(engine, Y1) == rows  # the new version holds the same floors
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT multipart FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code}
        ).scalar()
    res = cli("validate")
    assert res.exit_code == 0, res.output


def _uneven_tower_city():
    """tower_city with floors of unequal households (2 on the ground floor, 4 at the top): spread evenly
    they would not add up the same."""
    c = tower_city()
    tower = next(b for b in c["building"] if b["code"] == TOWER)
    tower["floor_households"] = json.dumps([[2] + [3] * 31 + [4] for _ in range(2)])
    return c


def test_a_courtyard_merge_moves_the_tower_with_its_floors_and_flags(engine, cli, tmp_path):
    cf.load(cli, _uneven_tower_city(), tmp_path)
    assert cli("partition", "--courtyard", Y1).exit_code == 0
    micro = sorted({r[0] for r in shares_of(engine, Y1)})
    with engine.begin() as conn:  # a grid cut by a road: declared in two parts, it must stay so when moved
        conn.execute(sa.text("UPDATE grid SET multipart = true WHERE code = :c AND valid_to IS NULL"), {"c": micro[0]})
    assert cli("validate").exit_code == 0
    y2 = YARD.format(2)
    res = cli("edit", "merge", y2, Y1, "--format", "json")  # Y1 retires into Y2: the tower moves there
    assert res.exit_code == 0, res.output
    with engine.connect() as conn:
        floors = conn.execute(
            sa.text(
                "SELECT b.courtyard_code, u.floors, u.floor_households FROM unit u JOIN building b "
                "ON b.id = u.building_id WHERE b.code = :b AND b.valid_to IS NULL ORDER BY u.number"
            ),
            {"b": TOWER},
        ).all()
        multipart = conn.execute(
            sa.text("SELECT multipart FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": micro[0]}
        ).scalar()
    assert [tuple(r) for r in floors] == [(y2, 33, [2] + [3] * 31 + [4])] * 2
    assert multipart is True
    _every_floor_once(shares_of(engine, y2))
    res = cli("validate")
    assert res.exit_code == 0, res.output


def _stale_count(engine, cli, tmp_path) -> tuple[str, int]:
    """The partitioned tower city with its first micro-grid's count set by hand 5 above its floors'
    sum: (its code, the households its floors hold)."""
    rows = _partitioned(engine, cli, tmp_path)
    code = rows[0][0]
    held = sum(r[5] for r in rows if r[0] == code)
    update = tmp_path / "update.json"
    update.write_text(json.dumps({"op": "update", "code": code, "properties": {"households": held + 5}}))
    assert cli("edit", "apply", update).exit_code == 0
    return code, held


def test_a_moved_grid_whose_count_disagrees_with_its_floors_is_recounted_in_the_preview(engine, cli, tmp_path):
    code, held = _stale_count(engine, cli, tmp_path)
    y2 = YARD.format(2)
    res = cli("edit", "merge", y2, Y1, "--dry-run", "--format", "json")  # opens no micro-grid, moves Y1's
    assert res.exit_code == 0, res.output
    grids = json.loads(res.output)["grids"]
    assert grids["before"][code]["households"] == held + 5 and grids["after"][code]["households"] == held
    assert cli("edit", "merge", y2, Y1).exit_code == 0
    assert _households(engine, [code])[code] == held


def test_a_courtyard_split_between_its_grids_gives_each_part_its_grids_population(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    with engine.begin() as conn:  # two grids of very different population (60 households each)
        for code, pop in ((f"{Y1}01", 100), (f"{Y1}02", 300), (Y1, 400)):
            conn.execute(
                sa.text("UPDATE grid SET population = :p WHERE code = :c AND valid_to IS NULL"), {"p": pop, "c": code}
            )
        conn.execute(
            sa.text("UPDATE grid SET population = population + 400 WHERE code = ANY(:c) AND valid_to IS NULL"),
            {"c": ["410199001001", "410199001", "410199"]},
        )
    assert cli("validate").exit_code == 0
    res = cli("edit", "split", Y1, "--line", _line(tmp_path, 1000), "--format", "json")  # between the two
    assert res.exit_code == 0, res.output
    after = json.loads(res.output)["grids"]["after"]
    assert sorted(v["population"] for v in after.values()) == [100, 300]
    res = cli("validate")
    assert res.exit_code == 0, res.output


def test_counts_given_in_an_edit_are_the_named_grids_only(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    m1, m2 = f"{Y1}01", f"{Y1}02"
    edit = tmp_path / "replace.json"  # m1 gives up its building to m2, and says its own count
    edit.write_text(
        json.dumps(
            {
                "op": "replace",
                "code": m1,
                "geometry": ll(cf.rect(0, 0, 1000, 50)),
                "gap_to": m2,
                "properties": {"households": 5},
            }
        )
    )
    res = cli("edit", "apply", edit)
    assert res.exit_code == 0, res.output
    assert _households(engine, [m1, m2]) == {m1: 5, m2: 120}  # m2 holds both buildings' floors now
    assert sum(r[5] for r in shares_of(engine, Y1) if r[0] == m2) == 120


def test_a_community_split_through_courtyards_not_yet_partitioned_adds_up(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path, levels=[lv for lv in cf.LEVEL_FILES if lv != "micro"])
    with engine.begin() as conn:  # courtyards whose buildings say their households, no micro-grids yet
        conn.execute(sa.text("UPDATE grid SET population = households * 3 WHERE valid_to IS NULL"))
    assert cli("validate").exit_code == 0
    community = Y1[:-3]
    cut = tmp_path / "across.geojson"  # at y = 1500 m: across both courtyards, north of their buildings
    line = {"type": "LineString", "coordinates": [pt(-10, 1500), pt(2010, 1500)]}
    cut.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": line}))
    res = cli("edit", "split", community, "--line", cut, "--cascade", "--format", "json")
    assert res.exit_code == 0, res.output
    after = json.loads(res.output)["grids"]["after"]
    parts = [c for c in after if len(c) == len(community)]
    assert sorted(after[c]["households"] for c in parts) == [0, 240]  # the courtyards' pieces, summed
    res = cli("validate")
    assert res.exit_code == 0, res.output


def test_moved_grids_of_a_city_without_buildings_keep_their_counts(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path, levels=[lv for lv in cf.LEVEL_FILES if lv != "building"])
    assert cli("validate").exit_code == 0
    res = cli("edit", "merge", YARD.format(2), Y1, "--format", "json")  # Y1's grids move to Y2, as they are
    assert res.exit_code == 0, res.output
    assert _households(engine, [f"{Y1}01", f"{Y1}02"]) == {f"{Y1}01": 60, f"{Y1}02": 60}
    res = cli("validate")
    assert res.exit_code == 0, res.output


# --- the rule itself (domain, no database) -----------------------------------------------------------


def _box(x0, y0, x1, y1):
    return shapely.box(113.7 + x0 * 1e-4, 34.7 + y0 * 1e-4, 113.7 + x1 * 1e-4, 34.7 + y1 * 1e-4)


def _unit(number, courtyard="Y1", floors=10, per_floor=2):
    feet = _box(4, 4, 6, 5)  # one building, units side by side: unit 1 west, unit 2 east
    spot = shapely.Point(113.7 + (4.5 if number == 1 else 5.5) * 1e-4, 34.7 + 4.5e-4)
    return membership.UnitAfter("B1", courtyard, number, (per_floor,) * floors, feet, spot)


def test_floors_of_a_grid_that_ends_go_to_the_grid_drawn_over_its_ground():
    rows = [ShareRow("A", "B1", 1, 1, 10, 20), ShareRow("X", "B1", 2, 1, 4, 8), ShareRow("A", "B1", 2, 5, 10, 12)]
    # X (the east half) is merged into A: A's new ground covers both; the floors of X are A's now
    after = {"A": (_box(0, 0, 10, 10), "Y1")}
    out = membership.follow_edit(rows, after, {"A"}, set(), {"X": _box(5, 0, 10, 10)}, [_unit(1), _unit(2)])
    assert out == [ShareRow("A", "B1", 1, 1, 10, 20), ShareRow("A", "B1", 2, 1, 10, 20)]  # runs joined


def test_floors_of_a_cut_grid_go_to_the_piece_over_the_building_not_to_a_neighbour():
    rows = [ShareRow("A", "B1", 1, 1, 10, 20), ShareRow("X", "B1", 2, 1, 10, 20)]
    # X cut in two pieces P (over the building) and Q; A, a neighbour holding unit 1, goes on as it was
    after = {"A": (_box(0, 0, 5, 10), "Y1"), "P": (_box(5, 0, 10, 5), "Y1"), "Q": (_box(5, 5, 10, 10), "Y1")}
    closed = {"X": _box(5, 0, 10, 10)}
    out = membership.follow_edit(rows, after, {"P", "Q"}, set(), closed, [_unit(1), _unit(2)])
    assert out == [ShareRow("A", "B1", 1, 1, 10, 20), ShareRow("P", "B1", 2, 1, 10, 20)]


def test_floors_whose_grid_no_longer_reaches_the_building_go_to_the_grid_holding_the_unit():
    rows = [ShareRow("A", "B1", 1, 1, 6, 12), ShareRow("C", "B1", 1, 7, 10, 8), ShareRow("C", "B1", 2, 1, 10, 20)]
    # A's new ground stops short of the building: its floors go to C, whose ground holds the unit
    after = {"A": (_box(0, 0, 3, 10), "Y1"), "C": (_box(3, 0, 10, 10), "Y1")}
    out = membership.follow_edit(rows, after, {"A", "C"}, set(), {}, [_unit(1), _unit(2)])
    assert out == [ShareRow("C", "B1", 1, 1, 10, 20), ShareRow("C", "B1", 2, 1, 10, 20)]


def test_floors_of_a_building_moved_to_another_courtyard_go_to_a_grid_there():
    rows = [ShareRow("A", "B1", 1, 1, 10, 20), ShareRow("A", "B1", 2, 1, 10, 20)]
    # the building now belongs to courtyard Y2 (a courtyard edit moved it): A, in Y1, holds nothing of it
    after = {"A": (_box(0, 0, 10, 10), "Y1"), "D": (_box(3, 3, 7, 7), "Y2")}
    units = [_unit(1, "Y2"), _unit(2, "Y2")]
    out = membership.follow_edit(rows, after, {"D"}, {"A"}, {}, units)
    assert out == [ShareRow("D", "B1", 1, 1, 10, 20), ShareRow("D", "B1", 2, 1, 10, 20)]


def test_a_recount_of_a_moved_grid_keeps_its_population(engine, cli, tmp_path):
    """A micro-grid whose count was made by hand (floors unchanged) is recounted when an edit moves it;
    its people are the same people: its population stays, and every level still adds up (before, the
    population was scaled by the count, 5 households fewer took 13 people off its courtyard only)."""
    code, held = _stale_count(engine, cli, tmp_path)
    before = 300
    with engine.begin() as conn:  # 300 people in it, and so in every grid above it
        for c in (code, Y1, Y1[:12], Y1[:9], Y1[:6]):
            conn.execute(
                sa.text("UPDATE grid SET population = population + :p WHERE code = :c AND valid_to IS NULL"),
                {"p": before, "c": c},
            )
    assert cli("edit", "merge", YARD.format(2), Y1).exit_code == 0
    with engine.connect() as conn:
        after = conn.execute(
            sa.text("SELECT households, population FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code}
        ).one()
    assert tuple(after) == (held, before)
    res = cli("validate")
    assert res.exit_code == 0, res.output
