"""The event centre's pure parts: catalogue, loop, working-day clock, routing, duplicates,
assessment and Open311 (with the web layer's encoding).  Real libraries (python-statemachine,
chinese-calendar), no database."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statemachine.exceptions import InvalidDefinition

from gridmap.domain.events import catalogue, clock, duplicates, open311, routing
from gridmap.domain.events.assessment import assess
from gridmap.domain.events.catalogue import Deadline
from gridmap.domain.events.loop import GUARDS, LOOP, ROLES, STATES, TABLE, Context, Loop, Step, check_table
from gridmap.errors import Conflict, Forbidden, InputError, NotFound
from gridmap.services import matters as matters_files
from gridmap.web.open311 import encode

LAYERS = Path(__file__).resolve().parents[1] / "gridmap" / "resources" / "layers"
TZ = ZoneInfo("Asia/Shanghai")

HEAD = """
[defaults]
duplicate_radius_m = 250
[levels]
micro = "grid"
courtyard = "grid"
community = "zz"
street = "zz"
district = "zz"
[departments.zz]
name = "综治中心"
community = "社区网格工作站"
street = "街道综治中心"
district = "区综治中心"
[departments.cg]
name = "城市管理"
community = "社区城管工作站"
street = "街道城管办"
district = "区城市管理局"
"""
MATTERS = """
[[matter]]
code = "A1"
name = "暴露垃圾"
category = "市容环境"
auto = true
level = "micro"
deadline = "4h"
[[matter]]
code = "B1"
name = "井盖丢失"
category = "城市管理"
auto = true
level = "community"
deadline = "1wd"
community = "cg"
street = "cg"
district = "cg"
[[matter]]
code = "C1"
name = "邻里纠纷"
category = "矛盾纠纷"
auto = false
level = "community"
deadline = "5wd"
"""


def small():
    return matters_files.parse(HEAD + MATTERS, source="t.toml")


def shipped():
    return matters_files.parse(
        (LAYERS / "matters.toml").read_text("utf-8"),
        source="matters.toml",
        csv_text=(LAYERS / "matters.csv").read_text("utf-8"),
    )


# --- catalogue ------------------------------------------------------------------------------------


def test_shipped_catalogue_has_504_matters_145_automatic_in_realistic_categories():
    cat = shipped()
    assert len(cat.matters) == 504
    assert sum(m.auto for m in cat.matters.values()) == 145
    assert {"市容环境", "社会治安", "安全生产", "城市管理", "民生服务"} <= set(cat.categories())
    levels = {m.level for m in cat.matters.values()}
    assert {"micro", "courtyard", "community", "street"} <= levels
    # every matter has a handler on every level from its own up to the district
    for m in cat.matters.values():
        assert list(m.handlers) == list(catalogue.LEVELS_UP[catalogue.LEVELS_UP.index(m.level) :])


def test_shipped_csv_is_what_the_generator_writes():
    assert (LAYERS / "matters.csv").read_text("utf-8") == matters_files.demo_csv_text()


def test_matter_lookup_names_unknown_code():
    with pytest.raises(NotFound, match="unknown matter 'ZZ9'"):
        small().matter("ZZ9")


def _problem(toml_text, csv_text=None) -> InputError:
    with pytest.raises(InputError) as err:
        matters_files.parse(toml_text, source="m.toml", csv_text=csv_text, csv_source="m.csv")
    return err.value


def test_bad_csv_rows_name_file_line_and_key_and_all_are_listed():
    header = ",".join(catalogue.CSV_COLUMNS)
    blank = "," * (len(catalogue.CSV_COLUMNS) - 6)
    rows = [
        f"X1,好,市容环境,true,micro,4h{blank}",
        f"X2,坏期限,市容环境,true,micro,4 weeks{blank}",
        f"X1,重复,市容环境,false,micro,1d{blank}",
        f"X3,坏层级,市容环境,false,building,1d{blank}",
    ]
    err = _problem(HEAD, "\n".join([header, *rows]) + "\n")
    assert err.message.startswith("m.csv:3: deadline: '4 weeks' is not a deadline")
    assert "m.csv:4: code: 'X1' already defined at m.csv:2" in err.detail
    assert any(p.startswith("m.csv:5: level: 'building' unknown") for p in err.detail)
    assert len(err.detail) == 3


def test_bad_toml_entries_name_the_line_of_the_key():
    text = HEAD.replace("duplicate_radius_m = 250", "duplicate_radius_m = -5") + MATTERS.replace(
        'community = "cg"', 'community = "nope"'
    )
    err = _problem(text)
    line_radius = 1 + text.splitlines().index("duplicate_radius_m = -5")
    line_kind = 1 + text.splitlines().index('community = "nope"')
    assert f"m.toml:{line_radius}: defaults.duplicate_radius_m: -5 must be a number > 0" in err.detail
    # a matter's problem points at its [[matter]] table (tomllib keeps no key positions inside arrays)
    matter_lines = [i + 1 for i, line in enumerate(text.splitlines()) if line == "[[matter]]"]
    assert any(p.startswith(f"m.toml:{matter_lines[1]}: community: no department kind 'nope'") for p in err.detail)
    assert line_kind > matter_lines[1]


def test_public_matters_are_checked_and_kept_in_order():
    assert small().public == () and small().public_matters() == []
    kept = matters_files.parse('public = ["C1", "B1"]\n' + HEAD + MATTERS, source="t.toml")
    assert kept.public_matters() == [("C1", "邻里纠纷"), ("B1", "井盖丢失")]
    err = _problem('public = ["B1", "Z9", "B1"]\n' + HEAD + MATTERS)
    assert "m.toml:1: public: 'Z9' is not a matter of the catalogue" in err.detail
    assert "m.toml:1: public: a matter is listed twice" in err.detail
    assert "must be a list of matter codes" in _problem('public = "B1"\n' + HEAD + MATTERS).message
    shipped_public = shipped().public_matters()
    assert len(shipped_public) == 15 and ("01001", "道路暴露垃圾") in shipped_public


def test_unknown_keys_missing_levels_and_syntax_errors():
    assert _problem("colour = 1\n" + HEAD + MATTERS).message.startswith("m.toml:1: colour: unknown key")
    assert "departments.cg.colour: unknown key" in _problem(HEAD + "colour = 1\n" + MATTERS).message
    assert (
        "levels.district: missing"
        in _problem(HEAD.replace('district = "zz"\n[departments', "[departments") + MATTERS).detail[0]
    )
    assert _problem("[defaults\n").message.startswith("m.toml: not valid TOML")
    assert "no matters" in _problem(HEAD).message
    assert "unknown column" in _problem(HEAD, "code,name,colour\n").message


def test_deadline_forms():
    assert (Deadline.parse("4h"), Deadline.parse("2wd"), Deadline.parse("3d")) == (
        Deadline(4, "h"),
        Deadline(2, "wd"),
        Deadline(3, "d"),
    )
    for bad in ("0h", "4", "h", "-1d", "2 weeks"):
        with pytest.raises(ValueError, match="is not a deadline"):
            Deadline.parse(bad)


# --- the loop -------------------------------------------------------------------------------------

GOOD = {
    "note": "现场已处理",
    "matter_known": True,
    "assignee": "department:1",
    "is_assignee": True,
    "actor": "verifier-2",
    "disposer": "handler-1",
    "disposal_checked": True,
    "can_climb": True,
    "target": 7,
    "children": 2,
    "children_open": 0,
}
#: How to make each guard fail.
BAD = {
    "has_note": {"note": "  "},
    "has_matter": {"matter_known": False},
    "has_assignee": {"assignee": None},
    "is_assignee": {"is_assignee": False},
    "not_disposer": {"actor": "handler-1"},
    "disposal_checked": {"disposal_checked": False},
    "can_climb": {"can_climb": False},
    "has_target": {"target": None},
    "has_children": {"children": 1},
    "children_closed": {"children_open": 1},
    "rating_open": {"rating_window_open": False},
    "rating_over": {"rating_window_open": True},
}


def ctx_for(step: Step, roles, **change) -> Context:
    kw = dict(GOOD, roles=frozenset(roles), rating_window_open="rating_over" not in step.guards)
    kw["rating"] = 1 if "unsatisfied" in step.guards else 5
    return Context(**{**kw, **change})


@pytest.mark.parametrize("step", TABLE, ids=lambda s: f"{s.state}-{s.action}-{s.target}")
def test_every_transition_is_allowed_for_each_of_its_roles(step):
    for role in step.roles:
        taken = LOOP.fire(step.state, step.action, ctx_for(step, {role}))
        assert (taken.target, taken.action) == (step.target, step.action)


@pytest.mark.parametrize("step", TABLE, ids=lambda s: f"{s.state}-{s.action}-{s.target}")
def test_every_transition_is_refused_to_other_roles_naming_what_they_may_do(step):
    allowed = {r for s in TABLE if (s.state, s.action) == (step.state, step.action) for r in s.roles}
    for role in set(ROLES) - allowed:
        with pytest.raises(Forbidden) as err:
            LOOP.fire(step.state, step.action, ctx_for(step, {role}))
        assert err.value.status == 403
        assert err.value.detail["allowed"] == LOOP.actions(step.state, {role})
        assert " or ".join(sorted(allowed)) in err.value.message


@pytest.mark.parametrize("step", [s for s in TABLE if set(s.guards) & set(BAD)], ids=lambda s: f"{s.state}-{s.action}")
def test_each_guard_refuses_with_its_rule(step):
    for guard in set(step.guards) & set(BAD):
        with pytest.raises(Conflict) as err:
            LOOP.fire(step.state, step.action, ctx_for(step, step.roles, **BAD[guard]))
        assert GUARDS[guard][1] in err.value.message
        assert err.value.status == 409


def test_an_action_not_possible_from_a_state_names_the_allowed_ones():
    for state in STATES:
        possible = {s.action for s in TABLE if s.state == state}
        for action in {s.action for s in TABLE} - possible:
            with pytest.raises(Conflict) as err:
                LOOP.fire(state, action, Context(roles=frozenset(ROLES), **GOOD))
            assert err.value.detail["allowed"] == LOOP.actions(state, ROLES)
    with pytest.raises(InputError, match="unknown action 'fly'"):
        LOOP.fire("filed", "fly", Context())


def test_the_verifier_must_not_be_the_disposer():
    ctx = Context(roles=frozenset({"verifier", "handler"}), actor="u1", disposer="u1")
    with pytest.raises(Conflict, match="the verifier must not be the disposer"):
        LOOP.fire("disposed", "verify", ctx)
    assert (
        LOOP.fire("disposed", "verify", Context(roles=frozenset({"verifier"}), actor="u2", disposer="u1")).target
        == "verified"
    )


def test_rating_decides_between_assessed_and_a_reopen_request():
    base = {"roles": frozenset({"reporter"}), "rating_window_open": True}
    assert LOOP.fire("closed", "rate", Context(rating=3, **base)).target == "assessed"
    assert LOOP.fire("closed", "rate", Context(rating=2, **base)).target == "reopen_requested"
    assert LOOP.fire("reopen_requested", "reopen", Context(roles=frozenset({"dispatcher"}))).target == "dispatched"


def test_the_table_is_checked_and_the_library_refuses_an_unsound_chart():
    with pytest.raises(ValueError, match="unknown role 'mayor'"):
        check_table((Step("filed", "dispatch", ("mayor",), "dispatched"),))
    with pytest.raises(ValueError, match="unknown guard"):
        check_table((Step("filed", "dispatch", ("dispatcher",), "dispatched", ("lucky",)),))
    # without its way out, "assessed" is a trap: python-statemachine refuses the chart
    with pytest.raises(InvalidDefinition):
        Loop(tuple(s for s in TABLE if s.state != "assessed"))


# --- the working-day clock ------------------------------------------------------------------------
# 2026 as the State Council announced it: Spring Festival 15–23 February off with Saturday 14
# February a make-up working day; National Day 1–7 October off with Saturday 10 October worked.

CAL = clock.WorkCalendar()  # 09:00–12:00 and 13:00–18:00: eight working hours a day


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def due(deadline: str, start: str) -> datetime:
    return clock.when_used(clock.start(Deadline.parse(deadline), at(start), CAL), 1.0, CAL)


def test_working_hours_skip_a_holiday_week():
    # 30 Sep 16:00–18:00 is 2 h; 1–7 Oct are off; the other 2 h run from 09:00 on Thursday 8 Oct
    assert due("4h", "2026-09-30T16:00") == at("2026-10-08T11:00")


def test_a_make_up_saturday_is_a_working_day():
    # Friday 9 Oct 17:00–18:00 is 1 h; Saturday 10 Oct is worked: 7 h more end at 17:00 that Saturday
    assert due("1wd", "2026-10-09T17:00") == at("2026-10-10T17:00")
    # Friday 13 Feb 10:00 → 7 h that day, 8 h on the make-up Saturday 14 Feb, then the festival:
    # the sixteenth hour is 09:00–10:00 on Tuesday 24 Feb
    assert due("2wd", "2026-02-13T10:00") == at("2026-02-24T10:00")


def test_calendar_days_ignore_holidays_and_reports_outside_hours_start_next_morning():
    assert due("3d", "2026-09-30T16:00") == at("2026-10-03T16:00")
    # Friday evening: the clock starts on the make-up Saturday, 3 h before lunch and 1 h after
    assert due("4h", "2026-10-09T20:00") == at("2026-10-10T14:00")


def test_pause_and_resume_keep_the_time_used():
    run = clock.start(Deadline.parse("4h"), at("2026-10-12T09:00"), CAL)
    paused = clock.pause(run, at("2026-10-12T10:00"), CAL)
    assert paused.paused and clock.used(paused, at("2026-10-13T17:00"), CAL) == 3600
    assert clock.when_used(paused, 1.0, CAL) is None
    assert clock.status(paused, at("2026-10-20T09:00"), CAL) == "paused"
    resumed = clock.resume(paused, at("2026-10-14T09:00"), CAL)
    assert clock.when_used(resumed, 1.0, CAL) == at("2026-10-14T12:00")


def test_warning_at_80_percent_and_overdue_at_100():
    run = clock.start(Deadline.parse("4h"), at("2026-10-12T09:00"), CAL)
    warn = clock.when_used(run, 0.8, CAL)
    assert warn == at("2026-10-12T13:12")  # 3 h 12 min of working time: the lunch hour is not counted
    assert clock.status(run, warn - timedelta(minutes=1), CAL) == "on_time"
    assert clock.status(run, warn, CAL) == "warning"
    assert clock.status(run, at("2026-10-12T14:00"), CAL) == "overdue"
    assert clock.status(clock.restart(run, at("2026-10-12T14:00"), CAL), at("2026-10-12T14:00"), CAL) == "on_time"


def test_years_not_yet_published_fall_back_to_a_monday_to_friday_week():
    assert clock.is_workday(datetime(2030, 1, 7).date())  # a Monday
    assert not clock.is_workday(datetime(2030, 1, 5).date())  # a Saturday


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 6, 1)),
    seconds=st.floats(min_value=0, max_value=30 * 8 * 3600),
)
def test_adding_working_time_and_measuring_it_agree(start, seconds):
    begin = start.replace(tzinfo=TZ)
    end = CAL.add_working(begin, seconds)
    assert end >= begin
    assert CAL.working_seconds(begin, end) == pytest.approx(seconds, abs=1e-3)


# --- routing --------------------------------------------------------------------------------------

CHAIN = {"district": "D1", "street": "S1", "community": "C1", "courtyard": "Y1", "micro": "M1"}


def test_automatic_matters_go_to_the_grid_worker_or_the_department_and_say_why():
    cat = small()
    to_worker = routing.route(cat, cat.matter("A1"), CHAIN, {}, {"M1": (11, 12)})
    assert (to_worker.level, to_worker.grid, to_worker.workers, to_worker.queue) == ("micro", "M1", (11, 12), None)
    assert "A1" in to_worker.why and "M1" in to_worker.why
    to_dept = routing.route(cat, cat.matter("B1"), CHAIN, {("cg", "C1"): 5}, {})
    assert (to_dept.department, to_dept.kind, to_dept.level) == (5, "cg", "community")
    assert "社区城管工作站" in to_dept.why


def test_manual_matters_unregistered_handlers_and_outside_cases_go_to_a_queue():
    cat = small()
    manual = routing.route(cat, cat.matter("C1"), CHAIN, {("zz", "C1"): 1}, {})
    assert (manual.assigned, manual.queue) == (False, "S1")
    assert "dispatched by hand" in manual.why
    missing = routing.route(cat, cat.matter("B1"), CHAIN, {}, {})
    assert (missing.assigned, missing.queue) == (False, "S1")
    assert "no 社区城管工作站 (cg) is registered for grid C1" in missing.why
    outside = routing.route(cat, cat.matter("A1"), {}, {}, {})
    assert (outside.assigned, outside.queue) == (False, "")
    assert "outside every grid" in outside.why


def test_escalation_climbs_every_level_to_the_district_then_stops():
    cat = small()
    depts = {("cg", "C1"): 1, ("cg", "S1"): 2, ("cg", "D1"): 3, ("zz", "C1"): 4, ("zz", "S1"): 5, ("zz", "D1"): 6}
    workers = {"M1": (11,), "Y1": (21,)}
    route = routing.route(cat, cat.matter("A1"), CHAIN, depts, workers)
    seen = [(route.level, route.workers or route.department)]
    while (route := routing.escalation(cat, cat.matter("A1"), route.level, CHAIN, depts, workers)) is not None:
        seen.append((route.level, route.workers or route.department))
        assert "escalated from" in route.why
    assert seen == [("micro", (11,)), ("courtyard", (21,)), ("community", 4), ("street", 5), ("district", 6)]


# --- duplicates -----------------------------------------------------------------------------------


def test_duplicates_within_radius_and_window_nearest_first():
    now = at("2026-10-12T10:00")
    ids = [1, 2, 3, 4, 5]
    xs = [100.0, 0.0, 251.0, 30.0, 0.0]
    ys = [0.0, 249.0, 0.0, 40.0, 10.0]
    times = [now - timedelta(hours=h) for h in (1, 71, 1, 2, 73)]
    got = duplicates.suggest(0.0, 0.0, now, ids, xs, ys, times, radius_m=250, window_h=72)
    assert [(s.case_id, s.distance_m) for s in got] == [(4, 50.0), (1, 100.0), (2, 249.0)]
    assert duplicates.suggest(0.0, 0.0, now, [], [], [], [], radius_m=250, window_h=72) == []


# --- assessment -----------------------------------------------------------------------------------


def test_assessment_follows_its_definitions():
    t0 = at("2026-10-12T09:00")
    frame = pd.DataFrame(
        {
            "grid": ["G1", "G1", "G1", "G2"],
            "filed_at": [t0] * 4,
            "closed_at": [t0 + timedelta(hours=2), t0 + timedelta(hours=10), pd.NaT, pd.NaT],
            "due_at": [t0 + timedelta(hours=4)] * 4,
            "escalations": [0, 2, 1, 0],
            "reopened": [False, True, False, False],
            "rating": [5.0, 2.0, float("nan"), float("nan")],
        }
    )
    out = assess(frame, "grid")
    g1, g2 = out.loc["G1"], out.loc["G2"]
    assert (g1.cases, g1.closed, g1.on_time_rate, g1.median_hours) == (3, 2, 0.5, 6.0)
    assert (g1.escalations, g1.reopen_rate, g1.satisfaction) == (3, 0.5, 3.5)
    assert (g2.cases, g2.closed, g2.on_time_rate, g2.median_hours, g2.satisfaction) == (1, 0, None, None, None)


# --- Open311 GeoReport v2 -------------------------------------------------------------------------


def test_services_and_definitions_in_json_and_xml():
    cat = shipped()
    body, ctype = encode(open311.services(cat), "services", "json")
    listed = json.loads(body)
    assert ctype.startswith("application/json") and len(listed) == len(cat.matters)
    assert set(listed[0]) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    body, ctype = encode(open311.services(cat), "services", "xml")
    root = ET.fromstring(body)
    assert ctype.startswith("text/xml") and root.tag == "services" and len(root.findall("service")) == len(cat.matters)
    assert root.find("service/metadata").text == "true"
    safety = next(m for m in cat.matters.values() if m.category == "安全生产")
    definition = open311.definition(cat, safety.code)
    assert [a["code"] for a in definition["attributes"]] == ["urgency", "hazard"]
    xml = ET.fromstring(encode(definition, "definition", "xml")[0])
    assert xml.tag == "service_definition"
    assert [v.find("key").text for v in xml.findall("attributes/attribute[code='hazard']/values/value")] == [
        "general",
        "major",
    ]
    with pytest.raises(open311.Open311Error) as err:
        open311.definition(cat, "nope")
    assert err.value.status == 404


def form(**kw):
    return {"service_code": "01001", "lat": "34.75", "long": "113.68", **kw}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"service_code": None}, "service_code is required"),
        ({"service_code": "99999"}, "service_code '99999' not found"),
        ({"lat": "north"}, "lat must be a number"),
        ({"long": "200"}, "long must be between -180 and 180"),
        ({"lat": "nan"}, "lat must be between"),
        ({"long": None}, "lat and long must be given together"),
        ({"lat": None, "long": None}, "a location is required"),
        ({"attribute[colour]": "red"}, "attribute[colour] is not an attribute"),
        ({"attribute[urgency]": "very"}, "attribute[urgency] must be one of normal, urgent"),
        ({"media_url": "file:///etc/passwd"}, "media_url must be an http(s) URL"),
        ({"description": "x" * 2001}, "at most 2000"),
        ({"first_name": "x" * 101}, "first_name is 101 characters long"),
        ({"address_id": "x1"}, "address_id must be a grid code"),
        ({"lat": None, "long": None, "address_id": "410104001001002"}, "does not place a request by itself"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_posts_get_the_specs_400(fields, message):
    body = {k: v for k, v in form(**fields).items() if v is not None}
    with pytest.raises(open311.Open311Error) as err:
        open311.parse_post(body, shipped())
    assert err.value.status == 400 and message in err.value.message
    payload, _ = encode(err.value.body(), "errors", "json")
    assert json.loads(payload) == [{"code": 400, "description": err.value.message}]
    xml = ET.fromstring(encode(err.value.body(), "errors", "xml")[0])
    assert (xml.tag, xml.find("error/code").text) == ("errors", "400")


def test_a_good_post_with_an_address_and_required_attributes():
    cat = shipped()
    safety = next(m for m in cat.matters.values() if m.category == "安全生产")
    with pytest.raises(open311.Open311Error, match=r"attribute\[hazard\] is required"):
        open311.parse_post({"service_code": safety.code, "address_string": "金水路1号"}, cat)
    got = open311.parse_post(
        {"service_code": safety.code, "address_string": "金水路1号", "attribute[hazard]": "major", "crs": "GCJ02"}, cat
    )
    assert (got.address, got.lat, got.attributes, got.crs) == ("金水路1号", None, {"hazard": "major"}, "gcj02")


def test_request_filters():
    q = open311.parse_query({"service_code": "01001,02001", "status": "open", "start_date": "2026-10-01", "page": "2"})
    assert (q.service_codes, q.statuses, q.page, q.page_size) == (("01001", "02001"), ("open",), 2, 50)
    assert q.start == at("2026-10-01T00:00")
    for args, message in (
        ({"status": "pending"}, "status must be open or closed"),
        ({"start_date": "yesterday"}, "W3C date-time"),
        ({"page_size": "5000"}, "page_size must be a whole number from 1 to 1000"),
        ({"start_date": "2026-10-02", "end_date": "2026-10-01"}, "end_date is before start_date"),
        ({"service_request_id": "1,x"}, "service_request_id must be case numbers"),
        ({"service_request_id": "1,²"}, "service_request_id must be case numbers"),  # isdigit, int() refuses
        ({"page": "³"}, "page must be a whole number"),  # found by schemathesis: a 500 before
        ({"page_size": "١٠"}, "page_size must be a whole number"),  # Arabic-Indic 10: int() would read it
        ({"sort": "asc"}, "unknown parameter 'sort'"),
    ):
        with pytest.raises(open311.Open311Error, match=message):
            open311.parse_query(args)


def test_a_case_as_a_request_hides_personal_fields_without_a_role():
    case = {
        "id": 42,
        "state": "dispatched",
        "matter": "01001",
        "matter_name": "道路暴露垃圾",
        "description": "张三 13800000000 门口垃圾",
        "reported_at": at("2026-10-12T09:00"),
        "due_at": at("2026-10-12T14:00"),
        "lat": 34.75,
        "lon": 113.68,
        "agency": "社区城管工作站",
        "address": "张三家门口",
    }
    public = open311.request(case)
    assert public["description"] is None and public["address"] is None and public["status"] == "open"
    assert public["requested_datetime"] == "2026-10-12T09:00:00+08:00"
    mine = open311.request(case, personal=True)
    assert (mine["description"], mine["address"]) == (case["description"], case["address"])
    assert open311.request({**case, "state": "assessed"})["status"] == "closed"
    assert set(public) == set(open311.REQUEST_FIELDS)
    xml = ET.fromstring(encode([public], "requests", "xml")[0])
    assert xml.tag == "service_requests" and xml.find("request/service_request_id").text == "42"


def test_a_paused_deadline_keeps_its_working_time_left():
    # paused Monday 12 Oct 10:00 with a 14:00 deadline: 3 working hours left (10–12, 13–14)
    moved = clock.carry(at("2026-10-12T14:00"), at("2026-10-12T10:00"), at("2026-10-14T16:00"), True, CAL)
    assert moved == at("2026-10-15T10:00")  # 16–18 on Wednesday, then 09–10 on Thursday
    assert clock.carry(at("2026-10-12T09:30"), at("2026-10-12T10:00"), at("2026-10-14T16:00"), True, CAL) == at(
        "2026-10-12T09:30"
    )
    assert clock.carry(at("2026-10-12T14:00"), at("2026-10-12T10:00"), at("2026-10-13T10:00"), False, CAL) == at(
        "2026-10-13T14:00"
    )


# --- the demo's year of cases ---------------------------------------------------------------------


def test_demo_year_of_cases_follows_the_loop_and_ends_in_a_mix_of_states():
    from gridmap.domain.demo import cases as demo_cases

    cat = shipped()
    micros = [
        {
            "micro_code": f"M{i}",
            "courtyard_code": f"Y{i}",
            "community_code": "C1",
            "street_code": "S1",
            "district_code": "D1",
            "lon": 113.68 + i * 0.001,
            "lat": 34.75,
        }
        for i in range(20)
    ]
    grids = [
        {"code": "C1", "level": "community", "name": "社区"},
        {"code": "S1", "level": "street", "name": "街道"},
        {"code": "D1", "level": "district", "name": "区"},
    ]
    depts = {(r["categories"][0], r["grid_code"]): r["code"] for r in demo_cases.department_rows(cat, grids)}
    workers = {m["micro_code"]: ("person:1",) for m in micros}
    now = at("2026-11-20T10:00")
    rows, logs = demo_cases.generate(cat, CAL, micros, depts, workers, now, 600, seed=3)
    states = {r["state"] for r in rows}
    assert {"assessed", "dispatched"} <= states and len(states) >= 4
    assert any(r["escalations"] for r in rows) and any(r["reopened"] for r in rows)
    assert any(r["state"] in ("filed", "dispatched") and r["due_at"] < now for r in rows)  # overdue today
    for row, log in zip(rows, logs, strict=True):
        assert log[-1]["to_state"] == row["state"]
        assert all(a["at"] <= b["at"] <= now for a, b in itertools.pairwise(log))
        for entry in log[2:]:  # after report and file: each step is one the loop allows from the state before
            assert entry["action"] in LOOP.actions(entry["from_state"])


def test_default_level_kinds_are_checked():
    err = _problem(
        HEAD.replace('micro = "grid"', "micro = 5").replace('street = "zz"\n', 'street = "cg2"\n', 1) + MATTERS
    )
    assert any("levels.micro: 5 is not a department kind" in p for p in err.detail)
    assert any("levels.street: 'cg2' is not a department kind" in p for p in err.detail)
