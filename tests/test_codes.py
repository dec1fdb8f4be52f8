"""A grid code, once issued, is never issued again (issue #15 item 1): partition, split, create and
import pick or accept only codes beyond every code ever issued under the parent, and the database's
own refusal (migration 0007's trigger) is a 409 / one CLI line, never a 500 or a traceback.

On the small test city (tests/cityfactory.py): courtyard Y1 holds micro-grids M1 (south) and M2
(north), 60 households each.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from test_edits import etag_of, ll, post, pt, retire

from gridmap.domain.boundaries import Grid
from gridmap.errors import Conflict
from gridmap.store import db, grids

import cityfactory as cf

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


@pytest.fixture
def planner(city, bearer):
    return bearer("planner")


def _retire_m2(client, planner):
    """Retire M2 (its area goes to M1): code 02 is then retired for good."""
    res = retire(client, planner, M2, M1)
    assert res.status_code == 201, res.get_json()


def test_partition_after_a_retirement_issues_new_codes_in_the_dry_run_and_the_commit(client, planner, cli):
    _retire_m2(client, planner)
    res = cli("partition", "--courtyard", Y1, "--dry-run", "--format", "json")
    assert res.exit_code == 0, res.output
    dry = json.loads(res.output)["courtyards"][0]["micro_grids"]
    assert [g["code"] for g in dry] == [Y1 + "03", Y1 + "04"]
    res = cli("partition", "--courtyard", Y1, "--format", "json")
    assert res.exit_code == 0, res.output
    assert [g["code"] for g in json.loads(res.output)["courtyards"][0]["micro_grids"]] == [Y1 + "03", Y1 + "04"]
    history = json.loads(cli("history", M2, "--format", "json").output)
    assert len(history["versions"]) == 1  # no unrelated grid under the retired code
    # a second partition goes on counting: 01..04 were all issued
    res = cli("partition", "--courtyard", Y1, "--format", "json")
    assert [g["code"] for g in json.loads(res.output)["courtyards"][0]["micro_grids"]] == [Y1 + "05", Y1 + "06"]
    assert cli("validate").exit_code == 0


def test_split_and_create_pick_codes_beyond_retired_ones(client, planner):
    _retire_m2(client, planner)
    line = {"type": "LineString", "coordinates": [pt(500, -10), pt(500, 2010)]}
    res = post(client, planner, {"op": "split", "code": M1, "line": line}, if_match=etag_of(client, M1))
    assert res.status_code == 201, res.get_json()
    assert sorted(res.get_json()["opened"]) == [Y1 + "03", Y1 + "04"]


@pytest.mark.parametrize("op", ["create", "split"])
def test_a_retired_code_given_by_hand_is_409_naming_the_retirement(client, planner, op):
    _retire_m2(client, planner)
    if op == "create":
        geometry = ll(cf.rect(0, 0, 500, 500))
        spec = {"level": "micro", "parent_code": Y1, "code": M2, "name": "旧码", "geometry": geometry}
        body = {"op": "create", "grid": spec, "carve": True, "dry_run": True}
    else:
        line = {"type": "LineString", "coordinates": [pt(500, -10), pt(500, 2010)]}
        body = {"op": "split", "code": M1, "line": line, "codes": [M2, Y1 + "09"], "dry_run": True}
    res = post(client, planner, body)
    assert res.status_code == 409, res.get_json()
    message = res.get_json()["error"]["message"]
    assert message.startswith(f"grid code {M2} was retired on ") and "never issued again" in message


def test_import_of_a_retired_code_names_the_row(client, planner, cli, tmp_path):
    _retire_m2(client, planner)
    row = dict(cf.find(cf.city(), "micro", M2))
    path = cf.write([row], tmp_path, "again")
    res = cli("import", path, "--level", "micro")
    assert res.exit_code == 2
    line = res.output.strip()
    assert len(line.splitlines()) == 1 and f"code {M2} was retired on " in line and "row 1" in line, line
    path = cf.write([dict(cf.find(cf.city(), "micro", M1))], tmp_path, "other_level")
    res = cli("import", path, "--level", "courtyard", "--replace")
    assert res.exit_code == 2 and f"code {M1} was issued for a micro, not a courtyard" in res.output


def test_the_databases_refusal_is_a_conflict_not_a_500(client, planner, city):
    _retire_m2(client, planner)
    with city.connect() as conn:
        m1 = grids.current(conn, [M1])[M1]
    again = Grid(code=M2, name="旧码", level="micro", parent_code=Y1, geom=m1.geom)
    with pytest.raises(Conflict, match=f"grid code {M2} was retired on .*; a code is never issued again"):
        with city.begin() as conn:
            grids.open_versions(conn, [again], db.now(conn))
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM grid WHERE code = :c"), {"c": M2}).scalar() == 1
