"""The event centre against the real PostGIS and the real Flask app: intake and routing, the loop
with its log, deadlines and escalation (two tickers at once), duplicates, merge and split, rating
and reopening, the queue and statistics, photos, and the CLI."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
import threading
import xml.etree.ElementTree as ET
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from gridmap import geo
from gridmap.domain.events.assessment import assess
from gridmap.services import event_clock, event_demo, media
from gridmap.settings import Settings
from gridmap.store import db

from eventcity import (
    COMMUNITY,
    DISTRICT,
    MICRO,
    PNG,
    STREET,
    act,
    catalogue,
    centre,
    file,
    lonlat,
    pick,
)

# --- intake and routing ---------------------------------------------------------------------------


def test_an_automatic_matter_goes_to_the_communitys_department_and_says_why(client, event_city):
    matter = pick(True, "community", "cg")
    got = file(client, event_city["ingest"], matter)
    assert got["state"] == "dispatched" and got["inside"]
    assert got["route"]["department"] == f"{COMMUNITY}-cg"
    assert matter.code in got["route"]["why"] and COMMUNITY in got["route"]["why"]
    assert got["chain"]["micro"] == MICRO and got["reporter_key"]
    case = client.get(f"/api/v1/events/{got['id']}", headers=event_city["dispatcher"]).get_json()
    assert [e["action"] for e in case["timeline"]] == ["report", "file", "dispatch"]
    assert case["text"] == "井盖没了，很危险" and case["contacts"][0]["phone"] == "13900000000"
    assert case["contacts"][0]["at"].endswith("+08:00")  # before: an HTTP date in GMT


def test_personal_data_is_not_readable_without_a_role(client, event_city):
    got = file(client, event_city["ingest"], pick(True, "community", "cg"))
    for headers in ({}, event_city["viewer"]):
        case = client.get(f"/api/v1/events/{got['id']}", headers=headers).get_json()
        assert not {"text", "contacts", "address", "attributes"} & set(case), sorted(case)
        assert case["timeline"] and all(not {"note", "media", "actor"} & set(e) for e in case["timeline"])
        assert all(e["role"] for e in case["timeline"])  # which role acted stays, not who
    # the event centre's roles read them (web/privacy.py, CASE_READERS)
    case = client.get(f"/api/v1/events/{got['id']}", headers=event_city["dispatcher"]).get_json()
    assert case["text"] and case["contacts"] and all("actor" in e for e in case["timeline"])


def test_micro_matters_go_to_the_grid_worker_and_manual_ones_to_the_streets_queue(client, event_city):
    micro = file(client, event_city["ingest"], pick(True, "micro"))
    assert (micro["state"], micro["route"]["grid"], micro["route"]["workers"]) == ("dispatched", MICRO, 1)
    manual = file(client, event_city["ingest"], pick(False, "community"))
    assert (manual["state"], manual["route"]["queue"]) == ("filed", STREET)
    assert "by hand" in manual["route"]["why"]


def test_a_case_outside_every_grid_is_kept_flagged_and_queued_for_the_city(client, event_city):
    got = file(client, event_city["ingest"], pick(True, "community", "cg"), x=-3000, y=500)
    assert (got["inside"], got["state"], got["route"]["queue"]) == (False, "filed", "")
    case = client.get(f"/api/v1/events/{got['id']}", headers=event_city["dispatcher"]).get_json()
    assert case["outside"] is True and case["micro_code"] is None and case["lon"] is not None


def test_cases_are_located_by_gcj02_and_bd09_points_and_by_address(client, event_city):
    matter = pick(True, "community", "cg")
    lon, lat = lonlat(300, 500)
    for crs, convert in (("gcj02", geo.wgs84_to_gcj02), ("bd09", geo.wgs84_to_bd09)):
        x, y = convert(lon, lat)
        body = {"matter": matter.code, "lon": float(x), "lat": float(y), "crs": crs, "text": crs}
        res = client.post("/api/v1/events", json=body, headers=event_city["ingest"]).get_json()
        assert res["chain"]["micro"] == MICRO, crs
    # the test city's first courtyard is 测试10011花园, its building 1号楼 stands in MICRO
    body = {"matter": matter.code, "address": "测试10011花园1号楼", "text": "地址"}
    res = client.post("/api/v1/events", json=body, headers=event_city["ingest"]).get_json()
    assert (res["inside"], res["chain"]["micro"]) == (True, MICRO)
    unknown = {"matter": matter.code, "address": "没有这个小区9号楼", "text": "地址"}
    res = client.post("/api/v1/events", json=unknown, headers=event_city["ingest"])
    assert res.status_code == 201 and res.get_json()["inside"] is False  # kept, flagged, queued


def test_routing_is_simulated_without_filing(client, event_city, engine):
    lon, lat = lonlat(300, 500)
    res = client.get(f"/api/v1/events/route?matter={pick(True, 'community', 'cg').code}&lon={lon}&lat={lat}")
    assert res.status_code == 200 and res.get_json()["route"]["department"] == f"{COMMUNITY}-cg"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM report")).scalar() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lon": 1}, "matter is required"),
        ({"matter": "nope", "lon": 1, "lat": 2}, "unknown matter"),
        ({"matter": "01001"}, "a location is required"),
        ({"matter": "01001", "lon": "x", "lat": 1}, "lon must be a number"),
        ({"matter": "01001", "lon": 34.7, "lat": 113.6}, "coordinates look like swapped lat/lon: lon must come first"),
        ({"matter": "01001", "lon": 1, "lat": 2, "colour": 1}, "unknown field 'colour'"),
    ],
)
def test_bad_reports_are_400_naming_the_field(client, event_city, body, message):
    res = client.post("/api/v1/events", json=body, headers=event_city["ingest"])
    assert res.status_code == 400 and message in res.get_json()["error"]["message"]


def test_a_refused_action_leaves_no_photo_on_disk(client, event_city):
    """Photos are written only once the action passes every check (before: any caller with any reporter
    key could fill the disk: the photo of a request about a case that does not exist was kept, and so
    was that of a refused disposal)."""
    from gridmap.web.context import settings

    with client.application.app_context():
        root = media.folder(settings())
    photo = PNG + os.urandom(4096)  # a photo never sent before: its file would be new
    name = f"{hashlib.sha256(photo).hexdigest()}.png"
    res = client.post(
        "/api/v1/events/77777777/rate",
        headers={"X-Reporter-Key": "whatever"},
        data={"rating": "5", "photo": (io.BytesIO(photo), "p.png")},
    )
    assert res.status_code == 404 and not (root / "77777777" / name).exists()
    cid = file(client, event_city["ingest"], pick(True, "community", "cg", verify="site"))["id"]
    res = client.post(
        f"/api/v1/events/{cid}/dispose",
        headers=event_city["dispatcher"],  # a dispatcher does not dispose of cases
        data={"note": "已更换井盖", "after": (io.BytesIO(photo), "a.png")},
    )
    assert res.status_code == 403 and not (root / str(cid) / name).exists()


def test_the_nearest_case_names_swapped_coordinates(client, event_city):
    """As the report intake and the lookup do (before: "lat must be between -90 and 90, got 113.6")."""
    res = client.get("/api/v1/events/near?lon=34.7&lat=113.6", headers=event_city["dispatcher"])
    assert res.status_code == 400
    assert res.get_json()["error"]["message"] == (
        "coordinates look like swapped lat/lon: lon must come first: lon=34.7, lat=113.6"
    )
    assert client.get("/api/v1/events/near?lon=200&lat=10", headers=event_city["dispatcher"]).status_code == 400


# --- the loop ---------------------------------------------------------------------------------------


def test_the_whole_loop_with_photos_each_step_logged(client, event_city, engine):
    matter = pick(True, "community", "cg", verify="site")
    got = file(client, event_city["ingest"], matter)
    cid, lon, lat = got["id"], *lonlat(310, 505)
    # a disposal without an after-photo near the case is refused, naming the rule
    res = act(client, cid, "dispose", event_city["handler"], note="已更换井盖")
    assert res.status_code == 409 and "after-photo" in res.get_json()["error"]["message"]
    res = client.post(
        f"/api/v1/events/{cid}/dispose",
        headers=event_city["handler"],
        data={"note": "已更换井盖", "lon": str(lon), "lat": str(lat), "after": (io.BytesIO(PNG), "a.png")},
    )
    assert res.status_code == 200, res.get_json()
    assert act(client, cid, "verify", event_city["verifier"], note="现场核实").get_json()["state"] == "verified"
    # the dispatcher is offered the close, in the case and in the queue (before: never, "close" being
    # also a step only the server takes, from split_up)
    assert "close" in client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()["actions"]
    queue = client.get("/api/v1/events?state=verified", headers=event_city["dispatcher"]).get_json()
    assert "close" in next(c for c in queue["cases"] if c["id"] == cid)["actions"]
    assert act(client, cid, "close", event_city["dispatcher"]).get_json()["state"] == "closed"
    rated = client.post(
        f"/api/v1/events/{cid}/rate",
        json={"rating": 5, "reasons": ["及时"]},
        headers={"X-Reporter-Key": got["reporter_key"]},
    )
    assert rated.get_json()["state"] == "assessed"
    case = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    steps = [(e["action"], e["from_state"], e["to_state"]) for e in case["timeline"]]
    assert steps[3:] == [
        ("dispose", "dispatched", "disposed"),
        ("verify", "disposed", "verified"),
        ("close", "verified", "closed"),
        ("rate", "closed", "assessed"),
    ]
    photo = next(m for e in case["timeline"] for m in e["media"])
    assert photo["stage"] == "after" and photo["file"]
    served = client.get(f"/api/v1/events/{cid}/media/{photo['id']}", headers=event_city["dispatcher"])
    assert served.status_code == 200 and served.data == PNG
    assert client.get(f"/api/v1/events/{cid}/media/{photo['id']}").status_code in (401, 403)


def test_refusals_name_what_is_allowed(client, event_city):
    cid = file(client, event_city["ingest"], pick(True, "community", "cg"))["id"]
    res = act(client, cid, "close", event_city["dispatcher"])  # not from dispatched
    assert res.status_code == 409 and "suspend" in res.get_json()["error"]["detail"]["allowed"]
    res = act(client, cid, "dispose", event_city["viewer"], note="x")  # no loop role
    assert res.status_code == 403 and "handler" in res.get_json()["error"]["message"]
    res = act(client, cid, "dispose", event_city["supervisor"], note="x")  # not a handler
    allowed = res.get_json()["error"]["detail"]["allowed"]
    assert res.status_code == 403 and "supervise" in allowed and "dispose" not in allowed
    assert act(client, cid, "dispose").status_code == 403  # nobody at all


def test_the_verifier_must_not_be_the_disposer_and_stale_versions_are_refused(client, event_city):
    matter = pick(True, "community", "cg", verify="site")
    got = file(client, event_city["ingest"], matter)
    lon, lat = lonlat(300, 500)
    res = act(
        client,
        got["id"],
        "dispose",
        event_city["admin"],
        note="ok",
        lon=lon,
        lat=lat,
        media_urls=["https://example.org/after.jpg"],
    )
    assert res.status_code == 200
    res = act(client, got["id"], "verify", event_city["admin"])
    assert res.status_code == 409 and "must not be the disposer" in res.get_json()["error"]["message"]
    res = act(client, got["id"], "verify", event_city["verifier"], version=1)
    assert res.status_code == 412
    current = res.get_json()["error"]["detail"]["version"]
    res = act(client, got["id"], "verify", event_city["verifier"], version=0)  # before: 0 was no version at all
    assert res.status_code == 400 and "version must be a whole number from 1" in res.get_json()["error"]["message"]
    headers = {**event_city["verifier"], "If-Match": f'"{current}"'}  # an entity tag as HTTP quotes it
    assert client.post(f"/api/v1/events/{got['id']}/verify", json={}, headers=headers).status_code == 200


def test_an_unhappy_rating_opens_a_reopen_request(client, event_city, engine):
    got = file(client, event_city["ingest"], pick(True, "micro"))
    cid = got["id"]
    assert (
        act(client, cid, "dispose", event_city["handler"], note="done", media_urls=["https://e.org/a.jpg"]).status_code
        == 200
    )
    act(client, cid, "verify", event_city["verifier"])
    act(client, cid, "close", event_city["dispatcher"])
    res = client.post(f"/api/v1/events/{cid}/rate", json={"rating": 2}, headers={"X-Reporter-Key": "wrong"})
    assert res.status_code == 403
    res = client.post(f"/api/v1/events/{cid}/rate", json={"rating": 2}, headers={"X-Reporter-Key": got["reporter_key"]})
    assert res.get_json()["state"] == "reopen_requested"
    assert act(client, cid, "reopen", event_city["dispatcher"]).get_json()["state"] == "dispatched"
    case = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    assert case["reopened"] == 1 and case["closed_at"] is None and case["due_at"] is not None


def test_a_closed_case_nobody_rates_is_assessed_by_the_tick_after_the_rating_period(client, event_city, engine):
    cen = centre(engine)
    cid = file(client, event_city["ingest"], pick(True, "micro"))["id"]
    act(client, cid, "dispose", event_city["handler"], note="done", media_urls=["https://e.org/a.jpg"])
    act(client, cid, "verify", event_city["verifier"])
    assert act(client, cid, "close", event_city["dispatcher"]).get_json()["state"] == "closed"
    days = cen.catalogue.defaults.rating_days
    assert event_clock.tick(cen, cen.now() + timedelta(days=days - 1))["assessed"] == 0
    assert event_clock.tick(cen, cen.now() + timedelta(days=days, hours=1))["assessed"] == 1
    case = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    assert case["state"] == "assessed" and case["rating"] is None
    assert case["timeline"][-1]["action"] == "assess" and case["timeline"][-1]["actor"] == "system"


def test_suspending_pauses_the_clock_and_resuming_moves_the_deadline(client, event_city, engine):
    cid = file(client, event_city["ingest"], pick(True, "community", "cg"))["id"]
    before = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    assert act(client, cid, "suspend", event_city["handler"]).status_code == 409  # a note is required
    assert act(client, cid, "suspend", event_city["handler"], note="等待配件").get_json()["state"] == "suspended"
    with engine.begin() as conn:  # the pause began a week ago: a working week of the clock stood still
        conn.execute(sa.text("UPDATE report SET paused_at = paused_at - interval '7 days' WHERE id = :id"), {"id": cid})
    paused = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    assert paused["tick_at"] is None and paused["paused_at"] is not None
    assert act(client, cid, "resume", event_city["handler"]).get_json()["state"] == "dispatched"
    after = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    assert after["due_at"] > before["due_at"] and after["paused_seconds"] >= 7 * 86_400
    assert before["due_at"].endswith("+08:00")  # times in the configured zone, stated


def test_a_handler_suspends_and_resumes_only_the_cases_of_their_departments(client, event_city):
    """As README's roles table says (before: any handler could stop the clock of any case in the city)."""
    cid = file(client, event_city["ingest"], pick(True, "street"))["id"]  # to a street department
    res = act(client, cid, "suspend", event_city["handler"], note="等待配件")
    assert res.status_code == 409
    assert res.get_json()["error"]["message"] == (
        "cannot suspend now: only the assigned department or grid worker, or a dispatcher, may do this"
    )
    assert act(client, cid, "suspend", event_city["dispatcher"], note="等待配件").get_json()["state"] == "suspended"
    assert act(client, cid, "resume", event_city["handler"]).status_code == 409
    assert act(client, cid, "resume", event_city["dispatcher"]).get_json()["state"] == "dispatched"


