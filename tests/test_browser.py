"""The one map in a real headless Chromium (Debian's chromium + chromedriver, nothing downloaded)
against the real app served by `gridmap serve`, with every host but 127.0.0.1 unreachable.

Saves tests/output/map.png (the whole-map view with the info panel open) for a person to look at.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
import shapely
import sqlalchemy as sa

from gridmap.store import db

from servers import serving

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (make test installs them)"
)


@pytest.fixture(scope="module")
def server(demo_url):
    with serving(demo_url, "--workers", "1") as (base, _port):
        yield base


def chromium(width: int = 1400, height: int = 900, *, phone: bool = False):
    """A headless Chromium that reaches nothing but 127.0.0.1, logging network and console; ``phone``
    emulates a phone's screen (touch, device pixel ratio 3) at ``width`` x ``height``."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--window-size={width},{height}",
        # nothing but the app: names resolve nowhere, and anything else goes to a dead proxy
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
    ):
        options.add_argument(flag)
    if phone:
        metrics = {"width": width, "height": height, "pixelRatio": 3}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _wait(driver, js: str, timeout: float = 30):
    """Wait until the JavaScript expression ``js`` is truthy; return its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(f"return {js};"))


def _go(driver, lat, lon, zoom):
    """Set the view, again if the page's own first fit to the city's bounds lands after it."""

    def there(d):
        d.execute_script(
            f"if (gridmap.map.getZoom() !== {zoom}) gridmap.map.setView([{lat}, {lon}], {zoom}, {{animate: false}});"
        )
        return d.execute_script(f"return gridmap.map.getZoom() === {zoom};")

    WebDriverWait(driver, 15, poll_frequency=0.3).until(there)


def _click_at(driver, lat, lon):
    """A real mouse click on the map where (lat, lon) is drawn."""
    x, y = driver.execute_script(
        f"var p = gridmap.map.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y];"
    )  # fmt: skip
    container = driver.find_element(By.CSS_SELECTOR, ".folium-map")
    rect = container.rect
    ActionChains(driver).move_to_element_with_offset(
        container, int(x - rect["width"] / 2), int(y - rect["height"] / 2)
    ).click().perform()


def _attr(name: str) -> str:
    return f"document.body.getAttribute('data-{name}')"


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _sample(demo_url) -> dict:
    """A micro-grid with a red element, its interior point, and a courtyard to search for."""
    with db.engine(demo_url).connect() as conn:
        row = (
            conn.execute(
                sa.text("""
            SELECT g.code, g.parent_code, ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                SELECT g.code, g.parent_code, ST_PointOnSurface(g.geom) AS p
                FROM grid g JOIN grid_risk r ON r.code = g.code
                WHERE g.valid_to IS NULL AND g.level = 'micro' AND r.colour = 'red'
                ORDER BY g.code LIMIT 1) g""")
            )
            .mappings()
            .one()
        )
        far = conn.execute(
            sa.text("""
            SELECT code FROM grid WHERE valid_to IS NULL AND level = 'courtyard' AND code <> :c
            ORDER BY code DESC LIMIT 1"""),
            {"c": row["parent_code"]},
        ).scalar_one()
    return {**row, "far_courtyard": far}


def test_one_map_in_chromium(server, browser, demo_url, output_dir):
    sample = _sample(demo_url)
    browser.get(server + "/")
    _wait(browser, _attr("ready"))
    _wait(browser, _attr("stats") + " === 'ready'")
    _wait(browser, f"+{_attr('drawn-district')} > 0 && +{_attr('drawn-street')} > 0")

    # zoom to the sample micro-grid: micro-grids, courtyards and all three risk layers draw there
    _go(browser, sample["lat"], sample["lon"], 16)
    for layer in ("micro", "courtyard", "risk-red", "risk-yellow", "risk-blue", "shade-micro"):
        _wait(browser, f"+{_attr('drawn-' + layer)} > 0")

    # click the grid: the panel shows its code, chain, households and risk counts
    size = browser.execute_script(
        f"var p = gridmap.map.latLngToContainerPoint([{sample['lat']}, {sample['lon']}]); return [p.x, p.y];"
    )
    container = browser.find_element(By.CSS_SELECTOR, ".folium-map")
    rect = container.rect
    ActionChains(browser).move_to_element_with_offset(
        container, int(size[0] - rect["width"] / 2), int(size[1] - rect["height"] / 2)
    ).click().perform()
    _wait(browser, _attr("panel") + f" === {json.dumps(sample['code'])}")
    panel = browser.find_element(By.ID, "gridmap-panel")
    assert browser.find_element(By.ID, "gm-panel-code").text == sample["code"]
    assert "户数 households" in panel.text and "red" in panel.text
    browser.save_screenshot(str(output_dir / "map.png"))

    # search a courtyard code elsewhere: the map flies there and its panel opens
    tiles_before = browser.execute_script("return gridmap.state.loadedTiles['micro'] || 0;")
    box = browser.find_element(By.CSS_SELECTOR, "#gridmap-search input")
    box.clear()
    box.send_keys(sample["far_courtyard"], Keys.ENTER)
    _wait(browser, _attr("flown") + f" === {json.dumps(sample['far_courtyard'])}")
    _wait(browser, _attr("panel") + f" === {json.dumps(sample['far_courtyard'])}")
    centre = browser.execute_script("var c = gridmap.map.getCenter(); return [c.lng, c.lat];")
    with db.engine(demo_url).connect() as conn:
        inside = conn.execute(
            sa.text(
                "SELECT ST_Intersects(ST_Expand(geom, 0.0005), ST_SetSRID(ST_MakePoint(:x, :y), 4326)) FROM grid "
                "WHERE code = :c AND valid_to IS NULL"
            ),
            {"x": centre[0], "y": centre[1], "c": sample["far_courtyard"]},
        ).scalar_one()
    assert inside, f"map centre {centre} is not on courtyard {sample['far_courtyard']}"
    _wait(browser, f"(gridmap.state.loadedTiles['micro'] || 0) > {tiles_before}")  # drawn there
    time.sleep(0.5)
    browser.save_screenshot(str(output_dir / "map-search.png"))

    # nothing left 127.0.0.1, and the page logged no errors
    urls = _requests(browser)
    assert any("/tiles/micro/" in u for u in urls) and any("/tiles/risk-red/" in u for u in urls)
    outside = [u for u in urls if not u.startswith(server) and not u.startswith(("data:", "blob:"))]
    assert outside == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_planner_splits_a_grid_on_the_map(browser, engine, cli, tmp_path, database_url, output_dir):
    """A planner selects a micro-grid, splits it with a line, sees the preview and commits: the
    database then holds two new micro-grids and the old one's history."""
    from gridmap import geo
    from gridmap.store import users

    import cityfactory as cf

    cf.load(cli, cf.city(), tmp_path)
    with engine.begin() as conn:
        users.add_user(conn, "李规划", "planner")
        secret = users.issue_token(conn, "李规划")
    m1 = "41019900100100101"
    ((lon, lat),) = [(p.x, p.y) for p in geo.from_local([shapely.Point(cf.X0 + 500, cf.Y0 + 700)])]
    a, b = [
        (p.x, p.y)
        for p in geo.from_local([shapely.Point(cf.X0 - 20, cf.Y0 + 500), shapely.Point(cf.X0 + 1020, cf.Y0 + 500)])
    ]
    with serving(database_url, "--workers", "1") as (url, _port):
        browser.get(url + "/")
        browser.execute_script(f"localStorage.setItem('gridmap.token', {json.dumps(secret)});")
        browser.get(url + "/")
        _wait(browser, _attr("ready"))
        _go(browser, lat, lon, 15)
        _wait(browser, f"+{_attr('drawn-micro')} > 0")
        browser.execute_script(f"gridmap.map.fire('click', {{latlng: L.latLng({lat}, {lon})}});")
        _wait(browser, _attr("panel") + f" === {json.dumps(m1)}")
        browser.find_element(By.CSS_SELECTOR, "#gridmap-panel .gm-split").click()
        _wait(browser, _attr("edit") + " === 'drawing'")
        # the line drawn with the mouse, as a planner draws it with Geoman's line tool: a click at each
        # end and one more on the last vertex to finish (before: the first click opened the panel of
        # the grid under it and ended the drawing)
        for x, y in (a, b, b):
            _click_at(browser, y, x)
            time.sleep(0.2)
        _wait(browser, _attr("edit") + " === 'previewed'")
        preview = browser.find_element(By.CSS_SELECTOR, "#gridmap-panel .gm-edit-out").text
        assert "预览 preview" in preview and m1 in preview and "60 → retired" in preview
        browser.find_element(By.CSS_SELECTOR, "#gridmap-panel .gm-reason").send_keys("地图上分割")
        browser.find_element(By.CSS_SELECTOR, "#gridmap-panel .gm-commit").click()
        tiles_before = browser.execute_script("return gridmap.state.loadedTiles['micro'] || 0;")
        _wait(browser, _attr("edit") + " === 'committed'")
        # the panel moves to the first new part, and the map redraws with the new boundaries
        _wait(
            browser,
            f"({_attr('panel')} || '').startsWith({json.dumps(m1[:-2])}) && {_attr('panel')} !== {json.dumps(m1)}",
        )
        _wait(browser, f"(gridmap.state.loadedTiles['micro'] || 0) > {tiles_before}")
        time.sleep(0.5)
        browser.save_screenshot(str(output_dir / "map-edit.png"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT code, valid_to IS NULL FROM grid WHERE parent_code = :p AND level = 'micro' "
                "ORDER BY code, valid_from"
            ),
            {"p": m1[:-2]},
        ).all()
        reason = conn.execute(sa.text("SELECT actor, reason FROM edit_log ORDER BY id DESC LIMIT 1")).one()
    assert (m1, False) in rows and sum(1 for _, current in rows if current) == 3  # M2 and the two parts
    assert tuple(reason) == ("李规划", "地图上分割")
