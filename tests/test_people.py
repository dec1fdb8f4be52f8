"""Grid people end to end on the real PostGIS, the real CLI and the real app: roster import (good,
GBK and Excel, each kind of bad row, all or nothing), coverage and load on a known case, phones per
role, dated moves, party organisations, the coverage map layer, and the move of the old grid_person
table (migration 0014_people_move)."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime

import mercantile
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from test_risk import element_rows
from test_tiles import decode

from gridmap import geo
from gridmap.domain import risk as risk_domain
from gridmap.domain.coverage import NO_ORG, NO_WORKER
from gridmap.domain.risk import Rules
from gridmap.services import people as people_service
from gridmap.services.resources import load_rules
from gridmap.settings import Settings
from gridmap.store import db

import cityfactory as cf

M1, M2, M3 = "41019900100100101", "41019900100100102", "41019900100100201"
YARD, COMMUNITY, BUILDING = "410199001001001", "410199001001", "410199001001001B001"
ID = "11010519491231002X"
SCHOOL = "410199001001S01"  # the special grid inside M1


def cf_lonlat(x: float, y: float) -> tuple[float, float]:
    """Metres on the test city's plane (from its south-west corner) as lon, lat."""
    p = geo.from_local([shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


def _posts(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM grid_post")).scalar_one()


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    return tmp_path


def _roster(folder, rows, name="roster.csv", encoding="utf-8"):
    path = folder / name
    frame = pd.DataFrame(rows)
    if path.suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_csv(path, index=False, encoding=encoding)
    return path


GOOD = [
    {"网格编码": M1, "职务": "网格员", "姓名": "张伟", "电话": "138 1234 5678", "身份证号": ID},
    {"网格编码": M2, "职务": "网格员", "姓名": "张伟", "电话": "13812345678", "身份证号": ID},
    {"网格编码": YARD, "职务": "网格长", "姓名": "王芳", "电话": "0371-67881234"},
    {"楼栋编码": BUILDING, "职务": "楼栋长", "姓名": "赵磊", "电话": "13512345678"},
    {"楼栋编码": BUILDING, "单元": "2", "职务": "单元长", "姓名": "钱七", "电话": "13612345678"},
]


def test_import_gbk_roster_with_chinese_headers(city, cli, engine):
    res = cli("people", "import", _roster(city, GOOD, encoding="gb18030"))
    assert res.exit_code == 0, res.output
    assert "5 roster rows" in res.output and "4 new people" in res.output
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pe.name, pe.phone, p.role, p.grid_code, p.building_code, p.unit, pe.id_card_hash "
                "FROM grid_post p JOIN person pe ON pe.id = p.person_id ORDER BY p.id"
            )
        ).all()
    assert [r[:6] for r in rows] == [
        ("张伟", "13812345678", "grid_worker", M1, None, None),
        ("张伟", "13812345678", "grid_worker", M2, None, None),
        ("王芳", "0371-67881234", "grid_leader", YARD, None, None),
        ("赵磊", "13512345678", "building_lead", YARD, BUILDING, None),
        ("钱七", "13612345678", "unit_lead", YARD, BUILDING, 2),
    ]
    assert rows[0][6].startswith("h1:") and ID not in rows[0][6]  # the ID number is never stored in clear
    again = cli("people", "import", _roster(city, GOOD[:1], "again.csv"))
    assert again.exit_code == 2 and "row 1 (code 41019900100100101): duplicate" in again.output


def test_import_excel(city, cli, engine):
    res = cli("people", "import", _roster(city, GOOD, "roster.xlsx"))
    assert res.exit_code == 0, res.output
    assert _posts(engine) == 5


@pytest.mark.parametrize("orgs", [[], ["--orgs"]])
def test_an_unreadable_excel_file_is_one_error_line(cli, engine, tmp_path, orgs):
    path = tmp_path / "rnd.xlsx"
    path.write_bytes(bytes(range(256)) + b"not a zip archive at all" * 2)
    res = cli("people", "import", *orgs, path)
    assert res.exit_code == 2, res.output
    assert res.output.strip() == "gridmap: error: cannot read rnd.xlsx: File is not a zip file"
    assert _posts(engine) == 0


@pytest.mark.parametrize(
    "bad, problem",
    [
        (
            {"网格编码": "41019900100100999", "职务": "网格员", "姓名": "李娜", "电话": "13912345678"},
            "unknown grid '41019900100100999'",
        ),
        ({"网格编码": M3, "职务": "大队长", "姓名": "李娜", "电话": "13912345678"}, "unknown role '大队长'"),
        (
            {"网格编码": M1, "职务": "网格员", "姓名": "张伟", "电话": "13812345678", "身份证号": ID},
            "duplicate: 张伟 as grid_worker here repeats row 1",
        ),
        ({"网格编码": M3, "职务": "网格员", "姓名": "李娜", "电话": "1391234"}, "'1391234' is not a Chinese mobile"),
        ({"网格编码": M3, "职务": "网格员", "姓名": "李娜", "身份证号": ID[:-1] + "3"}, "fails its check digit"),
        (
            {"楼栋编码": BUILDING, "单元": "9", "职务": "单元长", "姓名": "李娜"},
            f"unknown unit '9' of building {BUILDING}",
        ),
    ],
)
def test_each_bad_row_rejects_the_whole_file(city, cli, engine, bad, problem):
    res = cli("people", "import", _roster(city, [GOOD[0], GOOD[2], bad]))
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("gridmap: error: import of roster.csv rejected, nothing written: row 3") and problem in line
    assert _posts(engine) == 0


def test_coverage_and_load_on_a_known_case(city, cli, engine):
    assert cli("people", "import", _roster(city, GOOD)).exit_code == 0
    orgs = [
        {"code": "P1", "name": "测试11社区党支部", "kind": "党支部", "grids": COMMUNITY},
        {"code": "P2", "name": "第一党小组", "kind": "党小组", "parent": "P1", "grids": f"{M1};{M2}"},
    ]
    res = cli("people", "import", _roster(city, orgs, "orgs.csv"), "--orgs")
    assert res.exit_code == 0 and "imported 2 party organisations" in res.output, res.output
    res = cli("people", "coverage", "--format", "json", "--max-households", "100")
    body = json.loads(res.output)
    # 16 micro-grids and 1 school in the test city; 张伟 serves M1 and M2 (60 households each)
    assert body["summary"] == {
        "grids_needing_worker": 17,
        "grids_without_worker": 15,
        "communities": 4,
        "communities_without_org": 3,
        "workers": 1,
        "overloaded": 1,
    }
    assert {g["code"] for g in body["gaps"] if g["problem"].startswith("no party")} == {
        "410199001002",
        "410199002001",
        "410199002002",
    }
    (load,) = body["load"]
    assert (load["name"], load["grids"], load["households"], load["households_share"], load["overloaded"]) == (
        "张伟",
        2,
        120,
        120.0,
        True,
    )
    text = cli("people", "coverage", "--max-households", "100")
    assert "15 of 17 micro/special grids have no grid worker" in text.output and "OVERLOADED" in text.output


def _independent_coverage(engine, rules, at, most):
    """Coverage and load counted in Python from the raw rows, the way a street office would by hand."""
    with engine.connect() as conn:
        grids = conn.execute(
            sa.text("SELECT code, name, level, parent_code, households FROM grid WHERE valid_to IS NULL")
        ).all()
        posts = conn.execute(
            sa.text(
                "SELECT p.person_id, pe.name, p.grid_code FROM grid_post p JOIN person pe ON pe.id = p.person_id "
                "WHERE p.valid_to IS NULL AND p.role = 'grid_worker'"
            )
        ).all()
        org_grids = (
            conn.execute(
                sa.text(
                    "SELECT og.grid_code FROM party_org_grid og JOIN party_org o ON o.id = og.org_id "
                    "WHERE og.valid_to IS NULL AND o.valid_to IS NULL"
                )
            )
            .scalars()
            .all()
        )
        elements = conn.execute(sa.text("SELECT micro_code, colour, last_visit_at, marked_at FROM risk_element")).all()
        cases = conn.execute(sa.text("SELECT micro_code FROM report WHERE status = 'open'")).scalars().all()
    by_code = {g.code: g for g in grids}

    def community(code):
        while code is not None and code in by_code:
            if by_code[code].level == "community":
                return code
            code = by_code[code].parent_code
        return None

    staffed = {p.grid_code for p in posts}
    covered = {community(g) for g in org_grids} - {None}
    gaps = sorted(
        [(g.code, NO_WORKER) for g in grids if g.level in ("micro", "special") and g.code not in staffed]
        + [(g.code, NO_ORG) for g in grids if g.level == "community" and g.code not in covered]
    )
    due = risk_domain.overdue(
        [e.colour for e in elements], [e.last_visit_at for e in elements], [e.marked_at for e in elements], at, rules
    )
    risk, overdue, open_cases = {}, {}, {}
    for e, late in zip(elements, due, strict=True):
        risk[e.micro_code] = risk.get(e.micro_code, 0) + 1
        overdue[e.micro_code] = overdue.get(e.micro_code, 0) + int(late)
    for code in cases:
        open_cases[code] = open_cases.get(code, 0) + 1
    workers = {}
    for p in {(p.person_id, p.name, p.grid_code) for p in posts}:
        workers.setdefault((p[0], p[1]), set()).add(p[2])
    sharing = {}
    for (pid, _), served in workers.items():
        for code in served:
            sharing.setdefault(code, set()).add(pid)
    load = {}
    for (_, name), served in workers.items():
        served = [c for c in served if c in by_code]
        share = round(sum((by_code[c].households or 0) / len(sharing[c]) for c in served), 1)
        load[name] = (
            len(served),
            sum(by_code[c].households or 0 for c in served),
            sum(risk.get(c, 0) for c in served),
            sum(overdue.get(c, 0) for c in served),
            sum(open_cases.get(c, 0) for c in served),
            share,
            share > most,
        )
    return gaps, load


def test_coverage_agrees_with_an_independent_count(city, cli, engine, tmp_path):
    """The two PostGIS statements against a count by hand: a shared grid, a worker on the school,
    a leader (not a worker), risk elements (some overdue) and open cases in the grids served."""
    roster = [
        {"网格编码": M1, "职务": "网格员", "姓名": "甲", "电话": "13812345601"},
        {"网格编码": M2, "职务": "网格员", "姓名": "甲", "电话": "13812345601"},
        {"网格编码": M3, "职务": "网格员", "姓名": "甲", "电话": "13812345601"},
        {"网格编码": M3, "职务": "网格员", "姓名": "乙", "电话": "13812345602"},
        {"网格编码": SCHOOL, "职务": "网格员", "姓名": "丙", "电话": "13812345603"},
        {"网格编码": YARD, "职务": "网格长", "姓名": "丁", "电话": "13812345604"},
    ]
    assert cli("people", "import", _roster(city, roster)).exit_code == 0
    orgs = [{"code": "P1", "name": "第一党小组", "kind": "党小组", "grids": YARD}]  # a courtyard's group covers C1
    assert cli("people", "import", _roster(city, orgs, "orgs.csv"), "--orgs").exit_code == 0
    elements = element_rows(
        [(350, 350, "red", "person"), (500, 1500, "yellow", "event"), (1500, 500, "blue", "thing")],
        marked_at=(0, "2020-01-01T08:00:00+08:00"),  # long overdue; the others were marked this month
    )
    elements.to_csv(tmp_path / "elements.csv", index=False)
    assert cli("risk", "import", tmp_path / "elements.csv").exit_code == 0
    reports = pd.DataFrame(
        [["R1", "2026-11-28 09:30", "井盖缺失", *cf_lonlat(1500, 500)], ["R2", "", "积水", *cf_lonlat(350, 350)]],
        columns=["id", "reported_at", "text", "lon", "lat"],
    )
    reports.to_csv(tmp_path / "reports.csv", index=False)
    assert cli("record", "reports", tmp_path / "reports.csv").exit_code == 0
    rules = load_rules(Settings.from_env().risk_rules_path)
    at = datetime.now(UTC)
    summary, gaps, load = people_service.coverage(engine, rules, at=at, max_households=100)
    want_gaps, want_load = _independent_coverage(engine, rules, at, 100)
    assert [(g["code"], g["problem"]) for g in gaps] == want_gaps
    assert all(g["community"] for g in gaps)
    got = {
        r["name"]: tuple(r[k] for k in ("grids", "households", "risk_elements", "overdue_visits", "open_cases"))
        + (r["households_share"], r["overloaded"])
        for r in load
    }
    assert got == want_load
    assert sum(v[3] for v in got.values()) >= 1 and sum(v[4] for v in got.values()) >= 1  # the case has them
    assert [r["households_share"] for r in load] == sorted((r["households_share"] for r in load), reverse=True)
    assert summary["workers"] == len(want_load) == 3
    assert summary["overloaded"] == sum(v[6] for v in want_load.values())
    assert summary["grids_without_worker"] == sum(p == NO_WORKER for _, p in want_gaps)
    assert summary["communities_without_org"] == sum(p == NO_ORG for _, p in want_gaps)
    top, _, top_load = people_service.coverage(engine, rules, at=at, max_households=100, limit=1)
    assert top == summary and top_load == load[:1]


def test_phones_per_role_and_no_names_without_one(city, cli, client, bearer):
    assert cli("people", "import", _roster(city, GOOD)).exit_code == 0
    assert client.get("/api/v1/people").status_code == 401
    assert client.get(f"/api/v1/grids/{M1}/people").status_code == 401
    assert client.get("/api/v1/people", headers=bearer("ingest")).status_code == 403
    seen = {}
    for role in ("viewer", "dispatcher", "planner", "admin", "roster"):
        res = client.get("/api/v1/people", query_string={"grid": M1}, headers=bearer(role))
        assert res.status_code == 200, res.json
        seen[role] = res.json["posts"][0]["phone"]
    assert seen == {
        "viewer": "138****5678",
        "dispatcher": "13812345678",
        "planner": "13812345678",
        "admin": "13812345678",
        "roster": "13812345678",
    }


WHOLE, MASKED = "13812345678", "138****5678"


@pytest.mark.parametrize(
    "identity, phone",
    [
        ("anonymous", None),  # nothing personal: no people at all
        ("ingest", None),
        ("roster", None),  # the roster keeper reads the people routes, not the map's
        ("viewer", MASKED),
        ("dispatcher", WHOLE),
        ("planner", WHOLE),
        ("admin", WHOLE),
    ],
)
def test_map_routes_show_people_as_the_role_may(city, cli, client, bearer, identity, phone):
    """The grid, its panel and a lookup carry the grid's people through the one privacy filter: left out
    without a viewer token, phones masked for viewers, whole for dispatchers and above."""
    assert cli("people", "import", _roster(city, GOOD)).exit_code == 0
    headers = {} if identity == "anonymous" else bearer(identity)
    lon, lat = cf_lonlat(350, 350)
    answers = {
        "grid": client.get(f"/api/v1/grids/{M1}", headers=headers),
        "panel": client.get(f"/api/v1/grids/{M1}/panel", headers=headers),
        "lookup": client.get("/api/v1/lookup", query_string={"lon": lon, "lat": lat}, headers=headers),
    }
    for what, res in answers.items():
        assert res.status_code == 200, (what, res.json)
        body = res.json.get("properties", res.json)
        text = json.dumps(res.json, ensure_ascii=False)
        if phone is None:
            assert "people" not in body and "张伟" not in text and "5678" not in text, (what, identity)
        else:
            assert [(p["name"], p["role"], p["phone"]) for p in body["people"]] == [("张伟", "grid_worker", phone)]
            assert (WHOLE in text) == (phone == WHOLE), (what, identity)


@pytest.mark.parametrize(
    "identity, status, leader_phone",
    [
        ("anonymous", 401, None),
        ("ingest", 403, None),
        ("viewer", 200, "0371-****1234"),
        ("dispatcher", 200, "0371-67881234"),
        ("admin", 200, "0371-67881234"),
        ("roster", 200, "0371-67881234"),
    ],
)
def test_grid_people_route_per_role(city, cli, client, bearer, identity, status, leader_phone):
    """``/grids/<code>/people`` (the panel's people): a courtyard's leader, a landline masked after its
    area code for viewers, and the posts say whether their phones are masked."""
    assert cli("people", "import", _roster(city, GOOD)).exit_code == 0
    res = client.get(f"/api/v1/grids/{YARD}/people", headers={} if identity == "anonymous" else bearer(identity))
    assert res.status_code == status, res.json
    if status != 200:
        assert "王芳" not in res.get_data(as_text=True)
        return
    (leader,) = [p for p in res.json["posts"] if p["role"] == "grid_leader"]
    assert (leader["name"], leader["phone"]) == ("王芳", leader_phone)
    assert leader["phone_masked"] is (identity == "viewer")


def test_dated_move_keeps_history(city, cli, client, bearer, engine):
    assert cli("people", "import", _roster(city, GOOD[:1])).exit_code == 0
    (post,) = client.get("/api/v1/people", headers=bearer("roster")).json["posts"]
    before = post["valid_from"]
    assert (
        client.patch(f"/api/v1/posts/{post['id']}", json={"grid": M3}, headers=bearer("dispatcher")).status_code == 403
    )
    bad = client.patch(f"/api/v1/posts/{post['id']}", json={"grid": YARD}, headers=bearer("roster"))
    assert bad.status_code == 400 and "serves a micro or special grid" in bad.json["error"]["message"]
    moved = client.patch(f"/api/v1/posts/{post['id']}", json={"grid": M3}, headers=bearer("roster"))
    assert moved.status_code == 200 and moved.json["from"] == M1 and moved.json["to"] == M3
    now = client.get("/api/v1/people", headers=bearer("viewer")).json["posts"]
    assert [p["grid_code"] for p in now] == [M3]
    then = client.get("/api/v1/people", query_string={"at": before}, headers=bearer("viewer")).json["posts"]
    assert [p["grid_code"] for p in then] == [M1]
    history = client.get(f"/api/v1/people/{post['person_id']}/history", headers=bearer("viewer")).json["posts"]
    assert [(p["grid_code"], p["valid_to"] is None) for p in history] == [(M1, False), (M3, True)]
    assert history[0]["valid_to"].endswith("+08:00")  # shown in Asia/Shanghai
    ended = client.delete(f"/api/v1/posts/{now[0]['id']}", headers=bearer("admin"))
    assert ended.status_code == 200 and client.get("/api/v1/people", headers=bearer("viewer")).json["posts"] == []


def test_replace_closes_who_is_no_longer_there(city, cli, engine):
    assert cli("people", "import", _roster(city, GOOD[:3])).exit_code == 0
    new = [{"网格编码": M1, "职务": "网格员", "姓名": "孙丽", "电话": "13700000000"}]
    res = cli("people", "import", _roster(city, new, "new.csv"), "--replace")
    assert res.exit_code == 0 and "1 posts opened, 0 kept, 1 closed" in res.output, res.output
    current = people_service.list_posts(engine, grids=[M1, M2])
    assert sorted((p["grid_code"], p["name"]) for p in current) == [(M1, "孙丽"), (M2, "张伟")]


def test_api_import_is_all_or_nothing(city, client, bearer, engine):
    rows = [
        {"grid": M1, "role": "grid_worker", "name": "张伟", "phone": "13812345678"},
        {"grid": M2, "role": "grid_worker", "name": "李娜", "phone": "not a phone"},
    ]
    res = client.post("/api/v1/people", json={"rows": rows}, headers=bearer("roster"))
    assert res.status_code == 422 and res.json["error"]["detail"]["problems"][0]["row"] == 2
    assert _posts(engine) == 0
    assert client.post("/api/v1/people", json={"rows": rows[:1]}, headers=bearer("planner")).status_code == 403
    assert client.post("/api/v1/people", json={"rows": rows[:1]}, headers=bearer("roster")).status_code == 201


def test_coverage_layer_shades_grids_without_a_worker(city, cli, client, bearer):
    """The map layer "no-worker": micro-grids and special grids no grid worker serves, and it follows a
    new post at once (posts move the layer epoch, so no stale cached tile)."""
    t = mercantile.tile(*cf_lonlat(500, 1000), 13)  # over the test city's first courtyard

    def gaps() -> set[str]:
        res = client.get(f"/tiles/no-worker/{t.z}/{t.x}/{t.y}.pbf")
        assert res.status_code == 200
        layer = decode(res.data).get("no-worker", {"features": []})
        return {f["properties"]["code"] for f in layer["features"]}

    assert {M1, M2, "410199001001S01"} <= gaps()
    assert cli("people", "import", _roster(city, GOOD[:2])).exit_code == 0
    after = gaps()
    assert M1 not in after and M2 not in after and "410199001001S01" in after
    assert '"no-worker"' in client.get("/").get_data(as_text=True)  # on the map page, with its tile URL


def test_migration_moves_grid_person_into_posts(engine, database_url):
    """Migration 0014_people_move on a database that still has the old table: each (name, phone) one
    person, each row a current post, the old secretary a party secretary, nothing lost; then grid_person
    is gone.  It steps down to the revision before it (whatever that is once the chain is relinked)."""
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    before = ScriptDirectory.from_config(config).get_revision("0014").down_revision
    command.downgrade(config, before)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO grid_person (grid_code, name, role, phone) VALUES "
                    f"('{M1}', '王芳', 'grid_worker', '13900000000'), ('{M2}', '王芳', 'grid_worker', '13900000000'), "
                    f"('{COMMUNITY}', '李娜', 'secretary', NULL), ('{YARD}', '赵磊', '楼长', '13500000000')"
                )
            )
    finally:
        command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pe.name, p.grid_code, p.role, pe.party_member, pe.attrs->'old_roles' FROM grid_post p "
                "JOIN person pe ON pe.id = p.person_id ORDER BY pe.name, p.grid_code"
            )
        ).all()
        gone = conn.execute(sa.text("SELECT to_regclass('grid_person')")).scalar_one()
        people = conn.execute(sa.text("SELECT count(*) FROM person")).scalar_one()
    assert [tuple(r) for r in rows] == [
        ("李娜", COMMUNITY, "party_secretary", True, ["secretary"]),
        ("王芳", M1, "grid_worker", False, ["grid_worker"]),
        ("王芳", M2, "grid_worker", False, ["grid_worker"]),
        ("赵磊", YARD, "volunteer", False, ["楼长"]),
    ]
    assert gone is None and people == 3