def test_a_handler_put_in_a_department_by_the_cli_may_act_on_its_cases(client, event_city, cli):
    """`gridmap events member DEPARTMENT USER` (before: nothing but code could make a handler a member,
    so no handler made with `gridmap users add` could ever dispose of a case)."""
    cid = file(client, event_city["ingest"], pick(True, "street"))["id"]
    department = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()["department_code"]
    assert act(client, cid, "suspend", event_city["handler"], note="等待配件").status_code == 409
    res = cli("events", "member", department, "test-handler")
    assert res.exit_code == 0 and res.output.strip() == f"test-handler (handler) is now in {department}"
    assert cli("events", "member", department, "test-handler").output.strip().endswith(f"already in {department}")
    assert act(client, cid, "suspend", event_city["handler"], note="等待配件").get_json()["state"] == "suspended"
    res = cli("events", "member", department, "test-handler", "--remove")
    assert res.exit_code == 0 and res.output.strip() == f"test-handler left {department}"
    assert act(client, cid, "resume", event_city["handler"]).status_code == 409
    for args, why in (
        (("nope", "test-handler"), "no department 'nope' (GET /api/v1/departments lists them)"),
        ((department, "nobody"), "no user 'nobody' (`gridmap users list` shows them)"),
    ):
        res = cli("events", "member", *args)
        assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == f"gridmap: error: {why}"


