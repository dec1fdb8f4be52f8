"""Addresses, stored reports and residents, and their reassignment when boundaries move."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from test_lookup import Y1, lonlat, replace_micro

from gridmap.domain.address import chinese_number, normalise
from gridmap.errors import InputError
from gridmap.services.locator import Locator
from gridmap.store import db

import cityfactory as cf

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "text, value",
    [("三", 3), ("十", 10), ("十二", 12), ("二十", 20), ("二十三", 23), ("一百零五", 105), ("一〇五", 105), ("两", 2)],
)
def test_chinese_numbers(text, value):
    assert chinese_number(text) == value


def test_normalise():
    assert normalise("宇通花园 ３号楼 二单元") == "宇通花园3号楼2单元"
    assert normalise("十二栋") == "12栋"
    assert normalise("三里屯小区") == "三里屯小区"  # a numeral in a name is left alone


@pytest.fixture(scope="module")
def demo_locator(demo_url):
    return Locator(db.engine(demo_url))


@pytest.fixture(scope="module")
def yutong(demo_url):
    """A building of 宇通花园 with at least two units: (code, number, units)."""
    with db.engine(demo_url).connect() as conn:
        row = conn.execute(
            sa.text("""
            SELECT b.code, b.number, count(*) FROM building b JOIN unit u ON u.building_id = b.id
            WHERE b.courtyard_code = '410104006010001' GROUP BY b.id HAVING count(*) >= 2
            ORDER BY b.code LIMIT 1""")
        ).one()
    return row[0], int(row[1].removesuffix("号楼")), row[2]


def chinese(n: int) -> str:
    digits = "零一二三四五六七八九"
    tens, ones = divmod(n, 10)
    return (("" if tens == 1 else digits[tens]) + "十" if tens else "") + (digits[ones] if ones or not tens else "")


@pytest.mark.parametrize(
    "template",
    [
        "二里岗街道宇通花园{n}号楼2单元",
        "宇通花园{n}号楼2单元",
        "宇通花园{cn}号楼二单元",
        "宇通花园{n}栋2单元",
        "宇通花园{cn}幢",
        "宇通花园 {wide}号楼",
        "管城回族区二里岗街道宇通花园社区宇通花园{n}号楼",
    ],
)
def test_address_variants_find_the_same_building(demo_locator, yutong, template):
    code, number, _ = yutong
    wide = "".join(chr(ord(c) + 0xFEE0) for c in str(number))  # full-width digits
    body = demo_locator.lookup_address(template.format(n=number, cn=chinese(number), wide=wide))
    assert body["address"]["building"] == code
    assert body["inside"] and body["chain"][2]["name"] == "宇通花园社区"


@pytest.mark.parametrize(
    "address, why",
    [
        ("宇通花园999号楼", "has no building 999"),
        ("宇通花园1号楼9单元", "not 9"),
        ("火星小区1号楼", "no known courtyard"),
        ("宇通花园", "no building number"),
        ("", "empty address"),
    ],
)
def test_unresolvable_addresses_say_why(demo_locator, address, why):
    with pytest.raises(InputError, match=why):
        demo_locator.lookup_address(address)


def test_address_over_http(demo_client, yutong):
    res = demo_client.get(f"/api/v1/lookup?address=宇通花园{yutong[1]}号楼2单元")
    assert res.status_code == 200 and res.get_json()["address"]["unit"] == 2
    res = demo_client.get("/api/v1/lookup?address=宇通花园999号楼")
    assert res.status_code == 400 and "has no building 999" in res.get_json()["error"]["message"]


def test_ambiguous_courtyard_needs_the_street():
    from gridmap.domain.address import Building, Gazetteer

    gaz = Gazetteer(
        [("A", "幸福小区", "甲社区", "东街道"), ("B", "幸福小区", "乙社区", "西街道")],
        [Building("A-1", "A", 1, 2, 113.7, 34.7), Building("B-1", "B", 1, 2, 113.8, 34.8)],
    )
    with pytest.raises(InputError, match="exists in 东街道, 西街道; add the street"):
        gaz.resolve("幸福小区1号楼")
    assert gaz.resolve("西街道幸福小区1号楼").building.code == "B-1"


def test_reports_and_residents_reassigned_when_boundaries_move(engine, cli, tmp_path):
    city = cf.city()
    cf.load(cli, city, tmp_path)
    reports = tmp_path / "reports.csv"
    pts = [lonlat(500, 1100), lonlat(500, 1500), lonlat(2500, 2500), (float("nan"), 1.0)]
    pd.DataFrame(
        {"text": ["井盖缺失", "噪音", "积水", "坐标丢失"], "lon": [p[0] for p in pts], "lat": [p[1] for p in pts]}
    ).to_csv(reports, index=False)
    res = cli("record", "reports", reports)
    assert res.exit_code == 0 and "4 rows: 3 placed, 0 outside, 1 bad" in res.output
    residents = tmp_path / "residents.csv"
    pd.DataFrame({"name": ["王芳"], "address": [f"测试{Y1[8:12]}1花园1号楼2单元"]}).to_csv(residents, index=False)
    res = cli("record", "residents", residents, "--address-col", "address")
    assert res.exit_code == 0 and "1 rows: 1 placed" in res.output, res.output

    def grids(table):
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text(f"SELECT micro_code FROM {table} ORDER BY id"))]

    assert grids("report") == [Y1 + "02", Y1 + "02", "41019900200200101", None]
    assert grids("resident") == [Y1 + "01"]
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT id, assigned_at FROM report ORDER BY id")).all()
    m1, m2 = cf.find(city, "micro", Y1 + "01"), cf.find(city, "micro", Y1 + "02")
    m1["geometry"], m2["geometry"] = cf.rect(0, 0, 1000, 1200), cf.rect(0, 1200, 1000, 2000)
    replace_micro(cli, tmp_path, [m1, m2])
    assert grids("report") == [Y1 + "01", Y1 + "02", "41019900200200101", None]
    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT id, assigned_at FROM report ORDER BY id")).all()
    # only the rows the moved grids touch were reassigned; the far one kept its timestamp
    assert after[2].assigned_at == before[2].assigned_at and after[0].assigned_at > before[0].assigned_at


def test_geocode_reports_script(engine, cli, tmp_path, database_url):
    cf.load(cli, cf.city(), tmp_path)
    src = tmp_path / "in.csv"
    lon, lat = lonlat(2500, 3500)
    import prcoords

    glat, glon = prcoords.wgs_gcj((lat, lon))
    pd.DataFrame({"text": ["路灯坏了"], "lng": [glon], "lat": [glat]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    env = {"GRIDMAP_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [
            sys.executable,
            ROOT / "scripts" / "geocode_reports.py",
            src,
            "--crs",
            "gcj02",
            "--lon-col",
            "lng",
            "--out",
            out,
            "--store",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "recorded reports from file: 1 rows: 1 placed" in res.stderr
    assert pd.read_csv(out, dtype=str)["micro_code"][0] == "41019900200200102"
    res = subprocess.run(
        [sys.executable, ROOT / "scripts" / "geocode_reports.py", tmp_path / "nope.csv", "--out", out],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (
        res.returncode == 2 and res.stderr.strip() == f"geocode_reports: error: no such file: {tmp_path / 'nope.csv'}"
    )
