"""A courtyard split whose line crosses micro-grids says which, and splits them with it on request
(issue #15 item 4): the README's own example, on the small test city and through the API."""

from __future__ import annotations

import json

import sqlalchemy as sa
from test_edits import etag_of, post, pt, validate_ok

import cityfactory

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"
SCHOOL = "410199001001S01"


def _cut(tmp_path):
    """A line straight across Y1 from south to north (x = 500 m), through both its micro-grids."""
    path = tmp_path / "cut.geojson"
    line = {"type": "LineString", "coordinates": [pt(500, -10), pt(500, 2010)]}
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": line}))
    return path


def test_the_line_names_the_children_it_cuts(city, cli, tmp_path):
    res = cli("edit", "split", Y1, "--line", _cut(tmp_path), "--dry-run")
    assert res.exit_code == 2
    error = res.output.strip().splitlines()[-1]
    assert error == (
        f"gridmap: error: split rejected: the line cuts micro grids {M1}, {M2} of {Y1}; split them along it "
        "too with --cascade, or draw the line along their edges"
    )
    assert "not covered by any of its children" not in res.output


def test_cascade_splits_the_children_too(city, cli, tmp_path):
    res = cli("edit", "split", Y1, "--line", _cut(tmp_path), "--cascade", "--dry-run", "--format", "json")
    assert res.exit_code == 0, res.output
    dry = json.loads(res.output)
    assert sorted(dry["closed"]) == [Y1, M1, M2]
    res = cli("edit", "split", Y1, "--line", _cut(tmp_path), "--cascade", "--format", "json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.output)
    yards = [c for c in done["opened"] if len(c) == len(Y1)]
    micro = [c for c in done["opened"] if len(c) == len(M1)]
    assert len(yards) == 2 and len(micro) == 4 and sorted(done["opened"]) == sorted(dry["opened"])
    assert {c[: len(Y1)] for c in micro} == set(yards)  # each piece numbered under its new courtyard
    after = done["grids"]["after"]
    assert sum(after[c]["households"] for c in yards) == sum(after[c]["households"] for c in micro) == 120
    validate_ok(cli)
    assert cli("validate").exit_code == 0  # households and population add up too


def test_cascade_over_the_api(client, city, bearer):
    line = {"type": "LineString", "coordinates": [pt(500, -10), pt(500, 2010)]}
    res = post(client, bearer("planner"), {"op": "split", "code": Y1, "line": line, "dry_run": True})
    assert res.status_code == 422
    assert [p["kind"] for p in res.get_json()["error"]["detail"]["problems"]] == ["child_cut", "child_cut"]
    assert "with cascade" in res.get_json()["error"]["message"]
    res = post(
        client,
        bearer("planner"),
        {"op": "split", "code": Y1, "line": line, "cascade": True},
        if_match=etag_of(client, Y1),
    )
    assert res.status_code == 201, res.get_json()


def test_a_cascade_through_grids_with_children_of_their_own_is_refused_until_they_are_split(city, cli, tmp_path):
    """A community split whose line cuts courtyards that hold micro-grids would leave those micro-grids
    under closed courtyards (a cascade goes one level down): refused, naming them; once the courtyards
    are split along the same line, the community's split cuts nothing and everything validates (its
    school, a special grid, follows the part holding it: before, it was left under the closed community)."""
    community = Y1[:-3]
    path = tmp_path / "across.geojson"  # west to east at y = 500 m, across the community's two courtyards
    line = {"type": "LineString", "coordinates": [pt(-10, 500), pt(2010, 500)]}
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": line}))
    y2 = community + "002"
    res = cli("edit", "split", community, "--line", path, "--cascade")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        f"gridmap: error: split rejected: the line cuts courtyard grids {Y1}, {y2} of {community}, which have "
        f"micro grids of their own; a cascade goes one level down: split them first along the same line "
        f"(with --cascade), then {community}"
    )
    for yard in (Y1, y2):
        res = cli("edit", "split", yard, "--line", path, "--cascade")
        assert res.exit_code == 0, res.output
    res = cli("edit", "split", community, "--line", path)
    assert res.exit_code == 0, res.output
    validate_ok(cli)
    assert cli("validate").exit_code == 0


def test_a_street_cascade_through_communities_without_courtyards_takes_their_school_along(engine, cli, tmp_path):
    """A city imported down to communities and their special grids only (courtyards not drawn yet): a
    street split with cascade cuts the communities, and the school of the one it cuts goes to the new
    community holding it (the street's own children are communities; the school is a grandchild)."""
    c = cityfactory.city()
    for level in ("courtyard", "micro", "building"):
        c[level] = []
    cityfactory.load(cli, c, tmp_path)
    street = Y1[:-6]
    path = tmp_path / "across.geojson"  # west to east at y = 1000 m: through community 001 (y 0..2000)
    line = {"type": "LineString", "coordinates": [pt(-10, 1000), pt(2010, 1000)]}
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": line}))
    res = cli("edit", "split", street, "--line", path, "--cascade", "--format", "json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.output)
    communities = sorted(g for g in done["opened"] if len(g) == len(street) + 3)
    assert len(communities) == 2  # community 001 in two pieces; 002 (y 2000..4000) only re-parented
    with engine.connect() as conn:
        parent = conn.execute(
            sa.text("SELECT parent_code FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": SCHOOL}
        ).scalar_one()
        south = conn.execute(
            sa.text(
                "SELECT code FROM grid WHERE code = ANY(:cs) AND valid_to IS NULL "
                "AND ST_Covers(geom, (SELECT geom FROM grid WHERE code = :s AND valid_to IS NULL))"
            ),
            {"cs": communities, "s": SCHOOL},
        ).scalar_one()
    assert parent == south
    validate_ok(cli)