# --- deadlines and escalation -------------------------------------------------------------------------


def _levels(engine, cid):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT handling_level, department_code, assignee, escalations, tick_at FROM report WHERE id = :id"
            ),
            {"id": cid},
        ).one()


def test_escalation_climbs_every_level_up_the_chain_then_stops(client, event_city, engine):
    cen, matter = centre(engine), pick(True, "micro")
    cid = file(client, event_city["ingest"], matter)["id"]
    with engine.connect() as conn:
        warn_at = conn.execute(sa.text("SELECT warn_at FROM report WHERE id = :id"), {"id": cid}).scalar()
    assert event_clock.tick(cen, warn_at + timedelta(seconds=1)) == {
        "warned": 1,
        "escalated": 0,
        "at_top": 0,
        "assessed": 0,
    }
    assert event_clock.tick(cen, warn_at + timedelta(seconds=2))["warned"] == 0  # once
    seen, when = [_levels(engine, cid)[0]], cen.now()
    for _ in range(6):
        when += timedelta(days=60)  # far past any deadline of the level reached
        event_clock.tick(cen, when)
        seen.append(_levels(engine, cid)[0])
    assert seen[:5] == ["micro", "courtyard", "community", "street", "district"]
    assert seen[5:] == ["district", "district"]
    level, dept, assignee, escalations, tick_at = _levels(engine, cid)
    assert (dept, escalations, tick_at) == (f"{DISTRICT}-{matter.handlers['district']}", 4, None)
    case = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    actions = [e["action"] for e in case["timeline"]]
    assert actions.count("escalate") == 4 and actions.count("overdue") == 1 and actions.count("warn") == 1


def test_two_tickers_at_once_escalate_each_due_case_exactly_once(client, event_city, engine):
    cen = centre(engine)
    ids = [file(client, event_city["ingest"], pick(True, "community", "cg"), x=100 + i * 30)["id"] for i in range(40)]
    with engine.begin() as conn:  # all of them past their deadline, warned already
        conn.execute(
            sa.text(
                "UPDATE report SET due_at = now() - interval '1 hour', warned_at = now(), "
                "tick_at = now() - interval '1 hour' WHERE id = ANY(:ids)"
            ),
            {"ids": ids},
        )
    results, barrier = [], threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(event_clock.tick(cen, cen.now(), batch=7))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["escalated"] for r in results) == len(ids)
    with engine.connect() as conn:
        per_case = conn.execute(
            sa.text("SELECT report_id, count(*) FROM report_log WHERE action = 'escalate' GROUP BY report_id"), {}
        ).all()
    assert sorted(r[0] for r in per_case) == sorted(ids) and {r[1] for r in per_case} == {1}


# --- duplicates, merge, split ---------------------------------------------------------------------------


def test_duplicates_are_suggested_and_a_merge_keeps_the_reporters(client, event_city, engine):
    matter = pick(True, "community", "cg")
    first = file(client, event_city["ingest"], matter)
    second = file(client, event_city["ingest"], matter, x=320, y=520, contact={"name": "赵六", "phone": "13700000000"})
    assert [d["case_id"] for d in second["duplicates"]] == [first["id"]]
    assert second["duplicates"][0]["distance_m"] < matter.duplicate_radius_m
    far = file(client, event_city["ingest"], matter, x=1900, y=1900)
    assert far["duplicates"] == []
    res = act(client, second["id"], "merge", event_city["dispatcher"], target=first["id"], note="同一井盖")
    assert res.get_json()["state"] == "merged"
    kept = client.get(f"/api/v1/events/{first['id']}", headers=event_city["dispatcher"]).get_json()
    assert {c["phone"] for c in kept["contacts"]} == {"13900000000", "13700000000"}
    assert "merged_in" in [e["action"] for e in kept["timeline"]]
    assert act(client, far["id"], "merge", event_city["dispatcher"], target=far["id"]).status_code == 400


def test_a_split_case_closes_when_its_children_are_done(client, event_city, engine):
    parent = file(client, event_city["ingest"], pick(False, "community"))
    manual = pick(False, "street")
    children = [{"matter": manual.code, "note": "交通部分"}, {"matter": manual.code, "note": "市场部分"}]
    assert act(client, parent["id"], "split", event_city["dispatcher"], children=children[:1]).status_code == 409
    assert (
        act(client, parent["id"], "split", event_city["dispatcher"], children=children).get_json()["state"]
        == "split_up"
    )
    with engine.connect() as conn:
        kids = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT id FROM report WHERE parent_id = :p ORDER BY id"), {"p": parent["id"]}
            )
        ]
    assert len(kids) == 2
    act(client, kids[0], "cancel", event_city["dispatcher"], note="重复")
    assert client.get(f"/api/v1/events/{parent['id']}").get_json()["state"] == "split_up"
    act(client, kids[1], "cancel", event_city["dispatcher"], note="已由其他部门处理")
    assert client.get(f"/api/v1/events/{parent['id']}").get_json()["state"] == "closed"


# --- queue and statistics -------------------------------------------------------------------------------