def test_demo_city_roster_with_a_few_gaps(demo_url):
    """The demo's roster (issue 13 item 7): a worker on (almost) every micro-grid, some sharing or with two,
    a leader per courtyard, building and unit leads, a branch per community and a group per courtyard,
    and a few gaps for coverage to find."""
    eng = db.engine(demo_url)
    summary, gaps, load = people_service.coverage(eng, Rules())
    micro = sum(g["level"] == "micro" for g in gaps)
    assert 0 < micro <= 0.02 * summary["grids_needing_worker"]
    assert summary["communities_without_org"] == 1 and not any(g["level"] == "special" for g in gaps)
    shares = [r["households_share"] for r in load]
    assert any(r["grids"] == 2 for r in load) and max(shares) > statistics.median(shares)
    with eng.connect() as conn:
        counts = dict(
            conn.execute(sa.text("SELECT role, count(*) FROM grid_post WHERE valid_to IS NULL GROUP BY role")).all()
        )
        yards, leaders, buildings, leads, groups, branches, secretaries = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM grid WHERE level = 'courtyard' AND valid_to IS NULL), "
                "(SELECT count(DISTINCT p.grid_code) FROM grid_post p JOIN grid g ON g.code = p.grid_code "
                " AND g.level = 'courtyard' AND g.valid_to IS NULL WHERE p.role = 'grid_leader'), "
                "(SELECT count(*) FROM building WHERE valid_to IS NULL), "
                "(SELECT count(DISTINCT building_code) FROM grid_post WHERE role = 'building_lead'), "
                "(SELECT count(*) FROM party_org WHERE kind = 'group'), "
                "(SELECT count(*) FROM party_org WHERE kind = 'branch'), "
                "(SELECT count(secretary_id) FROM party_org WHERE kind = 'branch')"
            )
        ).one()
    assert leaders == yards and leads == buildings and counts["unit_lead"] > buildings
    assert branches == summary["communities"] - 1 == secretaries and groups < yards
    assert {"grid_worker", "grid_leader", "party_secretary", "party_member", "volunteer"} <= set(counts)


