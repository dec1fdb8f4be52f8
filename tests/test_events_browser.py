"""The event centre in a real headless Chromium against `gridmap serve`: the case layer on the one
map, a case's panel with its timeline and the actions of the viewer's role, a grid's open cases in
its panel, and the dispatchers' queue page.  Screenshots: tests/output/events-map.png,
events-queue.png."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from selenium.webdriver.common.by import By
from test_browser import _attr, _click_at, _go, _requests, _wait, browser, pytestmark  # noqa: F401 (the fixture, the skip)

from eventcity import COMMUNITY, STREET, file, lonlat, pick
from servers import serving


def test_cases_on_the_map_and_in_the_queue(browser, event_city, client, engine, database_url, output_dir):  # noqa: F811
    queued = file(client, event_city["ingest"], pick(False, "community"), x=700, y=300)
    auto = file(client, event_city["ingest"], pick(True, "community", "cg"), x=300, y=500)
    lon, lat = lonlat(300, 500)
    token = event_city["dispatcher"]["Authorization"].split()[1]
    with serving(database_url, "--workers", "1", "--tick-seconds", "0") as (base, _port):
        browser.get(base + "/")
        # signed in for this tab only (the map's sign-in without "keep me signed in"): the queue page
        # must find it too (before: it read localStorage alone and asked for a token again)
        browser.execute_script(f"sessionStorage.setItem('gridmap.token', {json.dumps(token)});")
        browser.get(base + "/")
        _wait(browser, _attr("ready"))
        _go(browser, lat, lon, 16)
        _wait(browser, f"+{_attr('drawn-cases')} >= 1")
        _wait(browser, _attr("event-stats") + " === '2'")  # the city's figures in the statistics box

        # click the case marker: its panel, its timeline, the dispatcher's actions
        _click_at(browser, lat, lon)
        _wait(browser, _attr("case") + f" === {json.dumps(str(auto['id']))}")
        panel = browser.find_element(By.ID, "gridmap-panel")
        assert "派遣依据 why" in panel.text and auto["route"]["why"][:20] in panel.text
        logged = int(browser.execute_script(f"return {_attr('case-log')};"))
        buttons = [b.get_attribute("data-action") for b in panel.find_elements(By.CSS_SELECTOR, "[data-action]")]
        assert "suspend" in buttons and "dispose" not in buttons  # a dispatcher's, not a handler's
        panel.find_element(By.CSS_SELECTOR, ".gm-case-note").send_keys("等待天气好转")
        panel.find_element(By.CSS_SELECTOR, "[data-action='suspend']").click()
        _wait(browser, _attr("case-action") + " === 'suspend:suspended'")
        _wait(browser, f"+{_attr('case-log')} === {logged + 1}")
        browser.save_screenshot(str(output_dir / "events-map.png"))

        # the grid's panel lists its open cases
        browser.execute_script(f"gridmap.showPanel({json.dumps(COMMUNITY)});")
        _wait(browser, f"+{_attr('grid-cases')} === 2")

        # the queue page: the street's cases by deadline; dispatch the queued one to a department
        browser.get(base + f"/events?grid={STREET}")
        _wait(browser, _attr("queue") + " === '2'")
        row = browser.find_element(By.CSS_SELECTOR, f"tr[data-case='{queued['id']}']")
        row.find_element(By.CSS_SELECTOR, ".department").send_keys(f"{COMMUNITY}-zz")
        row.find_element(By.CSS_SELECTOR, ".note").send_keys("派往社区网格工作站")
        row.find_element(By.CSS_SELECTOR, "[data-action='dispatch']").click()
        _wait(browser, _attr("queue-action") + " === 'dispatch:dispatched'")
        time.sleep(0.3)
        browser.save_screenshot(str(output_dir / "events-queue.png"))
        urls = _requests(browser)
    with engine.connect() as conn:
        state, dept = conn.execute(
            sa.text("SELECT state, department_code FROM report WHERE id = :id"), {"id": queued["id"]}
        ).one()
    assert (state, dept) == ("dispatched", f"{COMMUNITY}-zz")
    assert any("/tiles/cases/" in u for u in urls)
    assert [u for u in urls if not u.startswith(base) and not u.startswith(("data:", "blob:"))] == []
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
