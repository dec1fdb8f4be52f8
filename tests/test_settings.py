"""One settings object and the files it points at (issue #11): the environment read once, tiles in the
base map's frame, every roll-up with the rules in force, one household band, one line for a bad file."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import mercantile
import pytest
import shapely
import sqlalchemy as sa

from gridmap import geo
from gridmap.errors import InputError
from gridmap.settings import Settings
from gridmap.web import create_app

import cityfactory as cf

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ROOT / "layers"  # the editable copy (a link to gridmap/resources/layers)
Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


def layers_copy(tmp_path, name="layers") -> Path:
    folder = tmp_path / name
    shutil.copytree(LAYERS, folder)
    return folder


def test_settings_read_once_from_the_environment(tmp_path):
    from gridmap.settings import DEFAULT_PG_PORT, PACKAGE_LAYERS, Settings

    env = {
        "GRIDMAP_HOME": str(tmp_path),
        "GRIDMAP_DATABASE_URL": "postgresql://u@h:1/d",
        "GRIDMAP_PG_PORT": "5999",
        "GRIDMAP_BASEMAP_URL": "",
        "GRIDMAP_WARM_INDEX": "1",
        "USER": "王芳",
    }
    s = Settings.from_env(environ=env)
    assert s.home == tmp_path and s.database_url == "postgresql+psycopg://u@h:1/d" and s.pg_port() == 5999
    assert s.basemap_url == "" and s.warm and s.user == "王芳" and s.layers_dir == PACKAGE_LAYERS
    assert s.risk_rules_path == PACKAGE_LAYERS / "risk.toml"
    plain = Settings.from_env({"home": tmp_path}, environ={})
    assert plain.pg_port() == DEFAULT_PG_PORT and plain.external_database_url is None and not plain.warm
    assert plain.database_url.endswith(f":{DEFAULT_PG_PORT}/gridmap")


def test_tiles_follow_the_base_map_crs(demo_url, tmp_path, monkeypatch):
    """layers/basemap.toml says gcj02: tiles without ?crs= are shifted for it (they were not)."""
    folder = layers_copy(tmp_path)
    text = (folder / "basemap.toml").read_text(encoding="utf-8")
    (folder / "basemap.toml").write_text(text.replace('crs = "wgs84"', 'crs = "gcj02"'), encoding="utf-8")
    monkeypatch.setenv("GRIDMAP_LAYERS", str(folder))
    client = create_app({"DATABASE_URL": demo_url, "TESTING": True}).test_client()
    with sa.create_engine(demo_url).connect() as conn:
        lon, lat = conn.execute(
            sa.text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid WHERE level = 'micro' "
                "AND valid_to IS NULL ORDER BY code LIMIT 1) s"
            )
        ).one()
    t = mercantile.tile(lon, lat, 15)
    url = f"/tiles/micro/{t.z}/{t.x}/{t.y}.pbf"
    default, gcj, wgs = (client.get(url + q).data for q in ("", "?crs=gcj02", "?crs=wgs84"))
    assert default == gcj != wgs


def _rules_that_make_one_red_yellow(tmp_path) -> Path:
    """risk.toml whose red threshold is 100 and yellow threshold 1: one red element makes a grid yellow."""
    path = tmp_path / "strict" / "risk.toml"
    path.parent.mkdir()
    text = (LAYERS / "risk.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^red_threshold = 1\b", "red_threshold = 100", text, count=1)
    text = re.sub(r"(?m)^yellow_threshold = 3\b", "yellow_threshold = 1", text, count=1)
    path.write_text(text, encoding="utf-8")
    return path


def _colour(engine, code):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT colour FROM grid_risk WHERE code = :c"), {"c": code}).scalar()


def test_every_rollup_uses_the_rules_in_force(engine, database_url, cli, tmp_path, bearer, monkeypatch):
    """An edit, a partition commit and an import --replace refresh the roll-up with the app's (or the
    command's) rules, not the shipped defaults."""
    city = cf.city()
    cf.load(cli, city, tmp_path)
    lon, lat = _lonlat(500, 500)
    (tmp_path / "red.csv").write_text(
        f"kind,colour,name,marked_by,lon,lat\nperson,red,张三,王芳,{lon},{lat}\n", encoding="utf-8"
    )
    assert cli("risk", "import", tmp_path / "red.csv").exit_code == 0
    assert _colour(engine, M1) == "red"  # the shipped rules: any red element makes the grid red
    strict = _rules_that_make_one_red_yellow(tmp_path)
    client = create_app({"DATABASE_URL": database_url, "TESTING": True, "RISK_RULES": strict}).test_client()
    planner = bearer("planner")

    etag = client.get(f"/api/v1/grids/{M2}").headers["ETag"]
    res = client.post(
        "/api/v1/edits",
        json={"op": "update", "code": M2, "properties": {"name": "改名"}},
        headers={**planner, "If-Match": etag},
    )
    assert res.status_code == 201, res.get_json()
    assert _colour(engine, M1) == "yellow"  # the edit rolled up with the app's rules

    assert cli("risk", "rollup").exit_code == 0 and _colour(engine, M1) == "red"
    res = client.post("/api/v1/partition", json={"courtyard": Y1, "commit": True}, headers=planner)
    assert res.status_code == 200, res.get_json()
    holder = _holder(engine)
    assert _colour(engine, holder) == "yellow"  # the partition commit rolled up with the app's rules

    assert cli("risk", "rollup").exit_code == 0 and _colour(engine, holder) == "red"
    monkeypatch.setenv("GRIDMAP_RISK_RULES", str(strict))
    with engine.connect() as conn:  # the partition issued new codes (M1 and M2 are retired for good)
        now = conn.execute(
            sa.text("SELECT code FROM grid WHERE parent_code = :y AND valid_to IS NULL ORDER BY code"), {"y": Y1}
        ).scalars()
        micro = [{**g, "code": c} for g, c in zip([g for g in city["micro"] if g["code"] in (M1, M2)], now)]
    res = cli("import", cf.write(micro, tmp_path, "micro-again"), "--level", "micro", "--replace")
    assert res.exit_code == 0, res.output
    assert _colour(engine, _holder(engine)) == "yellow"  # the import rolled up with the command's rules


