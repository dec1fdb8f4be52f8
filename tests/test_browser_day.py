"""A dispatcher's and a planner's day on the map (issue #15 items 3, 7–11), in the real headless
Chromium of test_browser.py against `gridmap serve`.  Screenshots under tests/output/."""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import shapely
import sqlalchemy as sa
from test_browser import CHROMEDRIVER, CHROMIUM, _attr, _go, _requests, _sample, _wait, browser, server  # noqa: F401 (fixtures, taken below by name)

from gridmap import geo
from gridmap.store import db, users

import cityfactory as cf
from servers import serving

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (make test installs them)"
)
By = pytest.importorskip("selenium.webdriver.common.by").By
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys


@pytest.fixture
def chromium(request):
    """test_browser.py's headless Chromium."""
    return request.getfixturevalue("browser")


@pytest.fixture
def demo(request):
    """test_browser.py's Chromium and its `gridmap serve` of the demo city: (driver, base URL)."""
    return request.getfixturevalue("browser"), request.getfixturevalue("server")


def _open(driver, url):
    """Load the page fresh (nothing kept in the driver from an earlier test) and wait until it is ready."""
    origin = "/".join(url.split("/")[:3])
    driver.get(origin + "/static/gridmap.css")
    driver.execute_script("localStorage.clear(); sessionStorage.clear();")
    driver.get(url)
    _wait(driver, _attr("ready"))
    _wait(driver, _attr("stats") + " === 'ready'")


def _click(driver, lat, lon):
    driver.execute_script(f"gridmap.map.fire('click', {{latlng: L.latLng({lat}, {lon})}});")


def _one(demo_url, sql, **params):
    with db.engine(demo_url).connect() as conn:
        return conn.execute(sa.text(sql), params).mappings().first()


# --- item 3: sign-in, the role shown, edit tools for planners only ----------------------------------


def _signin(driver, name, password):
    driver.find_element(By.CSS_SELECTOR, "#gridmap-user .gm-signin-open").click()
    form = driver.find_element(By.ID, "gridmap-signin")
    form.find_element(By.NAME, "name").send_keys(name)
    form.find_element(By.NAME, "password").send_keys(password, Keys.ENTER)


def test_sign_in_shows_role_and_edit_tools_to_planners_only(chromium, engine, cli, tmp_path, database_url, output_dir):
    cf.load(cli, cf.city(), tmp_path)
    with engine.begin() as conn:
        users.add_user(conn, "李规划", "planner")
        users.add_user(conn, "张调度", "dispatcher")
    for name in ("李规划", "张调度"):
        assert cli("users", "password", name, input="grid map day\ngrid map day\n").exit_code == 0
    ((lon, lat),) = [(p.x, p.y) for p in geo.from_local([shapely.Point(cf.X0 + 500, cf.Y0 + 700)])]
    m1 = "41019900100100101"
    driver = chromium
    with serving(database_url, "--workers", "1") as (url, _port):
        _open(driver, url + "/")
        assert driver.find_element(By.ID, "gridmap-user").text == "登录 sign in"
        # a wrong password: the form says so and nothing is kept
        _signin(driver, "李规划", "wrong password")
        _wait(driver, _attr("signin") + " === 'refused'")
        assert "wrong user name or password" in driver.find_element(By.ID, "gridmap-signin").text
        assert driver.execute_script("return sessionStorage.getItem('gridmap.token')") is None
        driver.find_element(By.CSS_SELECTOR, "#gridmap-signin .gm-close").click()
        # the planner signs in: name and role shown, the token kept for this tab, the edit tools shown
        _signin(driver, "李规划", "grid map day")
        _wait(driver, _attr("signed-in") + " === 'planner'")
        assert driver.find_element(By.ID, "gridmap-user").text.startswith("李规划 planner")
        assert driver.execute_script("return sessionStorage.getItem('gridmap.token')").startswith("gm_")
        assert driver.execute_script("return localStorage.getItem('gridmap.token')") is None
        _go(driver, lat, lon, 15)
        _click(driver, lat, lon)
        _wait(driver, _attr("panel") + f" === {json.dumps(m1)}")
        _wait(driver, _attr("edit-tools") + " === 'shown'")
        assert driver.find_elements(By.CSS_SELECTOR, "#gridmap-panel .gm-split")
        driver.save_screenshot(str(output_dir / "map-signed-in.png"))
        # sign out: the sign-in token is revoked on the base, the page forgets it
        driver.find_element(By.CSS_SELECTOR, "#gridmap-user .gm-signout").click()
        _wait(driver, _attr("signed-in") + " === ''")
        with engine.connect() as conn:
            revoked = conn.execute(
                sa.text(
                    "SELECT revoked_at IS NOT NULL FROM api_token t JOIN app_user u ON u.id = t.user_id "
                    "WHERE u.name = '李规划' AND t.label = 'sign-in'"
                )
            ).scalar_one()
        assert revoked
        assert driver.execute_script("return sessionStorage.getItem('gridmap.token')") is None
        # a dispatcher ("keep me signed in" ticked): the role shows, the edit tools do not
        driver.find_element(By.CSS_SELECTOR, "#gridmap-user .gm-signin-open").click()
        driver.find_element(By.CSS_SELECTOR, "#gridmap-signin [name=remember]").click()
        form = driver.find_element(By.ID, "gridmap-signin")
        form.find_element(By.NAME, "name").send_keys("张调度")
        form.find_element(By.NAME, "password").send_keys("grid map day", Keys.ENTER)
        _wait(driver, _attr("signed-in") + " === 'dispatcher'")
        assert driver.execute_script("return localStorage.getItem('gridmap.token')").startswith("gm_")
        _go(driver, lat, lon, 15)
        _click(driver, lat, lon)
        _wait(driver, _attr("panel") + f" === {json.dumps(m1)}")
        driver.execute_script("return gridmapAuth.ready")
        assert not driver.find_elements(By.CSS_SELECTOR, "#gridmap-panel .gm-split")
        assert "dispatcher" in driver.find_element(By.ID, "gridmap-user").text
        driver.execute_script("localStorage.clear(); sessionStorage.clear();")


