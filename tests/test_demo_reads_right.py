"""Demo data that reads right (issue #15 item 16): a risk element's reason fits its name, and
population adds up across levels as households do, which `validate` now checks."""

from __future__ import annotations

import json
import re

import sqlalchemy as sa

from gridmap.domain.demo import risk as demo_risk
from gridmap.domain.levels import LEVELS
from gridmap.store import db

import cityfactory as cf


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"(\{yard\}|\{n\}|\{word\})", template)
    wild = {"{yard}": ".+", "{n}": r"\d+", "{word}": ".{2}"}
    return re.compile("^" + "".join(wild.get(p, re.escape(p)) for p in parts) + "$")


def test_every_reason_fits_its_element(demo_url):
    with db.engine(demo_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, colour, name, reason FROM risk_element")).all()
    assert len(rows) > 1000
    checked = 0
    for kind, colour, name, reason in rows:
        if kind == "person":
            assert reason in demo_risk._KIND_TEXT["person"][colour]
            continue
        fitting = [r for t, r in demo_risk._KIND_TEXT[kind] if _pattern(t).match(name)]
        assert fitting and any(reason in r[colour] for r in fitting), (kind, colour, name, reason)
        checked += 1
    assert checked > 500
    # the example cannot happen: a billboard is never marked for a lift's inspection
    assert not any("广告牌" in name and "电梯" in reason for _, _, name, reason in rows)


def test_population_adds_up_across_levels(demo_url, demo_client):
    levels = demo_client.get("/api/v1/stats").get_json()["levels"]
    assert len({levels[lv]["population"] for lv in LEVELS}) == 1, levels
    assert len({levels[lv]["households"] for lv in LEVELS}) == 1
    with db.engine(demo_url).connect() as conn:
        bad = conn.execute(
            sa.text("""
            SELECT p.code FROM grid p JOIN grid c ON c.parent_code = p.code AND c.valid_to IS NULL
              AND c.level <> 'special'
            WHERE p.valid_to IS NULL GROUP BY p.code, p.population HAVING p.population <> sum(c.population)""")
        ).all()
    assert bad == []


def test_validate_checks_population(engine, cli, tmp_path):
    city = cf.city()
    for row in city["micro"]:
        row["population"] = 150
    for level, n in (("courtyard", 2), ("community", 4), ("street", 8), ("district", 16)):
        for row in city[level]:
            row["population"] = 150 * n
    city["micro"][0]["population"] = 149
    cf.load(cli, city, tmp_path)
    res = cli("validate", "--format", "json")
    assert res.exit_code == 1
    problems = json.loads(res.output)["problems"]
    assert [(p["kind"], p["codes"]) for p in problems] == [("population_mismatch", [city["micro"][0]["parent_code"]])]
    assert problems[0]["message"].endswith("has a population of 300, its children 299")
