"""Every time shown or exported is in the office's zone, ISO 8601 with its offset (issue #15 item 11):
Asia/Shanghai by default, GRIDMAP_TZ to change it, an unknown zone a one-line error."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import pytest
from click.testing import CliRunner

from gridmap.cli import main
from gridmap.domain import dates
from gridmap.errors import InputError
from gridmap.settings import Settings
from gridmap.web import create_app

CODE = "410104006001001"  # a courtyard of the demo city


def _zone(text: str) -> str:
    return text[-6:]


def test_api_history_ogc_and_lookup_are_in_shanghai_time(demo_client):
    props = demo_client.get(f"/api/v1/grids/{CODE}").get_json()["properties"]
    assert _zone(props["valid_from"]) == "+08:00"
    history = demo_client.get(f"/api/v1/grids/{CODE}/history").get_json()
    assert {_zone(v["valid_from"]) for v in history["versions"]} == {"+08:00"}
    assert history["edits"] and {_zone(e["at"]) for e in history["edits"]} == {"+08:00"}
    item = demo_client.get(f"/ogc/collections/courtyard/items/{CODE}").get_json()
    assert _zone(item["properties"]["valid_from"]) == "+08:00"
    lon, lat = demo_client.get(f"/api/v1/grids/{CODE}").get_json()["geometry"]["coordinates"][0][0][0]
    answer = demo_client.get("/api/v1/lookup", query_string={"lon": lon, "lat": lat, "at": "2100-01-01"}).get_json()
    assert answer["at"] == "2100-01-01T23:59:59.999999+08:00"  # a date alone: the end of that day, office time


def test_risk_list_and_stats_are_in_shanghai_time(demo_client):
    risk = demo_client.get("/api/v1/risk/elements", query_string={"limit": 3}).get_json()
    assert _zone(risk["timeStamp"]) == "+08:00"
    assert {_zone(f["properties"]["marked_at"]) for f in risk["features"]} == {"+08:00"}


def test_export_csv_and_geojson_are_in_the_configured_zone(demo_url, tmp_path):
    runner = CliRunner()
    env = {"GRIDMAP_DATABASE_URL": demo_url}
    out = tmp_path / "yards.csv"
    res = runner.invoke(main, ["export", "--level", "courtyard", "--format", "csv", str(out)], env=env)
    assert res.exit_code == 0, res.output
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert {_zone(r["valid_from"]) for r in rows} == {"+08:00"}
    out = tmp_path / "yards.geojson"
    res = runner.invoke(
        main, ["export", "--level", "courtyard", "--format", "geojson", str(out)], env={**env, "GRIDMAP_TZ": "UTC"}
    )
    assert res.exit_code == 0, res.output
    features = json.loads(out.read_text())["features"]
    assert {_zone(f["properties"]["valid_from"]) for f in features} == {"+00:00"}
    # the same instant either way
    assert datetime.fromisoformat(features[0]["properties"]["valid_from"]) in {
        datetime.fromisoformat(r["valid_from"]) for r in rows
    }


def test_gridmap_tz_moves_the_api_too(demo_url):
    app = create_app({"DATABASE_URL": demo_url, "TESTING": True}, settings=None)
    assert _zone(app.test_client().get(f"/api/v1/grids/{CODE}").get_json()["properties"]["valid_from"]) == "+08:00"
    berlin = Settings.from_env({"external_database_url": demo_url, "timezone": "Europe/Berlin"})
    props = create_app(settings=berlin).test_client().get(f"/api/v1/grids/{CODE}").get_json()["properties"]
    assert _zone(props["valid_from"]) in ("+01:00", "+02:00")  # CET or CEST


def test_an_unknown_zone_is_one_line(demo_url):
    res = CliRunner().invoke(main, ["stats"], env={"GRIDMAP_DATABASE_URL": demo_url, "GRIDMAP_TZ": "Mars/Olympus"})
    assert res.exit_code == 2
    assert res.output.strip() == (
        "gridmap: error: unknown time zone 'Mars/Olympus': give an IANA name such as Asia/Shanghai"
    )
    with pytest.raises(InputError, match="unknown time zone"):
        Settings.from_env(environ={"GRIDMAP_TZ": "nowhere"})


@pytest.mark.parametrize(
    "value, tz, text",
    [
        (datetime.fromisoformat("2026-01-31T00:00:00+00:00"), "Asia/Shanghai", "2026-01-31T08:00:00+08:00"),
        (datetime.fromisoformat("2026-07-01T12:00:00+08:00"), "Europe/Berlin", "2026-07-01T06:00:00+02:00"),
        (None, "Asia/Shanghai", None),
    ],
)
def test_the_one_helper(value, tz, text):
    assert dates.iso(value, tz) == text


def test_a_date_alone_is_that_whole_day_in_the_office_zone(city, client, cli):
    """``at=`` today's date (the office's) shows the grids loaded today; a time without a zone is office
    time (before: a date was midnight UTC, 08:00 in Zhengzhou, so today's date showed nothing loaded
    since; a new user's ``lookup --at`` of today found no grid)."""
    today = datetime.now(dates.zone("Asia/Shanghai")).date().isoformat()
    lon, lat = 113.7035, 34.7520  # inside the test city, loaded moments ago
    answer = client.get("/api/v1/lookup", query_string={"lon": lon, "lat": lat, "at": today}).get_json()
    assert answer["inside"] is True and answer["at"] == f"{today}T23:59:59.999999+08:00"
    early = client.get("/api/v1/lookup", query_string={"lon": lon, "lat": lat, "at": f"{today}T00:00"}).get_json()
    assert early["inside"] is False and early["at"] == f"{today}T00:00:00+08:00"
    res = cli("lookup", str(lon), str(lat), "--at", today)
    assert res.exit_code == 0 and json.loads(res.output)["inside"] is True, res.output
    assert client.get("/api/v1/grids/410199", query_string={"at": today}).status_code == 200
    res = cli("events", "tick", "--at", "yesterday")
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1].startswith("gridmap: error: --at must be")
