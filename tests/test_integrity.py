"""`gridmap validate`: each kind of problem built on purpose, with its area and place."""

import json
import re

import pytest
import sqlalchemy as sa

import cityfactory as cf

COURTYARD = "410199001001001"
M1, M2 = COURTYARD + "01", COURTYARD + "02"


def validate(cli, *args):
    res = cli("validate", "--format", "json", *args)
    body = json.loads(res.output)
    return res.exit_code, body["problems"]


def kinds(problems):
    return sorted({p["kind"] for p in problems})


def test_clean_city_passes(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    code, problems = validate(cli)
    assert (code, problems) == (0, [])
    res = cli("validate")
    assert res.exit_code == 0 and "0 problems found in 32 grids (tolerance 1 m²)" in res.output


def test_gap(engine, cli, tmp_path):
    city = cf.city()
    cf.find(city, "micro", M2)["geometry"] = cf.rect(0, 1000, 1000, 1900)  # 100 m strip uncovered
    cf.load(cli, city, tmp_path)
    code, problems = validate(cli)
    assert code == 1 and kinds(problems) == ["gap"]
    (gap,) = problems
    assert gap["codes"] == [COURTYARD]
    assert gap["area_m2"] == pytest.approx(cf.area_m2(cf.rect(0, 1900, 1000, 2000)), rel=1e-4)
    x, y = cf.local_xy(*gap["location"])
    assert 0 <= x <= 1000 and 1900 <= y <= 2000


def test_overlap(engine, cli, tmp_path):
    city = cf.city()
    cf.find(city, "micro", M1)["geometry"] = cf.rect(0, 0, 1000, 1050)  # 50 m into its sibling
    cf.load(cli, city, tmp_path)
    code, problems = validate(cli)
    assert code == 1 and kinds(problems) == ["overlap"]
    assert problems[0]["codes"] == [M1, M2]
    assert problems[0]["area_m2"] == pytest.approx(cf.area_m2(cf.rect(0, 1000, 1000, 1050)), rel=1e-4)


def test_child_sticking_out_of_parent(engine, cli, tmp_path):
    city = cf.city()
    cf.find(city, "courtyard", COURTYARD)["geometry"] = cf.rect(-100, 0, 1000, 2000)
    cf.load(cli, city, tmp_path)
    code, problems = validate(cli)
    assert code == 1
    outside = [p for p in problems if p["kind"] == "outside_parent"]
    assert [p["codes"] for p in outside] == [[COURTYARD, "410199001001"]]
    assert outside[0]["area_m2"] == pytest.approx(cf.area_m2(cf.rect(-100, 0, 0, 2000)), rel=1e-4)
    # the courtyard's own micro-grids now leave the added strip uncovered
    gaps = [p for p in problems if p["kind"] == "gap"]
    assert [p["codes"] for p in gaps] == [[COURTYARD]]


def test_special_grid_across_two_communities(engine, cli, tmp_path):
    city = cf.city()
    city["special"][0]["geometry"] = cf.rect(300, 1950, 400, 2050)
    cf.load(cli, city, tmp_path)
    code, problems = validate(cli)
    assert code == 1
    across = [p for p in problems if p["kind"] == "special_across_communities"]
    assert [p["codes"] for p in across] == [["410199001001S01", "410199001001", "410199001002"]]
    assert across[0]["area_m2"] == pytest.approx(cf.area_m2(cf.rect(300, 2000, 400, 2050)), rel=1e-4)
    assert kinds(problems) == ["outside_parent", "special_across_communities"]


def test_households_must_add_up(engine, cli, tmp_path):
    city = cf.city()
    cf.find(city, "courtyard", COURTYARD)["households"] = 121
    cf.load(cli, city, tmp_path)
    code, problems = validate(cli)
    assert code == 1 and kinds(problems) == ["households_mismatch"]
    messages = sorted(p["message"] for p in problems)
    # the courtyard disagrees with its micro-grids and its buildings; its community with it
    assert any("community 410199001001 has 240 households, its children 241" in m for m in messages)
    assert any(f"courtyard {COURTYARD} has 121 households, its children 120" in m for m in messages)
    assert any("its buildings' units 120" in m for m in messages)


def test_invalid_geometry_and_parent_problems(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    with engine.begin() as conn:
        conn.execute(
            sa.text(  # a bow-tie can only arrive by SQL: imports reject it
                "UPDATE grid SET geom = ST_Multi(ST_GeomFromText('POLYGON((113.70 34.75, 113.71 34.76, 113.71 34.75, "
                "113.70 34.76, 113.70 34.75))', 4326)) WHERE code = :c"
            ),
            {"c": "410199001001S01"},
        )
        conn.execute(sa.text("UPDATE grid SET parent_code = NULL WHERE code = :c"), {"c": M1})
        conn.execute(sa.text("UPDATE grid SET parent_code = 'ghost' WHERE code = :c"), {"c": M2})
        conn.execute(sa.text("UPDATE grid SET parent_code = '410199001' WHERE code = '410199002002001'"))
    code, problems = validate(cli)
    assert code == 1
    by_kind = {p["kind"]: p for p in problems}
    assert "Self-intersection" in by_kind["invalid_geometry"]["message"]
    assert by_kind["missing_parent"]["codes"] == [M1]
    assert by_kind["unknown_parent"]["codes"] == [M2, "ghost"]
    assert by_kind["wrong_parent_level"]["codes"] == ["410199002002001", "410199001"]


def test_tolerance_and_level_filter(engine, cli, tmp_path):
    city = cf.city()
    cf.find(city, "micro", M2)["geometry"] = cf.rect(0, 1000, 1000, 1999.5)  # a 500 m² sliver
    cf.find(city, "community", "410199002002")["households"] = 7
    cf.load(cli, city, tmp_path)
    assert kinds(validate(cli, "--tolerance", "1000")[1]) == ["households_mismatch"]
    assert kinds(validate(cli, "--tolerance", "1")[1]) == ["gap", "households_mismatch"]
    code, problems = validate(cli, "--level", "micro")
    assert code == 1 and kinds(problems) == ["gap"]
    code, problems = validate(cli, "--level", "courtyard")
    assert code == 1 and [p["codes"] for p in problems] == [["410199002002"]]


def test_geojson_and_text_formats(engine, cli, tmp_path):
    city = cf.city()
    cf.find(city, "micro", M1)["geometry"] = cf.rect(0, 0, 1000, 1050)
    cf.load(cli, city, tmp_path)
    res = cli("validate", "--format", "geojson")
    assert res.exit_code == 1
    fc = json.loads(res.output)
    assert fc["type"] == "FeatureCollection" and fc["features"][0]["geometry"]["type"] == "Polygon"
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert 113 < lon < 114 and 34 < lat < 35
    res = cli("validate")
    match = re.match(rf"overlap: micros {M1} and {M2} overlap by ([\d.]+) m² at 113\.\d+,34\.\d+\n", res.output)
    assert res.exit_code == 1 and match
    assert float(match.group(1)) == pytest.approx(cf.area_m2(cf.rect(0, 1000, 1000, 1050)), rel=1e-4)
