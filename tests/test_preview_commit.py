"""An edit's dry run counts exactly what its commit does (issue #15 item 6): for every operation on
micro-grids, the residents, reports and risk elements the preview says change grid are the ones the
commit reassigns, no more (rows looked at but left in their grid are not "reassigned")."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from test_edits import etag_of, ll, post, pt

import cityfactory as cf

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"
#: points (metres in the city) inside Y1: both micro-grids, near their shared edge, one on it
SPOTS = [(500, 200), (800, 700), (200, 950), (500, 1000), (800, 1200), (300, 1800), (600, 450)]
KINDS = ("residents", "reports", "risk_elements")


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    rows = [pt(x, y) for x, y in SPOTS]
    with engine.begin() as conn:
        for table, column in (("resident", "address"), ("report", "text")):
            for lon, lat in rows:
                conn.execute(
                    sa.text(
                        f"INSERT INTO {table} ({column}, geom, micro_code) VALUES ('x', "
                        "ST_SetSRID(ST_MakePoint(:x, :y), 4326), (SELECT code FROM grid WHERE level = 'micro' "
                        "AND valid_to IS NULL AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
                        "ORDER BY code LIMIT 1))"
                    ),
                    {"x": lon, "y": lat},
                )
    elements = tmp_path / "risk.csv"
    pd.DataFrame(
        {
            "kind": "place",
            "colour": "yellow",
            "name": [f"隐患{i}" for i in range(len(rows))],
            "marked_by": "王芳",
            "lon": [p[0] for p in rows],
            "lat": [p[1] for p in rows],
        }
    ).to_csv(elements, index=False)
    assert cli("risk", "import", elements).exit_code == 0
    return engine


def _line(x0, y0, x1, y1):
    return {"type": "LineString", "coordinates": [pt(x0, y0), pt(x1, y1)]}


OPS = {
    "replace": lambda c: (
        {
            "op": "replace",
            "code": M1,
            "geometry": ll(cf.rect(0, 0, 1000, 900)),
            "gap_to": M2,
            "if_match": {M2: etag_of(c, M2)},
        },
        etag_of(c, M1),
    ),
    "move_boundary": lambda c: (
        {
            "op": "move_boundary",
            "code": M1,
            "other": M2,
            "geometry": ll(cf.rect(0, 0, 1000, 1300)),
            "if_match": {M2: etag_of(c, M2)},
        },
        etag_of(c, M1),
    ),
    "split": lambda c: ({"op": "split", "code": M1, "line": _line(550, -10, 550, 1010)}, etag_of(c, M1)),
    "merge": lambda c: ({"op": "merge", "codes": [M1, M2], "if_match": {M1: etag_of(c, M1), M2: etag_of(c, M2)}}, None),
    "create": lambda c: (
        {
            "op": "create",
            "carve": True,
            "if_match": {M1: etag_of(c, M1)},
            "grid": {"level": "micro", "parent_code": Y1, "name": "新网格", "geometry": ll(cf.rect(500, 0, 1000, 500))},
        },
        None,
    ),
    "retire": lambda c: ({"op": "retire", "code": M2, "gap_to": M1, "if_match": {M1: etag_of(c, M1)}}, etag_of(c, M2)),
}


@pytest.mark.parametrize("op", list(OPS))
def test_preview_counts_what_the_commit_does(client, city, bearer, op):
    planner = bearer("planner")
    body, if_match = OPS[op](client)
    dry = post(client, planner, {**body, "dry_run": True}, if_match=if_match)
    assert dry.status_code == 200, dry.get_json()
    preview = {k: dry.get_json()["moved"][k]["count"] for k in KINDS}
    assert sum(preview.values()) > 0, preview  # the case moves something
    done = post(client, planner, body, if_match=if_match)
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["reassigned"] == preview