# --- item 7: clusters in no risk colour, shading outlined --------------------------------------------


def _rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def _hex(h: str) -> tuple[int, int, int]:
    return tuple(int(h[i : i + 2], 16) for i in (1, 3, 5))


def test_report_clusters_use_no_risk_colour_and_shading_is_outlined(demo, output_dir):
    driver, base = demo
    _open(driver, base + "/")
    _go(driver, 34.745, 113.68, 11)
    _wait(driver, f"+{_attr('reports')} > 0")
    _wait(driver, "document.querySelectorAll('.gm-report-cluster div').length > 0")
    colour = driver.execute_script(
        "return getComputedStyle(document.querySelector('.gm-report-cluster div')).backgroundColor"
    )
    risk = driver.execute_script("return gridmap.cfg.risk")
    risk_colours = {_hex(c) for c in risk["colours"].values()} | {
        _hex(s["colour"]) for s in risk["styles"].values() if s.get("colour")
    }
    defaults = {(110, 204, 57), (240, 194, 12), (241, 128, 23)}  # markercluster's green, yellow, orange
    got = _rgb(colour)
    assert got not in risk_colours and got not in defaults
    # no risk colour is even close (yellow and orange were what read as risk)
    assert min(sum(abs(a - b) for a, b in zip(got, c)) for c in risk_colours | defaults) > 120
    # the legend's cluster swatch is the same colour
    legend = driver.execute_script("return getComputedStyle(document.querySelector('.gm-cluster')).backgroundColor")
    assert _rgb(legend) == got
    # community shading at z10–11 is drawn with an outline in its colour
    for z in (10, 11):
        style = driver.execute_script(f"return gridmap.state.styles['shade-community']({{risk: 'red'}}, {z})")
        assert style["stroke"] is True and style["weight"] > 0 and style["color"] == risk["styles"]["red"]["colour"]
    _wait(driver, f"+{_attr('drawn-shade-community')} > 0")
    driver.save_screenshot(str(output_dir / "map-clusters.png"))


# --- item 9: names, the view in the URL, a click outside, address search, small screens --------------


