"""Retired grids do not vanish (issue #15 item 2): ``GET /api/v1/grids/{code}`` of a retired grid is
410 Gone with its last version, when and by which edit it was retired, and where its area went; the
info panel says the same; search finds retired codes and says so instead of reading them as an address.
"""

from __future__ import annotations

import pytest
from test_edits import etag_of, post, pt, retire

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


@pytest.fixture
def split_y1(client, city, bearer):
    """Courtyard Y1 split across the middle into two new courtyards; returns their codes."""
    line = {"type": "LineString", "coordinates": [pt(-10, 1000), pt(1010, 1000)]}
    res = post(client, bearer("planner"), {"op": "split", "code": Y1, "line": line}, if_match=etag_of(client, Y1))
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def test_a_retired_grid_is_410_with_its_last_version_and_where_it_went(client, split_y1):
    res = client.get(f"/api/v1/grids/{Y1}")
    assert res.status_code == 410
    error = res.get_json()["error"]
    assert error["code"] == "gone"
    detail = error["detail"]
    assert detail["code"] == Y1 and detail["retired_at"].endswith("+08:00")
    assert detail["retired_by"]["id"] == split_y1["edit_id"] and detail["retired_by"]["action"] == "split"
    last = detail["last_version"]
    assert last["properties"]["code"] == Y1 and last["properties"]["valid_to"] == detail["retired_at"]
    assert last["geometry"]["type"] == "MultiPolygon"
    assert sorted(s["code"] for s in detail["successors"]) == sorted(split_y1["opened"])
    assert sum(s["area_m2"] for s in detail["successors"]) == pytest.approx(last["properties"]["area_m2"], rel=1e-6)
    assert error["message"].startswith(f"grid {Y1} was retired on ")
    assert f"by edit {split_y1['edit_id']} (split" in error["message"] and "its area is now in" in error["message"]
    # the panel of the map says the same; a code never issued stays a 404; a past date still shows it
    assert client.get(f"/api/v1/grids/{Y1}/panel").status_code == 410
    assert client.get("/api/v1/grids/41019900100100999").status_code == 404
    first = detail["last_version"]["properties"]["valid_from"]
    assert client.get(f"/api/v1/grids/{Y1}", query_string={"at": first}).status_code == 200


def test_search_finds_a_retired_code_and_says_so(client, split_y1):
    body = client.get("/api/v1/search", query_string={"q": Y1}).get_json()
    retired = [h for h in body["results"] if h["type"] == "retired"]
    assert [h["code"] for h in retired] == [Y1], body
    hit = retired[0]
    assert hit["retired_at"].endswith("+08:00") and sorted(hit["successors"]) == sorted(split_y1["opened"])
    assert hit["message"].startswith(f"{Y1} ") and "was retired on" in hit["message"]
    assert len(hit["bbox"]) == 4 and "address_error" not in body


def test_search_of_a_retired_micro_grid_code(client, city, bearer):
    res = retire(client, bearer("planner"), M2, M1)
    assert res.status_code == 201, res.get_json()
    body = client.get("/api/v1/search", query_string={"q": M2}).get_json()
    assert [(h["type"], h["code"], h["successors"]) for h in body["results"]] == [("retired", M2, [M1])]
    assert "no building number" not in str(body)


def test_who_retired_a_grid_and_why_need_a_role(client, city, bearer):
    """The 410 of a retired grid names the edit that retired it; the planner who made it and the reason
    (free text that may name people) are personal, as in the edit log (before: both shown to anyone,
    the planner's name in the message too)."""
    body = {"op": "retire", "code": M2, "gap_to": M1, "if_match": {M1: etag_of(client, M1)}}
    res = post(client, bearer("planner"), {**body, "reason": "张三家拆迁 13800001111"}, if_match=etag_of(client, M2))
    assert res.status_code == 201, res.get_json()
    anonymous = client.get(f"/api/v1/grids/{M2}").get_json()["error"]
    assert anonymous["detail"]["retired_by"]["action"] == "retire"
    assert "actor" not in anonymous["detail"]["retired_by"] and "reason" not in anonymous["detail"]["retired_by"]
    assert "test-planner" not in anonymous["message"] and "张三" not in str(anonymous)
    viewer = client.get(f"/api/v1/grids/{M2}", headers=bearer("viewer")).get_json()["error"]
    assert viewer["detail"]["retired_by"]["actor"] == "test-planner"
    assert viewer["detail"]["retired_by"]["reason"] == "张三家拆迁 13800001111"