def test_the_queue_of_a_street_by_deadline_and_stats_match_their_definitions(client, event_city, engine):
    cg, manual = pick(True, "community", "cg"), pick(False, "community")
    ids = [file(client, event_city["ingest"], m, x=100 + 40 * i)["id"] for i, m in enumerate([cg, manual, cg, manual])]
    res = client.get(f"/api/v1/events?grid={STREET}&state=filed", headers=event_city["dispatcher"]).get_json()
    assert res["total"] == 2 and {c["id"] for c in res["cases"]} == {ids[1], ids[3]}
    page = client.get(f"/api/v1/events?grid={STREET}", headers=event_city["dispatcher"]).get_json()["cases"]
    assert [c["due_at"] for c in page] == sorted(c["due_at"] for c in page)
    assert client.get(f"/api/v1/events?grid={STREET}").status_code == 401
    bad = client.get("/api/v1/events?grid=nope", headers=event_city["dispatcher"])  # not a code (web/params.py)
    assert bad.status_code == 400 and "grid must be a grid code" in bad.get_json()["error"]["message"]
    assert client.get("/api/v1/events?grid=419999999", headers=event_city["dispatcher"]).status_code == 404
    with engine.begin() as conn:  # one closed late, one closed on time with a rating
        conn.execute(
            sa.text(
                "UPDATE report SET state = 'closed', closed_at = due_at + interval '2 hours', "
                "escalations = 1 WHERE id = :id"
            ),
            {"id": ids[0]},
        )
        conn.execute(
            sa.text(
                "UPDATE report SET state = 'assessed', closed_at = received_at + interval '1 hour', "
                "rating = 4, reopened = 1 WHERE id = :id"
            ),
            {"id": ids[2]},
        )
        frame = pd.read_sql(
            sa.text(
                "SELECT community_code, received_at AS filed_at, closed_at, due_at, escalations, "
                "reopened > 0 AS reopened, rating::float AS rating FROM report"
            ),
            conn,
        )
    got = client.get(f"/api/v1/events/stats?group=community&grid={STREET}").get_json()["rows"]
    want = assess(frame, "community_code")
    for row in got:
        exp = want.loc[row["key"]]
        assert row["cases"] == exp.cases and row["closed"] == exp.closed and row["escalations"] == exp.escalations
        for key in ("on_time_rate", "median_hours", "reopen_rate", "satisfaction"):
            assert row[key] == pytest.approx(exp[key]) if exp[key] is not None else row[key] is None
    csv_text = client.get(f"/api/v1/events/stats?group=community&grid={STREET}&format=csv").data.decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("key,cases,closed") and COMMUNITY in csv_text


# --- Open311 GeoReport v2 -------------------------------------------------------------------------------


def _token(headers):
    return headers["Authorization"].split()[1]


def test_open311_services_and_a_request_filed_and_read_in_json_and_xml(client, event_city):
    services = client.get("/open311/v2/services.json").get_json()
    assert len(services) == len(catalogue().matters) and {"service_code", "group"} <= set(services[0])
    assert client.get("/open311/v2/services.xml").data.startswith(b"<?xml")
    matter = pick(True, "community", "cg")
    lon, lat = lonlat(300, 500)
    form = {
        "api_key": _token(event_city["ingest"]),
        "service_code": matter.code,
        "lat": lat,
        "long": lon,
        "description": "井盖丢失",
        "first_name": "三",
        "last_name": "张",
        "phone": "13600000000",
    }
    res = client.post("/open311/v2/requests.xml", data=form)
    assert res.status_code == 201 and res.content_type.startswith("text/xml")
    rid = int(ET.fromstring(res.data).find("request/service_request_id").text)
    for headers in ({}, event_city["viewer"]):  # no role that works cases: the spec's fields, personal ones null
        one = client.get(f"/open311/v2/requests/{rid}.json", headers=headers).get_json()
        assert one[0]["service_request_id"] == rid and one[0]["status"] == "open"
        assert (one[0]["description"], one[0]["address"], one[0]["media_url"]) == (None, None, None)
    mine = client.get(f"/open311/v2/requests/{rid}.json", headers=event_city["dispatcher"]).get_json()
    assert mine[0]["description"] == "井盖丢失"
    listed = client.get(f"/open311/v2/requests.json?service_code={matter.code}&status=open").get_json()
    assert [r["service_request_id"] for r in listed] == [rid]
    assert client.get("/open311/v2/requests.json?status=closed").get_json() == []


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"service_code": None}, 400, "service_code is required"),
        ({"service_code": "99999"}, 400, "not found"),
        ({"lat": "91"}, 400, "lat must be between"),
        ({"lat": None, "long": None}, 400, "a location is required"),
        ({"api_key": "gm_nope"}, 403, "invalid api_key"),
        ({"api_key": None}, 403, "api_key is required"),
    ],
)
def test_bad_open311_posts_get_the_specs_errors_in_both_formats(client, event_city, form, status, message):
    lon, lat = lonlat(300, 500)
    base = {
        "api_key": _token(event_city["ingest"]),
        "service_code": pick(True, "community", "cg").code,
        "lat": lat,
        "long": lon,
    }
    data = {k: v for k, v in {**base, **form}.items() if v is not None}
    res = client.post("/open311/v2/requests.json", data=data)
    assert res.status_code == status
    assert res.get_json() == [{"code": status, "description": res.get_json()[0]["description"]}]
    assert message in res.get_json()[0]["description"]
    xml = client.post("/open311/v2/requests.xml", data=data)
    assert xml.status_code == status and b"<errors><error><code>" + str(status).encode() in xml.data


def test_open311_unknown_things_are_404_in_the_specs_shape(client, event_city):
    assert client.get("/open311/v2/services/nope.json").get_json()[0]["code"] == 404
    assert client.get("/open311/v2/requests/999999.xml").status_code == 404
    assert client.get("/open311/v2/tokens/nope.json").status_code == 404


# --- command line -----------------------------------------------------------------------------------------


def test_cli_matters_and_events(cli, event_city, tmp_path, engine):
    res = cli("matters", "list", "--auto")
    assert res.exit_code == 0 and "145 matters (145 automatic)" in res.output
    assert cli("matters", "check").exit_code == 0
    bad = tmp_path / "matters.toml"
    bad.write_text(
        (Settings.from_env().layers_dir / "matters.toml").read_text("utf-8").replace('micro = "grid"', "micro = 5")
    )
    (tmp_path / "matters.csv").write_text((Settings.from_env().layers_dir / "matters.csv").read_text("utf-8"))
    res = cli("matters", "check", bad)
    assert res.exit_code == 1 and f"{bad}:" in res.output
    # a TOML of another name, and a CSV checked with the TOML in force (before: "FILE must be a matters.toml")
    other = tmp_path / "draft.toml"
    other.write_text(bad.read_text("utf-8"))
    res = cli("matters", "check", other)
    assert res.exit_code == 1 and f"{other}:" in res.output
    csv_path = tmp_path / "matters.csv"
    assert cli("matters", "check", csv_path).exit_code == 0
    lines = csv_path.read_text("utf-8").splitlines()
    (tmp_path / "bad.csv").write_text("\n".join([lines[0], lines[1].replace(",", ",,", 1), *lines[2:]]) + "\n")
    res = cli("matters", "check", tmp_path / "bad.csv")
    assert res.exit_code == 1 and f"{tmp_path / 'bad.csv'}:2" in res.output, res.output
    lon, lat = lonlat(300, 500)
    res = cli("events", "route", "--matter", pick(True, "community", "cg").code, lon, lat)
    assert res.exit_code == 0 and f"{COMMUNITY}-cg" in res.output
    rows = pd.DataFrame(
        {
            "matter": [pick(True, "community", "cg").code, pick(False, "street").code, "nope"],
            "lon": [lon, lon, lon],
            "lat": [lat, lat, lat],
            "text": ["a", "b", "c"],
            "external_id": ["h1", "h2", "h3"],
        }
    )
    rows.to_csv(tmp_path / "hotline.csv", index=False)
    res = cli("events", "import", tmp_path / "hotline.csv")
    assert res.exit_code == 2 and "row 3" in res.output and "unknown matter 'nope'" in res.output
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM report")).scalar() == 0  # all or nothing
    rows.iloc[:2].to_csv(tmp_path / "hotline.csv", index=False)
    res = cli("events", "import", tmp_path / "hotline.csv")
    assert res.exit_code == 0 and "filed 2 cases" in res.output and "1 dispatched automatically" in res.output
    with engine.connect() as conn:  # report → file (→ dispatch) logged for every imported case
        steps = conn.execute(
            sa.text(
                "SELECT r.state, string_agg(l.action, ',' ORDER BY l.id) FROM report r "
                "JOIN report_log l ON l.report_id = r.id GROUP BY r.id, r.state"
            )
        ).all()
    assert sorted(steps) == [("dispatched", "report,file,dispatch"), ("filed", "report,file")]
    res = cli("events", "import", tmp_path / "hotline.csv")
    assert res.exit_code == 2 and "already received" in res.output
    # a plain Parquet table (lon/lat columns, no GeoParquet metadata) reads like the CSV
    rows.iloc[:2].assign(external_id=["p1", "p2"]).to_parquet(tmp_path / "hotline.parquet")
    home = tmp_path / "home"
    res = cli("events", "import", tmp_path / "hotline.parquet", env={"GRIDMAP_HOME": str(home)})
    assert res.exit_code == 0 and "filed 2 cases" in res.output
    # it located them with the index persisted under the data folder (the next command loads it)
    assert [p.name for p in (home / "index").iterdir()], "no index persisted"
    assert cli("events", "tick").exit_code == 0