def test_view_in_url_restores_names_are_drawn_and_outside_clears_panel(demo, demo_url, output_dir):
    driver, base = demo
    sample = _sample(demo_url)
    _open(driver, base + "/")
    _go(driver, sample["lat"], sample["lon"], 16)
    _click(driver, sample["lat"], sample["lon"])
    _wait(driver, _attr("panel") + f" === {json.dumps(sample['code'])}")
    _wait(driver, f"({_attr('hash')} || '').indexOf('grid={sample['code']}') > 0")
    # grid names: courtyards at z16
    _wait(driver, f"{_attr('label-levels')} === 'courtyard' && +{_attr('labels')} > 0")
    names = driver.execute_script("return Array.from(document.querySelectorAll('.gm-label')).map(e => e.textContent)")
    courtyard = _one(demo_url, "SELECT name FROM grid WHERE code = :c AND valid_to IS NULL", c=sample["parent_code"])
    assert courtyard["name"] in names
    shared = driver.execute_script("return window.location.href")
    assert re.search(r"#map=16/[\d.]+/[\d.]+&grid=", shared)
    # the shared link in a new page: same view, same grid in the panel
    driver.get("about:blank")
    driver.get(shared)
    _wait(driver, _attr("ready"))
    _wait(driver, _attr("panel") + f" === {json.dumps(sample['code'])}")
    centre = driver.execute_script("var c = gridmap.map.getCenter(); return [gridmap.map.getZoom(), c.lat, c.lng];")
    assert centre[0] == 16
    assert abs(centre[1] - sample["lat"]) < 1e-4 and abs(centre[2] - sample["lon"]) < 1e-4
    # district names at the city's zoom
    _go(driver, sample["lat"], sample["lon"], 10)
    _wait(driver, f"{_attr('label-levels')} === 'district' && +{_attr('labels')} > 0")
    # a click outside every grid: the panel says so and no grid stays selected
    _click(driver, 34.0, 113.0)
    _wait(driver, _attr("panel") + " === 'outside'")
    assert "outside every grid" in driver.find_element(By.ID, "gridmap-panel").text
    assert driver.execute_script("return gridmap.state.selected") is None
    assert "grid=" not in driver.execute_script("return window.location.hash")
    driver.save_screenshot(str(output_dir / "map-outside.png"))


def test_address_search_marks_the_building(demo, demo_client, output_dir):
    driver, base = demo
    address = "新华小区1号楼1单元"
    hits = demo_client.get("/api/v1/search", query_string={"q": address}).get_json()["results"]
    (hit,) = [h for h in hits if h["type"] == "address"]
    _open(driver, base + "/")
    box = driver.find_element(By.CSS_SELECTOR, "#gridmap-search input")
    box.send_keys(address, Keys.ENTER)
    _wait(driver, _attr("address-marker"))
    lon, lat = (float(v) for v in driver.execute_script("return " + _attr("address-marker")).split(","))
    assert (round(lon, 6), round(lat, 6)) == (round(hit["point"][0], 6), round(hit["point"][1], 6))
    _wait(driver, "document.querySelector('.gm-address-tip') !== null")
    assert address in driver.find_element(By.CSS_SELECTOR, ".gm-address-tip").text
    _wait(driver, _attr("flown"))
    driver.save_screenshot(str(output_dir / "map-address.png"))


def test_small_screen_leaves_the_map_usable_and_placeholders_fit(demo, output_dir):
    driver, base = demo
    driver.set_window_size(1024, 640)
    try:
        _open(driver, base + "/")
        assert driver.execute_script("return " + _attr("collapsed-gridmap-stats")) == "1"
        assert driver.execute_script("return " + _attr("collapsed-gridmap-legend")) == "1"
        covered = driver.execute_script("""
            var m = document.querySelector('.folium-map').getBoundingClientRect(), area = 0;
            ['gridmap-stats', 'gridmap-legend', 'gridmap-search', 'gridmap-asof'].forEach(function (id) {
              var r = document.getElementById(id).getBoundingClientRect(); area += r.width * r.height; });
            return area / (m.width * m.height);""")
        assert covered < 0.12, f"boxes cover {covered:.0%} of the map"
        # every placeholder fits its box: typed in as a value, it needs no scrolling
        for sel in ("#gridmap-search input", "#gridmap-asof input"):
            room, need = driver.execute_script(
                """var el = document.querySelector(arguments[0]), keep = el.value;
                el.value = el.placeholder; var out = [el.clientWidth, el.scrollWidth]; el.value = keep;
                return out;""",
                sel,
            )
            assert need <= room, f"{sel} placeholder needs {need}px, has {room}px"
        driver.save_screenshot(str(output_dir / "map-1024x640.png"))
        # a click opens the statistics
        driver.find_element(By.CSS_SELECTOR, "#gridmap-stats .gm-toggle").click()
        assert driver.execute_script("return " + _attr("collapsed-gridmap-stats")) == "0"
        assert driver.find_element(By.CSS_SELECTOR, "#gridmap-stats .gm-body").is_displayed()
    finally:
        driver.execute_script("localStorage.clear();")
        driver.set_window_size(1400, 900)


# --- item 8: "boundaries as of" -----------------------------------------------------------------------


