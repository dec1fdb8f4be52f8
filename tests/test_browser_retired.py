"""Map search of a retired code (issue #15 item 2, the page side): the list says when it was retired, in
the office zone, and links the grids that hold its area now."""

from __future__ import annotations

import pytest
from test_browser import CHROMEDRIVER, CHROMIUM, _attr, _wait, browser  # noqa: F401 (a fixture, taken by name)
from test_browser_day import _open
from test_edits import etag_of, post, pt

import cityfactory as cf
from servers import serving

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (make test installs them)"
)
Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys
By = pytest.importorskip("selenium.webdriver.common.by").By
Y1 = "410199001001001"


def test_search_of_a_retired_code_says_when_and_where_it_went(
    request, engine, cli, tmp_path, client, bearer, database_url, output_dir
):
    cf.load(cli, cf.city(), tmp_path)
    line = {"type": "LineString", "coordinates": [pt(-10, 1000), pt(1010, 1000)]}
    res = post(client, bearer("planner"), {"op": "split", "code": Y1, "line": line}, if_match=etag_of(client, Y1))
    assert res.status_code == 201, res.get_json()
    opened = res.get_json()["opened"]
    hit = next(h for h in client.get("/api/v1/search", query_string={"q": Y1}).get_json()["results"] if h["code"] == Y1)
    driver = request.getfixturevalue("browser")
    with serving(database_url, "--workers", "1") as (base, _port):
        _open(driver, base + "/")
        box = driver.find_element(By.CSS_SELECTOR, "#gridmap-search input")
        box.send_keys(Y1, Keys.ENTER)
        _wait(driver, _attr("search") + " === 'retired'")
        text = driver.find_element(By.CSS_SELECTOR, "#gridmap-search .gm-retired").text
        # retired_at is ISO with the office offset (+08:00): shown as the office's wall-clock time
        assert f"{Y1} 已撤销 retired on {hit['retired_at'][:10]} {hit['retired_at'][11:16]} Asia/Shanghai" in text
        assert all(code in text for code in opened) and "area went to" in text
        assert "no building number" not in driver.find_element(By.ID, "gridmap-search").text
        driver.save_screenshot(str(output_dir / "map-retired.png"))
        # a link to where the area went opens that grid
        driver.find_element(By.CSS_SELECTOR, f"#gridmap-search .gm-retired a[data-code='{opened[0]}']").click()
        _wait(driver, _attr("panel") + f" === '{opened[0]}'")