def test_an_import_routes_every_row_as_one_case_is_routed(cli, client, event_city, tmp_path, engine):
    """The bulk import routes by distinct grid and reason, not row by row (seconds a million): each
    row's department, grid worker, state and reason equal what the routing of one case (the API's
    simulation) says for the same matter and place, for automatic matters of every handling level,
    manual ones, and places outside every grid."""
    kinds = [pick(True, "micro"), pick(True, "community", "cg"), pick(False, "community"), pick(False, "street")]
    kinds += [m for m in catalogue().matters.values() if m.auto and m.level in ("street", "district")][:2]
    places = [(300, 500), (480, 500), (-3000, 500), (300, 520)]
    rows = [(m.code, *lonlat(x, y)) for m in kinds for x, y in places]
    frame = pd.DataFrame(rows, columns=["matter", "lon", "lat"]).assign(
        text="来电", external_id=[f"r{i}" for i in range(len(rows))]
    )
    frame.to_csv(tmp_path / "routes.csv", index=False)
    res = cli("events", "import", tmp_path / "routes.csv", "--channel", "routes")
    assert res.exit_code == 0, res.output
    with engine.connect() as conn:
        got = conn.execute(
            sa.text("SELECT external_id, state, department_code, assignee, route->>'why' FROM report "
                    "WHERE source = 'routes' ORDER BY id")
        ).all()  # fmt: skip
    assert [g[0] for g in got] == frame["external_id"].tolist()
    seen = set()
    for (code, lon, lat), (_, state, dept, assignee, why) in zip(rows, got, strict=True):
        one = client.get(f"/api/v1/events/route?matter={code}&lon={lon}&lat={lat}").get_json()["route"]
        assert dept == one.get("department"), (code, lon, lat)
        assert assignee == (f"grid:{one['grid']}" if one.get("workers") else None), (code, lon, lat)
        assert state == ("dispatched" if dept or assignee else "filed")
        if dept:
            assert why == f"automatic: department {dept}"
        elif assignee:
            assert why == f"automatic: grid workers of {one['grid']}"
        elif one.get("queue"):
            assert why == f"dispatchers' queue of {one['queue']}"
        else:
            assert why == "outside every grid: the city dispatchers' queue"
        seen.add(why.split(" of ")[0].split(":")[0])
    assert seen == {"automatic", "dispatchers' queue", "outside every grid"}


def test_a_georeport_client_lists_services_and_reads_a_request_from_a_running_server(event_city, database_url, engine):
    """``georeport`` (PyPI; written elsewhere) against `gridmap serve`, in both encodings.  It has no
    POST, so the request is filed with a plain form POST as any Open311 client sends it."""
    import requests  # noqa: PLC0415
    from georeport import GeoReport  # noqa: PLC0415 (a test-only dependency, imported where it is used)

    from servers import serving  # noqa: PLC0415

    matter = pick(True, "community", "cg")
    lon, lat = lonlat(300, 500)
    with serving(database_url, "--workers", "1") as (base, _port):
        root = base + "/open311/v2"
        for fmt in ("json", "xml"):
            client = GeoReport(root, output_format=fmt)
            services = client.get_service_list()
            assert len(services) == len(catalogue().matters)
            assert {s["service_code"] for s in services} >= {matter.code}
            definition = client.get_service_definition(matter.code)
            assert definition["service_code"] == matter.code
        filed = requests.post(
            f"{root}/requests.json",
            timeout=30,
            data={
                "api_key": _token(event_city["ingest"]),
                "service_code": matter.code,
                "lat": lat,
                "long": lon,
                "description": "井盖丢失",
            },
        ).json()
        rid = filed[0]["service_request_id"]
        for fmt in ("json", "xml"):
            got = GeoReport(root, output_format=fmt).get_service_request(str(rid))
            assert str(got["service_request_id"]) == str(rid) and got["status"] == "open"
            assert got["service_code"] == matter.code
        listed = GeoReport(root).get_service_requests(service_code=matter.code)
        assert [r["service_request_id"] for r in listed] == [rid]