def test_boundaries_as_of_a_date_typed_locally(demo, demo_url, output_dir):
    driver, base = demo
    sample = _sample(demo_url)
    _open(driver, base + "/")
    date = driver.find_element(By.CSS_SELECTOR, "#gridmap-asof input")
    assert date.get_attribute("placeholder").startswith("年-月-日")
    # not a date: said, nothing changes
    date.send_keys("31/31/2024", Keys.ENTER)
    _wait(driver, _attr("asof") + " === 'invalid'")
    assert "2024-03-01" in driver.find_element(By.CSS_SELECTOR, "#gridmap-asof .gm-date-error").text
    # a date before any grid, typed the Chinese way: the page says there were no grids yet
    date.clear()
    date.send_keys("2024年3月1日", Keys.ENTER)
    _wait(driver, _attr("asof") + " === '2024-03-01'")
    assert date.get_attribute("value") == "2024-03-01"
    _wait(driver, _attr("asof-empty") + " === '1'")
    note = driver.find_element(By.CSS_SELECTOR, "#gridmap-asof .gm-note").text
    assert "no grids yet" in note
    assert "as of 2024-03-01" in driver.find_element(By.ID, "gridmap-stats").get_attribute("textContent")
    assert "at=2024-03-01" in driver.execute_script("return window.location.hash")
    # the grid tiles ask for that date; risk elements do not (the note says so instead)
    _wait(driver, "gridmap.state.loadedTiles['district'] > 0")
    urls = [u for u in _requests(driver) if "at=2024-03-01" in u]
    assert any("/tiles/district/" in u for u in urls)
    assert "at" not in (driver.execute_script("return gridmap.state.tileParams['risk-red']") or {})
    # a date the grids exist on: the panel follows it and says what stays today's
    today = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y/%m/%d")
    date.clear()
    date.send_keys(today, Keys.ENTER)
    _wait(driver, _attr("asof-empty") + " === '0'")
    assert "reports are today's" in driver.find_element(By.CSS_SELECTOR, "#gridmap-asof .gm-note").text
    _go(driver, sample["lat"], sample["lon"], 17)
    _click(driver, sample["lat"], sample["lon"])
    _wait(driver, _attr("panel") + f" === {json.dumps(sample['code'])}")
    dated = driver.find_element(By.ID, "gm-panel-dated").text
    assert "risk and reports exist for today only" in dated
    driver.save_screenshot(str(output_dir / "map-asof.png"))


# --- item 10: the panel explains a courtyard's colour ------------------------------------------------


def test_panel_explains_a_blue_courtyard_with_a_red_element(demo, demo_url, demo_client):
    driver, base = demo
    row = _one(
        demo_url,
        """SELECT g.code, ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
        FROM grid g JOIN grid_risk r ON r.code = g.code
        WHERE g.level = 'courtyard' AND g.valid_to IS NULL AND r.red = 1 AND r.colour = 'blue'
        ORDER BY g.code LIMIT 1""",
    )
    rule = demo_client.get(f"/api/v1/grids/{row['code']}/panel").get_json()["properties"]["risk"]["rule"]
    assert rule["colour"] == "blue" and rule["thresholds"]["red"] == 2
    _open(driver, base + f"/#map=16/{row['lat']}/{row['lon']}&grid={row['code']}")
    _wait(driver, _attr("panel") + f" === {json.dumps(row['code'])}")
    why = driver.find_element(By.ID, "gm-panel-why").text
    assert "red 1 < 2" in why and "courtyard" in why


# --- item 11 and the configured band: times in the office zone, histogram labels --------------------


def test_times_in_office_zone_and_band_from_settings(chromium, demo_url):
    driver = chromium
    report = _one(
        demo_url,
        """SELECT r.micro_code, r.received_at, ST_X(g.p) AS lon, ST_Y(g.p) AS lat FROM report r
        JOIN (SELECT code, ST_PointOnSurface(geom) AS p FROM grid WHERE valid_to IS NULL) g ON g.code = r.micro_code
        WHERE r.status = 'open' ORDER BY r.received_at DESC LIMIT 1""",
    )
    for zone, band in (("Asia/Shanghai", "50–70"), ("America/New_York", "45–65")):
        env = {"GRIDMAP_TZ": zone, "GRIDMAP_HOUSEHOLD_BAND": band.replace("–", "-")}
        with serving(demo_url, "--workers", "1", env=env) as (url, _port):
            _open(driver, url + f"/#map=18/{report['lat']}/{report['lon']}&grid={report['micro_code']}")
            _wait(driver, _attr("panel") + f" === {json.dumps(report['micro_code'])}")
            shown = report["received_at"].astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
            panel = driver.find_element(By.ID, "gridmap-panel").text
            assert shown in panel and zone in panel
            assert f"in {band}" in driver.find_element(By.ID, "gm-band").get_attribute("textContent")
