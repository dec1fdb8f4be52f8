"""The demo city: real names and codes, exact counts at both scales, a whole hierarchy."""

import json

import pyogrio
import pytest
import sqlalchemy as sa

from gridmap.services import demo as demo_city
from gridmap.services import grid_views, validation
from gridmap.store import db


def test_guancheng_loaded_counts_and_names(demo_url):
    stats = grid_views.stats(db.engine(demo_url))
    counts = {level: v["grids"] for level, v in stats["levels"].items()}
    assert {k: counts[k] for k in ("district", "street", "community", "courtyard", "micro")} == {
        "district": 1,
        "street": 14,
        "community": 155,
        "courtyard": 756,
        "micro": 1878,
    }
    households = {level: v["households"] for level, v in stats["levels"].items() if level != "special"}
    assert len(set(households.values())) == 1 and stats["building_households"] == households["micro"]
    with db.engine(demo_url).connect() as conn:
        name = conn.execute(sa.text("SELECT name FROM grid WHERE code = '410104006010'")).scalar_one()
        street = conn.execute(sa.text("SELECT name FROM grid WHERE code = '410104006'")).scalar_one()
        band = conn.execute(sa.text("SELECT min(households), max(households) FROM grid WHERE level = 'micro'")).one()
        yard = conn.execute(sa.text("SELECT name FROM grid WHERE code = '410104006010001'")).scalar_one()
    assert (name, street, yard) == ("宇通花园社区", "二里岗街道", "宇通花园")
    assert 50 <= band[0] and band[1] <= 70


def test_guancheng_validates_clean(demo_url):
    assert validation.validate(db.engine(demo_url)) == []


def test_generator_is_deterministic(tmp_path):
    a = demo_city.generate("guancheng", 3, tmp_path / "a")
    b = demo_city.generate("guancheng", 3, tmp_path / "b")
    assert a == b
    assert (tmp_path / "a" / "micro.gpkg").read_bytes() != b"" and pyogrio.read_dataframe(
        tmp_path / "a" / "micro.gpkg"
    ).equals(pyogrio.read_dataframe(tmp_path / "b" / "micro.gpkg"))


@pytest.mark.slow
def test_zhengzhou_scale_counts(tmp_path):
    manifest = demo_city.generate("zhengzhou", 11, tmp_path)
    counts = manifest["counts"]
    assert {k: counts[k] for k in ("district", "street", "community", "courtyard", "micro")} == {
        "district": 12,
        "street": 216,
        "community": 3503,
        "courtyard": 17091,
        "micro": 42453,
    }
    assert 2_400_000 <= counts["households"] <= 2_650_000
    for entry in manifest["files"]:
        if entry["level"] in counts and entry["file"].endswith((".gpkg", ".geojson")):
            assert pyogrio.read_info(tmp_path / entry["file"])["features"] == counts[entry["level"]]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