def _holder(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT micro_code FROM risk_element")).scalar_one()


def _lonlat(x, y):
    p = geo.from_local([shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


def test_the_household_band_is_one_constant():
    """50 and 70 stand together in domain/levels.py only (they were typed in four places)."""
    holders = []
    for path in sorted((ROOT / "gridmap").rglob("*.py")):
        ints = {
            n.value
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Constant) and type(n.value) is int
        }
        if {50, 70} <= ints:
            holders.append(path.relative_to(ROOT).as_posix())
    assert holders == ["gridmap/domain/levels.py"]


def test_a_malformed_toml_file_is_one_line(cli, engine, tmp_path, monkeypatch, database_url):
    folder = layers_copy(tmp_path)
    (folder / "risk.toml").write_text("[visit_days]\nred = 7\nyellow = \n", encoding="utf-8")
    monkeypatch.setenv("GRIDMAP_LAYERS", str(folder))
    res = cli("risk", "rollup")
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith(f"gridmap: error: {folder / 'risk.toml'}: not valid TOML") and "line 3" in lines[0]
    (folder / "levels.toml").write_text("[[level]\n", encoding="utf-8")
    client = create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()
    res = client.get("/tiles/micro/15/1/1.pbf")
    message = res.get_json()["error"]["message"]
    assert res.status_code == 400 and message.startswith(f"{folder / 'levels.toml'}: not valid TOML")
    assert "line 1" in message and "\n" not in message


def test_household_band_setting():
    """GRIDMAP_HOUSEHOLD_BAND feeds the map's histogram; a malformed one is an error naming it."""
    assert Settings.from_env(environ={}).household_band == (50, 70)
    assert Settings.from_env(environ={"GRIDMAP_HOUSEHOLD_BAND": "45-65"}).household_band == (45, 65)
    for bad in ("70-50", "50", "a-b", "0-10"):
        with pytest.raises(InputError, match="GRIDMAP_HOUSEHOLD_BAND must be MIN-MAX"):
            Settings.from_env(environ={"GRIDMAP_HOUSEHOLD_BAND": bad})