def test_the_demo_year_of_cases_loads_with_departments(event_city, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE department, department_member RESTART IDENTITY CASCADE"))
    done = event_demo.load(centre(engine), seed=5, per_micro=20)
    assert done["cases"] == 20 * 16 and done["departments"] > 0 and done["open"] > 0
    with engine.connect() as conn:
        states = dict(conn.execute(sa.text("SELECT state, count(*) FROM report GROUP BY state")).all())
        bad = conn.execute(
            sa.text("""SELECT count(*) FROM report r WHERE r.state <> (SELECT to_state FROM report_log l
                                      WHERE l.report_id = r.id ORDER BY at DESC, id DESC LIMIT 1)""")
        ).scalar()
    assert bad == 0 and states.get("assessed", 0) > 0 and sum(states.values()) == done["cases"]


def test_a_reporter_follows_a_suggested_duplicate_instead_of_filing(client, event_city):
    first = file(client, event_city["ingest"], pick(True, "community", "cg"))
    res = client.post(
        f"/api/v1/events/{first['id']}/followers",
        headers=event_city["ingest"],
        json={"contact": {"name": "钱七", "phone": "13500000000"}, "channel": "wechat"},
    )
    assert res.status_code == 201 and res.get_json()["followers"] == 1
    case = client.get(f"/api/v1/events/{first['id']}", headers=event_city["dispatcher"]).get_json()
    assert {c["phone"] for c in case["contacts"] if c["kind"] == "follower"} == {"13500000000"}
    assert case["timeline"][-1]["action"] == "follow"
    bad = client.post(f"/api/v1/events/{first['id']}/followers", headers=event_city["ingest"], json={"contact": "x"})
    assert bad.status_code == 400 and "contact must be an object" in bad.get_json()["error"]["message"]
    assert client.post("/api/v1/events/999999/followers", headers=event_city["ingest"], json={}).status_code == 404


#: Keys of the event routes' answers that hold personal data (web/privacy.py, CASE_READERS); a case's
#: ``attributes`` too, but the name also means a service definition's (public) list: the case view's test.
CASE_PERSONAL = {"text", "contacts", "phone", "actor", "note"}
#: The Open311 fields that stay in the spec's shape but are null without a role that works cases.
OPEN311_PERSONAL = ("description", "address", "media_url")


def _keys(value) -> set:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


def test_every_event_get_route_hides_personal_data_without_a_case_role(client, event_city):
    """Every GET route of the event centre and Open311, on a case with a text, a reporter's phone, a
    logged note and a photo: none of them for no token, a bad token, a viewer or an ingest token;
    all of them for a dispatcher."""
    matter = pick(True, "community", "cg", verify="site")
    got = file(client, event_city["ingest"], matter)
    cid, (lon, lat) = got["id"], lonlat(310, 505)
    res = client.post(
        f"/api/v1/events/{cid}/dispose",
        headers=event_city["handler"],
        data={"note": "已更换井盖", "lon": str(lon), "lat": str(lat), "after": (io.BytesIO(PNG), "a.png")},
    )
    assert res.status_code == 200, res.get_json()
    full = client.get(f"/api/v1/events/{cid}", headers=event_city["dispatcher"]).get_json()
    media_id = next(m["id"] for e in full["timeline"] for m in e["media"])
    fill = {"case_id": str(cid), "media_id": str(media_id), "code": matter.code, "token": got["reporter_key"]}
    query = {
        "/api/v1/events": f"?grid={COMMUNITY}",
        "/api/v1/events/near": f"?lon={lon}&lat={lat}&radius_m=500",
        "/api/v1/events/route": f"?matter={matter.code}&lon={lon}&lat={lat}",
    }
    urls = []
    for rule in client.application.url_map.iter_rules():
        if "GET" in rule.methods and rule.rule.startswith(("/api/v1/events", "/api/v1/matters", "/open311")):
            path = re.sub(
                r"<(?:any\(([^)]*)\):|int:)?(\w+)>",
                lambda m: m.group(1).split(",")[0].strip() if m.group(1) else fill[m.group(2)],
                rule.rule,
            )
            urls.append(path + query.get(rule.rule, ""))
    assert len(urls) >= 10, urls
    strangers = {
        "no token": {},
        "bad token": {"Authorization": "Bearer gm_not-a-token"},
        "viewer": event_city["viewer"],
        "ingest": event_city["ingest"],
    }
    seen = set()
    for url in urls:
        for who, headers in strangers.items():
            res = client.get(url, headers=headers)
            assert res.status_code < 500, (url, who)
            if "/media/" in url:
                assert res.status_code in (401, 403), (url, who)  # the photo itself
            if not res.is_json or res.status_code != 200:
                continue
            body = res.get_json()
            assert not _keys(body) & CASE_PERSONAL, (url, who, sorted(_keys(body) & CASE_PERSONAL))
            if url.startswith("/open311/v2/requests"):
                assert body and all(r[f] is None for r in body for f in OPEN311_PERSONAL), (url, who)
        res = client.get(url, headers=event_city["dispatcher"])
        assert res.status_code < 500, url
        if "/media/" in url:
            assert res.status_code == 200 and res.data == PNG
        elif res.is_json and res.status_code == 200:
            seen |= _keys(res.get_json()) & CASE_PERSONAL
            if url.startswith("/open311/v2/requests"):
                assert any(r["description"] for r in res.get_json()), url
    assert {"text", "contacts", "phone", "actor", "note"} <= seen


# --- the hardening rules (domain/values.py, web/params.py) on the event centre's inputs -------------


def _cases(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM report")).scalar_one()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"text": "x" * 2001}, "text is 2001 characters long; at most 2000"),
        ({"lon": 200.0}, "lon must be a finite number between -180 and 180"),
        ({"lat": "north"}, "lat must be a number"),
        ({"crs": "x" * 101}, "crs is 101 characters long"),
        ({"address": " "}, "address must not be empty"),
        ({"contact": {"name": "x" * 101}}, "contact.name is 101 characters long"),
        ({"contact": {"phone": {"n": 1}}}, "contact.phone must be text"),
        ({"media_urls": ["https://x.example/a.jpg"] * 11}, "at most 10 are allowed"),
        ({"external_id": "x" * 101}, "external_id is 101 characters long"),
        ({"attributes": {"a": [1]}}, "attributes.a must be text, a number or true/false"),
    ],
)
def test_intake_checks_every_value_by_the_common_rules(client, event_city, engine, extra, message):
    matter = pick(True, "community", "cg")
    lon, lat = lonlat(300, 500)
    body = {"matter": matter.code, "lon": lon, "lat": lat, "text": "井盖", **extra}
    before = _cases(engine)
    res = client.post("/api/v1/events", json=body, headers=event_city["ingest"])
    assert res.status_code == 400 and message in res.get_json()["error"]["message"], res.get_json()
    assert _cases(engine) == before  # nothing filed


def test_actions_and_reads_check_every_value_by_the_common_rules(client, event_city, engine, monkeypatch):
    matter = pick(True, "community", "cg")
    got = file(client, event_city["ingest"], matter)
    cid, handler = got["id"], event_city["handler"]

    def refused(res, status, message):
        assert res.status_code == status and message in res.get_json()["error"]["message"], res.get_json()

    refused(act(client, cid, "dispose", handler, note="x" * 2001), 400, "note is 2001 characters long")
    refused(act(client, cid, "split", event_city["dispatcher"], children=[{}] * 21), 400, "at most 20")
    refused(act(client, cid, "split", event_city["dispatcher"], children=[{"colour": 1}]), 400, "unknown field")
    reporter = {"X-Reporter-Key": got["reporter_key"]}
    refused(act(client, cid, "rate", reporter, rating=5, reasons="slow"), 400, "reasons must be a list")
    form = {"note": "已更换", "lon": "inf", "lat": "34.7", "after": (io.BytesIO(PNG), "a.png")}
    refused(client.post(f"/api/v1/events/{cid}/dispose", headers=handler, data=form), 400, "lon must be a finite")
    photos = {"after": [(io.BytesIO(PNG), f"{i}.png") for i in range(10)]}
    refused(client.post(f"/api/v1/events/{cid}/dispose", headers=handler, data=photos), 400, "at most 9")
    monkeypatch.setattr(media, "MAX_BYTES", 32)  # the real limit is megabytes; the rule is the same
    big = {"after": (io.BytesIO(PNG), "big.png")}
    refused(client.post(f"/api/v1/events/{cid}/dispose", headers=handler, data=big), 413, "larger than the limit")
    with engine.connect() as conn:  # none of the refused actions left a trace in the case's log
        assert conn.execute(sa.text("SELECT count(*) FROM report_log WHERE report_id = :i"), {"i": cid}).scalar() == 3
    for url in ("/api/v1/departments?grid=x1", f"/api/v1/events/stats?grid={'1' * 30}"):
        refused(client.get(url, headers=event_city["dispatcher"]), 400, "grid must be a grid code")
    backwards = client.get("/api/v1/events/stats?since=2026-12-01&until=2026-11-01", headers=event_city["dispatcher"])
    refused(backwards, 400, "since (2026-12-01T00:00:00+08:00) is after until")  # before: 200, empty rows
    refused(client.get(f"/api/v1/events?state={'x' * 101}", headers=event_city["dispatcher"]), 400, "state is 101")
    res = client.post(
        "/open311/v2/requests.json",
        data={"api_key": event_city["ingest"]["Authorization"].split()[1], "service_code": matter.code}
        | {"lat": "34.75", "long": "113.7", "first_name": "x" * 101},
    )
    assert res.status_code == 400 and "first_name is 101 characters long" in res.get_json()[0]["description"]


