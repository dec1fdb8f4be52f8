"""Three-colour risk elements: the roll-up rule, overdue, imports, visits, the API, rules, the demo."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import prcoords
import pytest
import shapely
import sqlalchemy as sa
from test_lookup import Y1, lonlat, replace_micro

from gridmap.domain import risk
from gridmap.errors import InputError
from gridmap.services.resources import load_rules
from gridmap.settings import PACKAGE_LAYERS, Settings
from gridmap.store import db
from gridmap.store import risk as store
from gridmap.web import create_app

import cityfactory as cf

M1, M2 = Y1 + "01", Y1 + "02"  # micro-grids of courtyard Y1: south (y < 1000) and north
Y2 = "410199001001002"  # the next courtyard, x 1000..2000
COMMUNITY, STREET, DISTRICT = "410199001001", "410199001", "410199"
SCHOOL = "410199001001S01"  # special grid at x 300..400, y 300..400 (inside M1)
RULES = risk.Rules()  # 7 / 30 / 90 days; thresholds 1 / 3 / 1
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# --- the pure rule --------------------------------------------------------------------


def chain_frame():
    rows = [
        (DISTRICT, "district", None),
        (STREET, "street", DISTRICT),
        (COMMUNITY, "community", STREET),
        (Y1, "courtyard", COMMUNITY),
        (Y2, "courtyard", COMMUNITY),
        (M1, "micro", Y1),
        (M2, "micro", Y1),
        (Y2 + "01", "micro", Y2),
        (SCHOOL, "special", COMMUNITY),
    ]
    return pd.DataFrame(rows, columns=["code", "level", "parent_code"])


def counts(rows):
    return pd.DataFrame(rows, columns=["micro_code", "red", "yellow", "blue", "overdue"])


def test_rollup_climbs_every_level_and_applies_the_thresholds():
    out = risk.rollup(
        counts([(M1, 0, 2, 1, 1), (M2, 0, 1, 0, 0), (Y2 + "01", 0, 0, 4, 2)]),
        chain_frame(),
        RULES,
        pd.DataFrame([(SCHOOL, 0, 1, 0, 1)], columns=["code", "red", "yellow", "blue", "overdue"]),
    )
    got = {r.code: (r.level, r.colour, r.red, r.yellow, r.blue, r.overdue) for r in out.itertuples()}
    assert got == {
        M1: ("micro", "blue", 0, 2, 1, 1),  # 2 yellow: one short of the threshold
        M2: ("micro", "blue", 0, 1, 0, 0),
        Y1: ("courtyard", "yellow", 0, 3, 1, 1),  # exactly 3 yellow: yellow
        Y2: ("courtyard", "blue", 0, 0, 4, 2),
        Y2 + "01": ("micro", "blue", 0, 0, 4, 2),
        COMMUNITY: ("community", "yellow", 0, 3, 5, 3),
        STREET: ("street", "yellow", 0, 3, 5, 3),
        DISTRICT: ("district", "yellow", 0, 3, 5, 3),
        SCHOOL: ("special", "blue", 0, 1, 0, 1),  # its elements lie in it, not below it
    }


def test_one_red_makes_every_level_red_and_red_counts_towards_yellow():
    out = risk.rollup(counts([(M1, 1, 0, 0, 0), (M2, 0, 2, 0, 0), ("gone", 5, 5, 5, 5)]), chain_frame(), RULES)
    colours = dict(zip(out["code"], out["colour"]))
    assert colours == {M1: "red", M2: "blue", Y1: "red", COMMUNITY: "red", STREET: "red", DISTRICT: "red"}
    # with a red threshold of 2, one red + two yellow = 3 elements of at least yellow
    strict = risk.Rules(red_threshold=2)
    assert (
        dict(
            zip(
                *risk.rollup(counts([(M1, 1, 0, 0, 0), (M2, 0, 2, 0, 0)]), chain_frame(), strict)[
                    ["code", "colour"]
                ].T.values
            )
        )[Y1]
        == "yellow"
    )


def test_level_overrides_and_blue_threshold():
    rules = risk.Rules(blue_threshold=2, levels={"district": {"red_threshold": 5}})
    out = risk.rollup(counts([(M1, 1, 0, 0, 0), (Y2 + "01", 0, 0, 1, 0)]), chain_frame(), rules)
    colours = dict(zip(out["code"], out["colour"]))
    assert colours[DISTRICT] == "blue" and colours[STREET] == "red" and colours[M1] == "red"
    assert colours[Y2 + "01"] is None and colours[Y2] is None  # one blue, below the blue threshold of 2
    assert rules.thresholds("district") == (5, 3, 2) and rules.thresholds("micro") == (1, 3, 2)


def test_overdue_boundary_and_never_visited():
    colour = ["red", "red", "red", "yellow", "blue", "blue"]
    marked = [
        NOW - timedelta(days=7),
        NOW - timedelta(days=7, seconds=1),
        NOW - timedelta(days=30),
        NOW - timedelta(days=31),
        NOW - timedelta(days=400),
        NOW - timedelta(days=400),
    ]
    last = [None, None, NOW - timedelta(days=6), None, NOW - timedelta(days=90), NOW - timedelta(days=91)]
    got = risk.overdue(colour, last, marked, NOW, RULES)
    # exactly 7 days: on time; 7 days + 1 s: overdue; a visit resets the clock; never visited: marked_at
    assert got.tolist() == [False, True, False, True, False, True]
    due = risk.next_visit_due(colour, last, marked, RULES)
    assert pd.Timestamp(due[0]).tz_localize("UTC") == NOW


def test_sql_overdue_agrees_with_numpy(engine):
    cases = [
        ("red", NOW - timedelta(days=7), None),
        ("red", NOW - timedelta(days=7, seconds=1), None),
        ("yellow", NOW - timedelta(days=100), NOW - timedelta(days=30)),
        ("blue", NOW - timedelta(days=100), NOW - timedelta(days=91)),
    ]
    with engine.begin() as conn:
        for colour, marked, last in cases:
            conn.execute(
                sa.text(
                    "INSERT INTO risk_element (kind, colour, name, marked_by, marked_at, last_visit_at, "
                    "geom) VALUES ('thing', :c, 'x', 'y', :m, :l, ST_SetSRID(ST_Point(113.7, 34.75), 4326))"
                ),
                {"c": colour, "m": marked, "l": last},
            )
        sql = (
            conn.execute(sa.text(f"SELECT {store.overdue_sql(RULES)} FROM risk_element e ORDER BY id"), {"at": NOW})
            .scalars()
            .all()
        )
    assert (
        sql
        == risk.overdue(*zip(*[(c, last, m) for c, m, last in cases]), NOW, RULES).tolist()
        == [False, True, False, True]
    )


# --- imports ---------------------------------------------------------------------------


def element_rows(points, **overrides):
    rows = []
    for i, (x, y, colour, kind) in enumerate(points):
        lon, lat = lonlat(x, y)
        rows.append(
            {
                "kind": kind,
                "colour": colour,
                "name": f"要素{i + 1}",
                "reason": "测试",
                "marked_by": "王芳",
                "marked_at": "2026-11-01T08:00:00+08:00",
                "lon": lon,
                "lat": lat,
            }
        )
    frame = pd.DataFrame(rows)
    for key, (row, value) in overrides.items():
        frame.loc[row, key] = value
    return frame


@pytest.fixture
def city(engine, cli, tmp_path, monkeypatch):
    """The test city, with the plain rule at every level (RULES: the shipped file without its
    per-level overrides), so the expected colours below follow from 1 / 3 / 1 alone."""
    import re
    import shutil

    folder = tmp_path / "plain-layers"
    shutil.copytree(PACKAGE_LAYERS, folder)
    text = (folder / "risk.toml").read_text(encoding="utf-8")
    (folder / "risk.toml").write_text(
        re.sub(r"\[rollup\.levels\.[a-z]+\]\n(?:[a-z_]+ = \d+\n)*", "", text), encoding="utf-8"
    )
    monkeypatch.setenv("GRIDMAP_LAYERS", str(folder))
    assert load_rules(Settings.from_env().risk_rules_path).levels == {}
    cf.load(cli, cf.city(), tmp_path)
    return engine


def import_csv(cli, tmp_path, frame, *args, name="elements.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return cli("risk", "import", path, *args)


def micro_codes(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT micro_code FROM risk_element ORDER BY id")).scalars().all()


def test_import_places_points_and_polygons_and_rolls_up(city, cli, tmp_path):
    frame = element_rows(
        [
            (350, 350, "yellow", "person"),
            (500, 1500, "yellow", "event"),
            (600, 1600, "yellow", "thing"),
            (1500, 500, "blue", "organisation"),
        ]
    )
    frame["wkt"] = ""
    # a place spanning both micro-grids of Y1: its representative point (y = 1100) lies in M2
    frame.loc[4] = {
        "kind": "place",
        "colour": "red",
        "name": "群租房",
        "reason": "消防隐患",
        "marked_by": "李强",
        "marked_at": "",
        "lon": None,
        "lat": None,
        "wkt": shapely.Polygon([lonlat(100, 900), lonlat(300, 900), lonlat(300, 1300), lonlat(100, 1300)]).wkt,
    }
    frame.loc[:3, "wkt"] = [shapely.Point(x, y).wkt for x, y in zip(frame["lon"][:4], frame["lat"][:4])]
    res = import_csv(cli, tmp_path, frame.drop(columns=["lon", "lat"]))
    assert res.exit_code == 0, res.output
    assert "imported 5 risk elements" in res.output and "5 placed" in res.output
    assert micro_codes(city) == [M1, M2, M2, Y2 + "01", M2]
    with city.connect() as conn:
        rolled = {r["code"]: (r["colour"], r["red"], r["yellow"], r["blue"]) for r in store.rollup_rows(conn)}
        school = store.grid_summary(conn, SCHOOL, RULES)
        empty = store.grid_summary(conn, "410199002", RULES)  # street 2: no element below it
        marked = conn.execute(sa.text("SELECT marked_at FROM risk_element WHERE id = 5")).scalar_one()
    assert rolled == {
        M1: ("blue", 0, 1, 0),
        M2: ("red", 1, 2, 0),
        Y1: ("red", 1, 3, 0),
        Y2 + "01": ("blue", 0, 0, 1),
        Y2: ("blue", 0, 0, 1),
        COMMUNITY: ("red", 1, 3, 1),
        STREET: ("red", 1, 3, 1),
        DISTRICT: ("red", 1, 3, 1),
        SCHOOL: ("blue", 0, 1, 0),
    }
    assert "410199002" not in rolled
    assert school["yellow"] == 1 and school["by_kind"]["person"] == 1
    assert empty["colour"] is None and (empty["red"], empty["yellow"], empty["blue"], empty["overdue"]) == (0, 0, 0, 0)
    assert abs(marked - datetime.now(UTC)) < timedelta(minutes=1)  # empty marked_at: now


def test_one_bad_row_rejects_the_whole_file(city, cli, tmp_path):
    frame = element_rows(
        [
            (350, 350, "red", "person"),
            (500, 1500, "yellow", "event"),
            (600, 1600, "blue", "thing"),
            (700, 1700, "blue", "thing"),
        ],
        kind=(1, "peple"),
        name=(3, ""),
        colour=(2, "green"),
    )
    res = import_csv(cli, tmp_path, frame)
    assert res.exit_code == 2
    assert res.output.strip() == (
        "gridmap: error: import of elements.csv rejected, nothing written: row 2: unknown "
        "kind 'peple' (choose from person, place, thing, event, situation, organisation); "
        "and 2 more problems"
    )
    assert micro_codes(city) == []
    frame = element_rows(
        [(350, 350, "red", "person"), (500, 1500, "yellow", "event")], marked_by=(1, " "), marked_at=(0, "yesterday")
    )
    res = import_csv(cli, tmp_path, frame)
    assert res.exit_code == 2 and "row 1: marked_at 'yesterday' is not an ISO date" in res.output
    assert "and 1 more problem" in res.output
    frame = element_rows([(350, 350, "red", "person")], lon=(0, 34.75), lat=(0, 113.7))
    res = import_csv(cli, tmp_path, frame)
    assert res.exit_code == 2 and "row 1: coordinates look like swapped lat/lon" in res.output
    res = import_csv(cli, tmp_path, element_rows([(350, 350, "red", "person")]).drop(columns="marked_by"))
    assert res.exit_code == 2 and "no column 'marked_by'" in res.output
    assert micro_codes(city) == []


def test_gcj02_input_is_placed_where_it_really_is(city, cli, tmp_path):
    # 30 m north of the M1/M2 edge; the GCJ-02 offset is hundreds of metres, so a wrong CRS lands elsewhere
    lon, lat = lonlat(500, 1030)
    glat, glon = prcoords.wgs_gcj((lat, lon))
    frame = element_rows([(0, 0, "red", "situation")], lon=(0, glon), lat=(0, glat))
    res = import_csv(cli, tmp_path, frame, "--crs", "gcj02")
    assert res.exit_code == 0, res.output
    with city.connect() as conn:
        x, y, micro = conn.execute(sa.text("SELECT ST_X(geom), ST_Y(geom), micro_code FROM risk_element")).one()
    assert micro == M2 and abs(x - lon) < 1e-6 and abs(y - lat) < 1e-6
    res = import_csv(cli, tmp_path, frame, "--crs", "wgs84", name="again.csv")
    assert res.exit_code == 0
    assert micro_codes(city)[1] != M2


def test_geojson_import_with_custom_columns(city, cli, tmp_path):
    import geopandas as gpd

    lon, lat = lonlat(2500, 2500)
    gdf = gpd.GeoDataFrame(
        {
            "类别": ["organisation"],
            "等级": ["yellow"],
            "名称": ["某餐饮店"],
            "标记人": ["张伟"],
            "phone": ["13900000000"],
        },
        geometry=[shapely.Point(lon, lat)],
        crs="EPSG:4326",
    )
    path = tmp_path / "orgs.geojson"
    gdf.to_file(path, engine="pyogrio")
    res = cli(
        "risk",
        "import",
        path,
        "--kind-col",
        "类别",
        "--colour-col",
        "等级",
        "--name-col",
        "名称",
        "--marked-by-col",
        "标记人",
    )
    assert res.exit_code == 0, res.output
    with city.connect() as conn:
        row = conn.execute(sa.text("SELECT kind, colour, name, reason, micro_code, attrs FROM risk_element")).one()
    assert row == ("organisation", "yellow", "某餐饮店", None, "41019900200200101", {"phone": "13900000000"})


# --- visits ----------------------------------------------------------------------------


def test_visits_update_last_visit_and_overdue(city, cli, tmp_path, database_url, bearer):
    frame = element_rows([(350, 350, "red", "person"), (500, 1500, "blue", "place")])
    frame["marked_at"] = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    assert import_csv(cli, tmp_path, frame).exit_code == 0
    client = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    assert client.get("/api/v1/risk/grids/" + Y1).get_json()["overdue"] == 1  # red, 20 days unvisited

    visits = tmp_path / "visits.csv"
    two_days = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    pd.DataFrame(
        {
            "element": [1, 1, 2],
            "visited_at": [two_days, "2026-01-01T00:00:00", two_days],
            "visitor": ["王芳", "王芳", ""],
            "note": ["", "", ""],
        }
    ).to_csv(visits, index=False)
    res = cli("risk", "visits", visits)
    assert res.exit_code == 2
    assert "row 2: visited_at 2026-01-01T00:00:00+00:00 is before element 1 was marked" in res.output
    assert "and 1 more problem" in res.output  # row 3: missing visitor
    pd.DataFrame(
        {
            "element": [1, 1],
            "visited_at": [two_days, (datetime.now(UTC) - timedelta(days=9)).isoformat()],
            "visitor": ["王芳", "李强"],
            "note": ["入户", ""],
        }
    ).to_csv(visits, index=False)
    res = cli("risk", "visits", visits)
    assert res.exit_code == 0 and "recorded 2 visits to 1 elements" in res.output
    with city.connect() as conn:
        last = conn.execute(sa.text("SELECT last_visit_at FROM risk_element WHERE id = 1")).scalar_one()
    assert last == datetime.fromisoformat(two_days)  # the latest visit, not the last row
    assert client.get("/api/v1/risk/grids/" + Y1).get_json()["overdue"] == 0
    with city.connect() as conn:
        assert conn.execute(sa.text(f"SELECT overdue FROM grid_risk WHERE code = '{Y1}'")).scalar_one() == 0

    # eight days on, the red element is overdue again; a visit over HTTP puts it right
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    body = client.get("/api/v1/risk/elements", query_string={"grid": M1, "at": later}).get_json()
    assert body["features"][0]["properties"]["overdue"] is True
    res = client.post(
        "/api/v1/risk/visits", json={"element": 1, "visitor": "王芳", "note": "已整改"}, headers=bearer("dispatcher")
    )
    assert res.status_code == 201
    state = res.get_json()
    assert state["overdue"] is False and state["last_visit_at"] > two_days
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM risk_visit WHERE element_id = 1")).scalar_one() == 3


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"element": 999, "visitor": "王芳"}, 404, "no risk element with id 999"),
        ({"element": 1}, 400, "visitor is required"),
        ({"visitor": "王芳"}, 400, "element is required"),
        ({"element": "one", "visitor": "王芳"}, 400, "element must be a whole number"),
        ({"element": 1, "visitor": "王芳", "visited_at": "soon"}, 400, "visited_at 'soon' is not an ISO date"),
        ({"element": 1, "visitor": "王芳", "visited_at": "2999-01-01T00:00:00Z"}, 400, "is in the future"),
        ({"element": 1, "visitor": "王芳", "when": "now"}, 400, "unknown field 'when'"),
    ],
)
def test_visit_post_errors(city, cli, tmp_path, database_url, bearer, body, status, message):
    assert import_csv(cli, tmp_path, element_rows([(350, 350, "red", "person")])).exit_code == 0
    client = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    res = client.post("/api/v1/risk/visits", json=body, headers=bearer("ingest"))
    assert res.status_code == status and message in res.get_json()["error"]["message"], res.get_json()


# --- the API -----------------------------------------------------------------------------


@pytest.fixture
def filled(city, cli, tmp_path, database_url):
    frame = element_rows(
        [
            (350, 350, "red", "person"),
            (500, 1500, "yellow", "event"),
            (1500, 500, "blue", "thing"),
            (2500, 2500, "blue", "person"),
            (3500, 3500, "yellow", "organisation"),
        ]
    )
    frame["marked_at"] = [(NOW - timedelta(days=d)).isoformat() for d in (8, 10, 10, 100, 31)]
    assert import_csv(cli, tmp_path, frame).exit_code == 0
    return create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()


def ids(body):
    return [f["properties"]["id"] for f in body["features"]]


def test_elements_filters(filled, bearer):
    at = f"&at={NOW.isoformat().replace('+', '%2B')}"
    body = filled.get("/api/v1/risk/elements?limit=2" + at, headers=bearer("viewer")).get_json()
    assert body["type"] == "FeatureCollection" and body["numberMatched"] == 5 and body["numberReturned"] == 2
    assert ids(body) == [1, 2] and ids(filled.get("/api/v1/risk/elements?offset=3" + at).get_json()) == [4, 5]
    props = body["features"][0]["properties"]
    assert set(props) >= {
        "id",
        "kind",
        "colour",
        "name",
        "reason",
        "marked_by",
        "marked_at",
        "last_visit_at",
        "next_visit_due",
        "overdue",
        "micro_code",
    }
    assert props["overdue"] is True and datetime.fromisoformat(props["next_visit_due"]) == NOW - timedelta(days=1)
    assert body["features"][0]["geometry"]["type"] == "Point"
    assert ids(filled.get(f"/api/v1/risk/elements?grid={STREET}" + at).get_json()) == [1, 2, 3]
    assert ids(filled.get(f"/api/v1/risk/elements?grid={Y1}" + at).get_json()) == [1, 2]
    assert ids(filled.get(f"/api/v1/risk/elements?grid={SCHOOL}" + at).get_json()) == [1]
    assert ids(filled.get("/api/v1/risk/elements?kind=person" + at).get_json()) == [1, 4]
    assert ids(filled.get("/api/v1/risk/elements?colour=yellow" + at).get_json()) == [2, 5]
    assert ids(filled.get("/api/v1/risk/elements?overdue=true" + at).get_json()) == [1, 4, 5]
    assert ids(filled.get("/api/v1/risk/elements?overdue=false&colour=yellow" + at).get_json()) == [2]
    (x0, y0), (x1, y1) = lonlat(2000, 2000), lonlat(4000, 4000)
    assert ids(filled.get(f"/api/v1/risk/elements?bbox={x0},{y0},{x1},{y1}" + at).get_json()) == [4, 5]


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("kind=peple", 400, "kind must be one of person"),
        ("colour=green", 400, "colour must be one of red"),
        ("overdue=maybe", 400, "overdue must be true or false"),
        ("bbox=1,2,3", 400, "bbox must be"),
        ("limit=0", 400, "limit must be between 1 and 10000"),
        ("limit=x", 400, "limit must be a whole number"),
        ("offset=-1", 400, "offset must be between"),
        ("at=yesterday", 400, "at: 'yesterday' is not an ISO date"),
        ("colur=red", 400, "unknown query parameter 'colur'"),
        ("grid=999", 404, "no current grid with code '999'"),
    ],
)
def test_elements_bad_parameters(filled, query, status, message):
    res = filled.get(f"/api/v1/risk/elements?{query}")
    assert res.status_code == status and message in res.get_json()["error"]["message"]


def test_grid_and_summary(filled):
    at = f"?at={NOW.isoformat().replace('+', '%2B')}"
    body = filled.get(f"/api/v1/risk/grids/{DISTRICT}{at}").get_json()
    assert {k: body[k] for k in ("code", "level", "colour", "red", "yellow", "blue", "overdue")} == {
        "code": DISTRICT,
        "level": "district",
        "colour": "red",
        "red": 1,
        "yellow": 2,
        "blue": 2,
        "overdue": 3,
    }
    assert body["by_kind"] == {"person": 2, "place": 0, "thing": 1, "event": 1, "situation": 0, "organisation": 1}
    assert filled.get("/api/v1/risk/grids/nope").status_code == 404
    summary = filled.get(f"/api/v1/risk/summary{at}").get_json()
    assert summary["by_colour"] == {"red": 1, "yellow": 2, "blue": 2} and summary["elements"] == 5
    assert summary["overdue"] == {"red": 1, "yellow": 1, "blue": 1, "total": 3}
    assert summary["grids"]["district"] == {"red": 1, "yellow": 0, "blue": 0, "none": 0}
    assert summary["grids"]["street"] == {"red": 1, "yellow": 0, "blue": 1, "none": 0}  # 1 yellow + 1 blue
    assert filled.get("/api/v1/risk/summary?at=x").status_code == 400


def test_cli_list_and_rollup(filled, cli):
    res = cli("risk", "list", "--colour", "yellow", "--at", NOW.isoformat())
    assert res.exit_code == 0
    lines = [line.split("\t") for line in res.output.splitlines() if line[:1].isdigit() and "\t" in line]
    assert [(r[0], r[3]) for r in lines] == [("2", "ok"), ("5", "OVERDUE")]
    # every time shown carries its zone offset, the instant the JSON gives
    res_json = cli("risk", "list", "--colour", "yellow", "--format", "json", "--at", NOW.isoformat())
    due = [f["properties"]["next_visit_due"] for f in json.loads(res_json.output)["features"]]
    assert [r[4][-6:] for r in lines] == ["+08:00", "+08:00"]
    assert [datetime.fromisoformat(r[4]) for r in lines] == [
        datetime.fromisoformat(d).replace(microsecond=0) for d in due
    ]
    res = cli("risk", "list", "--grid", STREET, "--overdue", "--format", "json", "--at", NOW.isoformat())
    assert [f["id"] for f in __import__("json").loads(res.output)["features"]] == [1]
    res = cli("risk", "list", "--grid", "nope")
    assert res.exit_code == 2 and "no current grid with code 'nope'" in res.output
    res = cli("risk", "rollup")
    assert res.exit_code == 0 and "district: 1 red" in res.output


# --- boundaries move, rules change ----------------------------------------------------


def test_elements_follow_new_boundaries(filled, city, cli, tmp_path):
    assert micro_codes(city)[:2] == [M1, M2]
    c = cf.city()
    m1, m2 = cf.find(c, "micro", M1), cf.find(c, "micro", M2)
    m1["geometry"], m2["geometry"] = cf.rect(0, 0, 1000, 1600), cf.rect(0, 1600, 1000, 2000)
    replace_micro(cli, tmp_path, [m1, m2])
    assert micro_codes(city)[:2] == [M1, M1]  # (500, 1500) now lies in the grown M1
    with city.connect() as conn:
        rolled = {r["code"]: (r["red"], r["yellow"]) for r in store.rollup_rows(conn, "micro")}
    assert rolled[M1] == (1, 1) and M2 not in rolled


RISK_TOML = """
[visit_days]
red = 1
yellow = 2
blue = 3
[rollup]
red_threshold = 2
yellow_threshold = 1
blue_threshold = 1
[rollup.levels.micro]
red_threshold = 1
[style.red]
label = "r"
colour = "#ff0000"
fill = "#ff0000"
fill_opacity = 0.5
radius = 6
weight = 1
[style.yellow]
label = "y"
colour = "#ffff00"
fill = "#ffff00"
fill_opacity = 0.5
radius = 6
weight = 1
[style.blue]
label = "b"
colour = "#0000ff"
fill = "#0000ff"
fill_opacity = 0.5
radius = 6
weight = 1
[style.overdue]
label = "o"
colour = "#000000"
weight = 2
dash_array = ""
"""


def test_rules_from_a_layers_folder(filled, tmp_path, monkeypatch, database_url, cli):
    folder = tmp_path / "layers"
    folder.mkdir()
    (folder / "risk.toml").write_text(RISK_TOML)
    monkeypatch.setenv("GRIDMAP_LAYERS", str(folder))
    rules = load_rules(Settings.from_env().risk_rules_path)
    assert rules.visit_days == {"red": 1, "yellow": 2, "blue": 3} and rules.thresholds("micro") == (1, 1, 1)
    assert load_rules(PACKAGE_LAYERS).visit_days == {"red": 7, "yellow": 30, "blue": 90}
    res = cli("risk", "rollup", "--format", "json")
    by_level = __import__("json").loads(res.output)["by_level"]
    # one red: red in its micro-grid (override), yellow above (red threshold 2, yellow threshold 1)
    assert by_level["micro"]["red"] == 1 and by_level["district"] == {"red": 0, "yellow": 1, "blue": 0, "none": 0}
    client = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    at = (NOW + timedelta(days=1)).isoformat().replace("+", "%2B")
    overdue = client.get(f"/api/v1/risk/elements?overdue=true&at={at}").get_json()
    assert overdue["numberMatched"] == 5  # every element is older than 3 days
    assert client.get("/api/v1/risk/rules").get_json()["visit_days"]["red"] == 1


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("red = 1\nyellow", "red = 0\nyellow", "visit_days.red: must be a whole number >= 1, got 0"),
        ("blue = 3\n[rollup]", "blue = 3\ngreen = 4\n[rollup]", "visit_days.green: unknown key"),
        ("yellow_threshold = 1\n", "", "rollup.yellow_threshold: missing"),
        ('colour = "#ff0000"', 'colour = "red"', "style.red.colour: must be a colour like #c0392b"),
        ("[rollup.levels.micro]", "[rollup.levels.planet]", "rollup.levels.planet: unknown level"),
        ("[visit_days]", "[visit_days", "not valid TOML"),
    ],
)
def test_bad_rules_name_the_file_and_key(tmp_path, old, new, message):
    path = tmp_path / "risk.toml"
    path.write_text(RISK_TOML.replace(old, new, 1))
    with pytest.raises(InputError) as err:
        load_rules(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    with pytest.raises(InputError, match="no such risk rules file"):
        load_rules(tmp_path / "nowhere")


def test_shipped_rules_are_the_documented_defaults():
    rules = load_rules(PACKAGE_LAYERS)
    assert rules.visit_days == {"red": 7, "yellow": 30, "blue": 90}
    assert (rules.red_threshold, rules.yellow_threshold, rules.blue_threshold) == (1, 3, 1)
    assert set(rules.styles) == {"red", "yellow", "blue", "overdue"}


# --- the demo ---------------------------------------------------------------------------


def test_demo_has_every_kind_and_colour_overdue_visits_and_reports(demo_url, demo_client):
    eng = db.engine(demo_url)
    rules = load_rules(PACKAGE_LAYERS)
    with eng.connect() as conn:
        summary = store.summary(conn, rules)
        unplaced = conn.execute(sa.text("SELECT count(*) FROM risk_element WHERE micro_code IS NULL")).scalar_one()
        reports = conn.execute(sa.text("SELECT status, count(*), count(micro_code) FROM report GROUP BY status")).all()
        visits = conn.execute(sa.text("SELECT count(*), count(DISTINCT element_id) FROM risk_visit")).one()
        stale = conn.execute(
            sa.text(
                "SELECT count(*) FROM risk_element e WHERE last_visit_at IS DISTINCT FROM "
                "(SELECT max(visited_at) FROM risk_visit v WHERE v.element_id = e.id)"
            )
        ).scalar_one()
        polygons = conn.execute(
            sa.text("SELECT count(*) FROM risk_element WHERE kind = 'place' AND GeometryType(geom) = 'POLYGON'")
        ).scalar_one()
    households = 111_815
    assert households / 20 <= summary["elements"] <= households / 15
    assert all(summary["by_kind_colour"][k][c] > 0 for k in risk.KINDS for c in risk.COLOURS)
    for c in risk.COLOURS:  # some overdue in every colour, most not
        assert 0.1 < summary["overdue"][c] / summary["by_colour"][c] < 0.5
    assert unplaced == 0 and stale == 0 and polygons == summary["by_kind"]["place"]
    assert visits[0] > summary["elements"] and visits[1] < summary["elements"]  # some never visited
    assert {s for s, _, _ in reports} == {"open", "closed"} and all(n == placed for _, n, placed in reports)
    assert sum(n for _, n, _ in reports) > 100
    assert all(
        sum(summary["grids"][lv].values()) > 0
        for lv in ("district", "street", "community", "courtyard", "micro", "special")
    )
    body = demo_client.get("/api/v1/risk/elements?colour=red&overdue=true&limit=3").get_json()
    assert body["numberReturned"] == 3 and all(f["properties"]["overdue"] for f in body["features"])


def test_demo_risk_is_deterministic():
    from gridmap.domain.demo import risk as demo_risk

    micro = [
        {
            "code": f"M{i}",
            "name": f"某小区第{i}网格",
            "households": 60,
            "geometry": shapely.box(113.7 + i * 0.01, 34.7, 113.705 + i * 0.01, 34.705),
        }
        for i in range(20)
    ]
    anchor = datetime(2026, 11, 25, tzinfo=UTC)
    a = demo_risk.generate(micro, [], 3, anchor)
    b = demo_risk.generate(micro, [], 3, anchor)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    elements, visits, _ = a
    assert (pd.to_datetime(visits["visited_at"]) <= anchor).all()
    first = visits.groupby("element_row")["visited_at"].min()
    marked = pd.to_datetime(elements["marked_at"].iloc[first.index - 1].to_numpy())
    assert (marked <= pd.to_datetime(first.to_numpy())).all()
    assert np.isin(elements["kind"], risk.KINDS).all()