def test_people_routes_check_their_values(city, cli, client, bearer):
    """Request values go through web/params.py and domain/values.py: a malformed grid code, an unknown
    role, a name longer than any name may be — 4xx naming the problem, nothing written."""
    assert cli("people", "import", _roster(city, GOOD[:1])).exit_code == 0
    viewer, roster = bearer("viewer"), bearer("roster")
    bad_grid = client.get("/api/v1/people", query_string={"grid": "M1; DROP"}, headers=viewer)
    assert bad_grid.status_code == 400 and "grid must be a grid code" in bad_grid.json["error"]["message"]
    bad_role = client.get("/api/v1/people", query_string={"role": "boss"}, headers=viewer)
    assert bad_role.status_code == 400 and "unknown role 'boss'" in bad_role.json["error"]["message"]
    unknown = client.get("/api/v1/people", query_string={"who": "x"}, headers=viewer)
    assert unknown.status_code == 400 and "unknown query parameter 'who'" in unknown.json["error"]["message"]
    path = client.get("/api/v1/grids/not-a-code/people", headers=viewer)
    assert path.status_code == 400 and "the grid code must be a grid code" in path.json["error"]["message"]
    (post,) = client.get("/api/v1/people", headers=roster).json["posts"]
    moved = client.patch(f"/api/v1/posts/{post['id']}", json={"grid": 410199}, headers=roster)
    assert moved.status_code == 400 and "grid must be a grid code" in moved.json["error"]["message"]
    long = [{"grid": M2, "role": "grid_worker", "name": "张" * 101, "phone": "13812345678"}]
    res = client.post("/api/v1/people", json={"rows": long}, headers=roster)
    assert res.status_code == 422 and "101 characters long" in json.dumps(res.json, ensure_ascii=False)
    assert [p["grid_code"] for p in client.get("/api/v1/people", headers=roster).json["posts"]] == [M1]


def test_coverage_route_answers_as_the_cli_does(city, cli, client, bearer):
    """GET /api/v1/people/coverage: the same summary and gaps as the CLI, ``limit`` rows of each list,
    and workers' names only for a role that may read people."""
    assert cli("people", "import", _roster(city, GOOD)).exit_code == 0
    body = json.loads(cli("people", "coverage", "--format", "json", "--limit", "100").output)
    res = client.get("/api/v1/people/coverage", query_string={"limit": 2}, headers=bearer("roster"))
    assert res.status_code == 200, res.json
    assert res.json["summary"] == body["summary"] and res.json["gaps"] == body["gaps"][:2]
    assert res.json["load"] == body["load"][:2] and res.json["load"][0]["name"] == "张伟"
    assert client.get("/api/v1/people/coverage", headers=bearer("ingest")).status_code == 403