def test_import_refuses_over_long_values_per_row(cli, event_city, tmp_path, engine):
    lon, lat = lonlat(300, 500)
    code = pick(True, "community", "cg").code
    pd.DataFrame({"matter": [code, code], "lon": [lon, lon], "lat": [lat, lat], "text": ["井盖", "x" * 2001]}).to_csv(
        tmp_path / "long.csv", index=False
    )
    before = _cases(engine)
    res = cli("events", "import", tmp_path / "long.csv")
    assert res.exit_code == 2 and "row 2" in res.output and "text is 2001 characters long" in res.output
    assert _cases(engine) == before  # all rows or none


def test_the_migrations_are_one_chain_and_the_event_states_come_after_the_sign_in(database_url):
    """0013_event_states follows 0012_user_password (both were 0012 on their branches), 0014_people_move
    follows it, 0015_open_cases, 0016_case_stats, 0017_share_change, 0018_grid_notice,
    0019_closed_case_figures, 0020_current_versions and 0021_epoch_listener follow that; the fresh test
    database (conftest) is at the one head with the migrations' columns."""
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    scripts = ScriptDirectory.from_config(cfg)
    assert scripts.get_heads() == ["0021"]
    chain = [s.revision for s in scripts.walk_revisions()]
    assert chain == [f"{n:04d}" for n in range(21, 0, -1)]
    assert "user_password" in scripts.get_revision("0012").path
    assert "event_states" in scripts.get_revision("0013").path
    assert "people_move" in scripts.get_revision("0014").path
    assert "open_cases" in scripts.get_revision("0015").path
    assert "case_stats" in scripts.get_revision("0016").path
    assert "share_change" in scripts.get_revision("0017").path
    assert "grid_notice" in scripts.get_revision("0018").path
    assert "closed_case_figures" in scripts.get_revision("0019").path
    assert "current_versions" in scripts.get_revision("0020").path
    assert "epoch_listener" in scripts.get_revision("0021").path
    with db.engine(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0021"
        columns = conn.execute(
            sa.text(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE (table_name, column_name) IN (('app_user', 'password_hash'), ('report', 'tick_at'))"
            )
        ).scalars()
        assert sorted(columns) == ["app_user.password_hash", "report.tick_at"]


FIGURE_VIEWS = [(s, s) for s in ("micro", "courtyard", "community", "street", "district", "department")] + [
    ("courtyard", "micro"),
    ("community", "courtyard"),
    ("street", "community"),
    ("district", "street"),
    ("street", "department"),
]


@pytest.mark.parametrize(("scope", "group"), FIGURE_VIEWS)
def test_a_grids_closed_cases_figures_are_read_from_an_index_alone(engine, scope, group):
    """Every column the figures read of a closed case is in the scope's index (migration 0016), for the
    figures of the scope itself, per the level below and per department, so PostgreSQL can answer them
    with an index-only scan (on the bench city: the largest street 69 -> 21 ms) and not a heap page per
    case; the open cases are read through the queue's index of open cases (0019)."""
    import re

    from gridmap.store import case_views

    sql = case_views.stats_sql(case_views.SCOPES[group], case_views.SCOPES[scope])
    closed = sql[sql.index("FROM (") : sql.index("UNION ALL")]
    assert "status = 'closed'" in closed and "status = 'open'" in sql[sql.index("UNION ALL") :]
    index = f"ix_report_{case_views.SCOPES[scope]}"
    with engine.connect() as conn:
        columns = set(
            conn.execute(
                sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'report'")
            ).scalars()
        )
        carried = conn.execute(
            sa.text(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indexrelid = CAST(:index AS regclass)"
            ),
            {"index": index},
        ).scalars()
        read = set(re.findall(r"\b(\w+)\b", re.sub(r"CAST\(:\w+ AS \w+\)", "", closed))) & columns
        assert read - set(carried) == set(), f"{index} lacks what the figures read"
    assert {"closed_at", "rating", "state", case_views.SCOPES[group]} <= read  # the pattern finds the columns


#: A level's code in the synthetic open cases below, and how many grids of the level there are.
SUBTREES = {"micro": 4000, "courtyard": 1000, "community": 300, "street": 40, "district": 4, "department": 100}


@pytest.mark.parametrize("scope", list(SUBTREES))
def test_the_queue_and_the_open_cases_figures_find_a_subtree_through_an_index(engine, scope):
    """The queue and the open part of the figures name a subtree in the form an index of open cases
    answers (the GIN index of the four upper codes must see its own expression; 0019): PostgreSQL
    plans them through that index among 40,000 open cases (added and analysed in a transaction
    rolled back; the test city alone is too small for any plan to differ)."""
    from gridmap.store import case_views

    column = case_views.SCOPES[scope]
    want = "ix_report_open_chain" if column in case_views.OPEN_CHAIN_COLUMNS else f"ix_report_open_{column}"
    queue = case_views._QUEUE.format(in_scope=case_views._open_in(column, "r"), direction="ASC")
    stats = case_views.stats_sql(column, column)
    open_part = stats[stats.index("UNION ALL") + len("UNION ALL") : stats.rindex(") r")]
    params = {"code": f"{scope}-7", "matter": None, "states": None, "overdue": None, "limit": 50, "offset": 0}
    params |= {"now": "2026-01-01T00:00:00+08:00", "since": None, "until": None}
    codes = ", ".join(f"'{s}-' || (i % {n})" for s, n in SUBTREES.items())
    with engine.connect() as conn:
        columns = ", ".join(case_views.SCOPES[s] for s in SUBTREES)
        conn.execute(
            sa.text(f"""INSERT INTO report (text, state, matter_code, due_at, {columns})
                        SELECT 'x', 'filed', 'm', now() + i * interval '1 minute', {codes}
                        FROM generate_series(1, 40000) i""")
        )
        conn.execute(sa.text("ANALYZE report"))
        # bitmap scans only (GIN has no other): which index, not the planner's taste for walking the
        # deadline index on a small table (on the bench city the chain's is chosen: 9.9 ms a street)
        conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
        for sql in (queue, open_part):
            plan = "\n".join(conn.execute(sa.text("EXPLAIN " + sql), params).scalars())
            assert want in plan, plan
        conn.rollback()


def test_the_figures_indexes_hold_the_closed_cases_and_the_queues_the_open_ones(engine):
    """Which cases each index of ``report`` holds (0019): the figures' wide indexes the closed cases
    only (an import of a million open cases wrote 6 GB of them for nothing), the queue's narrow ones
    the open cases (one GIN index for the courtyard, community, street and district), those of the
    special grid and the department only the cases that have one; the open cases' matter index is
    gone (the index of every case on the same columns serves)."""
    from gridmap.store import case_views

    with engine.connect() as conn:
        preds = dict(
            conn.execute(
                sa.text("SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) FROM pg_index "
                        "WHERE indrelid = 'report'::regclass")
            ).all()
        )  # fmt: skip
    for column in case_views.SCOPES.values():
        if column != "special_code":  # no figures of a special grid
            assert preds[f"ix_report_{column}"] == "(status = 'closed'::text)"
        if column in case_views.OPEN_CHAIN_COLUMNS:  # one GIN index of the four, below
            assert f"ix_report_open_{column}" not in preds
            continue
        sparse = column in ("special_code", "department_code")
        want = f"((status = 'open'::text) AND ({column} IS NOT NULL))" if sparse else "(status = 'open'::text)"
        assert preds[f"ix_report_open_{column}"] == want
    assert preds["ix_report_open_chain"] == "(status = 'open'::text)"
    assert "ix_report_open_matter" not in preds and preds["ix_report_matter_code"] is None


def test_every_reference_to_a_case_is_indexed(engine):
    """Each foreign key pointing at a case (logs, media, contacts, a split case's children, a merged
    duplicate) leads with an indexed column: deleting a case never reads a whole table to find what
    refers to it (0016 added the two on report itself)."""
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text("""
            SELECT c.conrelid::regclass::text || '.' || a.attname,
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
            FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = 'report'::regclass""")
        ).all()
    assert {"report.parent_id", "report.merged_into", "report_media.report_id"} <= {k for k, _ in keys}
    assert [k for k, indexed in keys if not indexed] == []
    with engine.connect() as conn:  # the log's reference is kept by triggers (0019), on an index too
        lead = conn.execute(
            sa.text("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    "AND a.attnum = i.indkey[0] WHERE i.indexrelid = 'ix_report_log_report_id'::regclass")
        ).scalar_one()  # fmt: skip
    assert lead == "report_id"


def test_a_log_entry_must_refer_to_a_case_and_goes_with_it(client, event_city, engine):
    """The log's reference to its case, kept by statement triggers since 0019 (the foreign key's check
    per row was half the cost of an import's log): a log entry of no case is refused with the foreign
    key's SQLSTATE, in an INSERT of many rows and in an UPDATE, and nothing of the statement stays;
    deleting cases deletes their log, as ON DELETE CASCADE did."""
    case = file(client, event_city["ingest"], pick(True, "community", "cg"))["id"]
    other = file(client, event_city["ingest"], pick(True, "community", "cg"), x=480)["id"]
    entry = "INSERT INTO report_log (report_id, actor, action) SELECT unnest(CAST(:ids AS bigint[])), 'test', 'note'"
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM report_log")).scalar_one()
        missing = conn.execute(sa.text("SELECT max(id) + 1000 FROM report")).scalar_one()
    for sql, params in (
        (entry, {"ids": [case, missing, other]}),
        ("UPDATE report_log SET report_id = :to WHERE report_id = :id", {"to": missing, "id": case}),
    ):
        with pytest.raises(sa.exc.IntegrityError) as err, engine.begin() as conn:
            conn.execute(sa.text(sql), params)
        assert err.value.orig.sqlstate == "23503" and str(missing) in str(err.value.orig)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM report_log")).scalar_one() == before
        assert conn.execute(sa.text(entry), {"ids": [case, other]}).rowcount == 2
        logged = conn.execute(
            sa.text("SELECT count(*) FROM report_log WHERE report_id = ANY(:ids)"), {"ids": [case, other]}
        ).scalar_one()
        assert logged >= 4  # each filed (at least reported, filed) and the two notes
        assert conn.execute(sa.text("DELETE FROM report WHERE id = ANY(:ids)"), {"ids": [case, other]}).rowcount == 2
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM report_log WHERE report_id = ANY(:ids)"), {"ids": [case, other]}
            ).scalar_one()
            == 0
        )
        assert conn.execute(sa.text("SELECT count(*) FROM report_log")).scalar_one() == before - logged + 2
    with engine.connect() as conn:  # emptied with the cases, then put back (the city is shared)
        conn.execute(sa.text("TRUNCATE report CASCADE"))
        assert conn.execute(sa.text("SELECT count(*) FROM report_log")).scalar_one() == 0
        conn.rollback()


def test_two_sessions_write_cases_at_once_and_the_tile_epoch_moves_at_each_commit(client, event_city, engine):
    """Writing a case bumps the layer epoch (the tile caches' key) in a row of the writer's own
    (migration 0015), so a second writer does not wait for the first to commit; each commit, and only
    a commit, moves the epoch the tile cache reads."""
    from gridmap.store import tiles

    file(client, event_city["ingest"], pick(True, "micro"))  # a case to copy
    copy = "INSERT INTO report (source, text, geom, status) SELECT 'api', text, geom, 'open' FROM report LIMIT 1"
    with engine.connect() as reader:
        before = tiles.data_epochs(reader)[1]
    a, b = engine.connect(), engine.connect()
    try:
        pids = [c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() for c in (a, b)]
        a.rollback()
        b.rollback()
        if pids[0] % 64 == pids[1] % 64:
            pytest.skip("the two sessions share a bucket")
        ta, tb = a.begin(), b.begin()
        a.execute(sa.text(copy))
        b.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        b.execute(sa.text(copy))  # before 0015 this waited for the first session's commit
        with engine.connect() as reader:
            assert tiles.data_epochs(reader)[1] == before  # nothing committed yet
        tb.commit()
        with engine.connect() as reader:
            assert tiles.data_epochs(reader)[1] == before + 1
        ta.commit()
        with engine.connect() as reader:
            assert tiles.data_epochs(reader)[1] == before + 2
    finally:
        a.close()
        b.close()


def test_a_copy_made_ahead_keeps_order_raises_the_makers_error_and_stops_when_the_writer_does(engine):
    """The bulk import makes each slice's rows in a thread while PostgreSQL writes the slice before
    (store/db.copy_frames): every row arrives once and in order, an error while making them is the
    caller's error, a consumer that stops stops the maker, and a COPY that fails (a NOT NULL column
    left empty) leaves nothing written and no thread behind."""
    import threading

    import psycopg

    from gridmap.store import db as store_db

    def frames(n, fail_at=None, made=None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"slice {i} is bad")
            if made is not None:
                made.append(i)
            yield pd.DataFrame({"report_id": [1], "actor": [f"a{i}"], "action": ["note"]})

    assert [i for i, _ in store_db._ahead((i, None) for i in range(50))] == list(range(50))
    with pytest.raises(ValueError, match="slice 3 is bad"):
        list(store_db._ahead(frames(10, fail_at=3)))
    made = []
    ahead = store_db._ahead(frames(10_000, made=made))
    next(ahead), next(ahead)
    ahead.close()  # the consumer stops: the maker stops a slice or two later
    assert 2 <= len(made) <= 4
    bad = pd.DataFrame({"report_id": [1], "actor": [None], "action": ["note"]})  # actor is NOT NULL
    columns, sent = ["report_id", "actor", "action"], []
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE copied (report_id bigint, actor text NOT NULL, action text)"))
        assert store_db.copy_frames(conn, "copied", columns, frames(100), sent.append) == 100
        assert sent == [1] * 100  # the progress counts each slice as it is sent
        assert conn.execute(sa.text("SELECT string_agg(actor, ',') FROM copied")).scalar() == ",".join(
            f"a{i}" for i in range(100)
        )
        with pytest.raises(psycopg.errors.NotNullViolation), conn.begin_nested():  # the driver's own COPY
            store_db.copy_frames(conn, "copied", columns, itertools.chain(frames(5), [bad], frames(100)))
        assert conn.execute(sa.text("SELECT count(*) FROM copied")).scalar() == 100  # none of the failed COPY
    assert not [t for t in threading.enumerate() if t.name == "gridmap-copy-ahead"]
