"""The scanned QR page in a real headless Chromium at a phone's size (390 x 844), served by `gridmap
serve` over the test city with a roster imported through the CLI, every host but 127.0.0.1
unreachable: the page shows the grid, its chain and its people with masked phones, weighs under
150 kB in all, refuses an empty report, and files one with a photo that lands in the database as a
``qr`` case of the right grid.

Saves tests/output/scan.png and tests/output/scan-sent.png for a person to look at.
"""

from __future__ import annotations

import base64
import json

import pytest
import sqlalchemy as sa

from gridmap.services import qr as qr_service

import cityfactory as cf
from servers import serving

pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_browser import CHROMEDRIVER, CHROMIUM, chromium  # noqa: E402

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver")
# a 1 x 1 JPEG: the photo a phone would attach
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////"
    "////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA="
)


@pytest.fixture(scope="module")
def phone():
    driver = chromium(390, 844, phone=True)
    yield driver
    driver.quit()


def _bytes_loaded(driver) -> tuple[int, list[str]]:
    """Encoded bytes of every response the page loaded, and their URLs (from the DevTools log)."""
    total, urls = 0, []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.loadingFinished":
            total += int(msg["params"]["encodedDataLength"])
        elif msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return total, urls


def test_scanned_page_on_a_phone_files_a_report(engine, database_url, cli, phone, output_dir, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    code = "41019900100100101"
    (tmp_path / "roster.csv").write_text(
        f"网格编码,职务,姓名,电话\n{code},网格员,张伟,13812345678\n410199001001001,网格长,王芳,0371-67881234\n",
        encoding="gb18030",
    )
    assert cli("people", "import", tmp_path / "roster.csv").exit_code == 0
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(JPEG)
    eng = engine
    with serving(database_url, "--workers", "1") as (base, _port):
        with eng.begin() as conn:
            url = qr_service.sign_url(conn, "g", code, base)
        phone.get(url)
        WebDriverWait(phone, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")
        loaded, urls = _bytes_loaded(phone)
        assert all(u.startswith(base) or u.startswith("data:") for u in urls), urls
        assert loaded <= 150 * 1024, f"the page loaded {loaded} bytes"
        header = phone.find_element(By.TAG_NAME, "header").text
        assert code in header and "›" in header
        people = phone.find_element(By.CSS_SELECTOR, "ul.people").text
        assert "网格员" in people and "****" in people
        assert phone.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scroll
        phone.save_screenshot(str(output_dir / "scan.png"))

        phone.find_element(By.ID, "submit").click()  # nothing written yet: the text is missing
        msg = phone.find_element(By.ID, "report-msg")
        WebDriverWait(phone, 10).until(lambda d: msg.is_displayed())
        assert "请写下要反映的问题" in msg.text

        phone.find_element(By.ID, "text").send_keys("3号楼楼道堆放杂物，影响通行")
        phone.find_element(By.ID, "photo").send_keys(str(photo))
        phone.find_element(By.ID, "submit").click()  # nothing written yet: no matter chosen
        WebDriverWait(phone, 10).until(lambda d: "请选择事项" in msg.text)
        Select(phone.find_element(By.ID, "matter")).select_by_value("04001")  # 楼道堆放杂物
        phone.find_element(By.ID, "submit").click()
        WebDriverWait(phone, 20).until(lambda d: "已提交" in msg.text)
        phone.save_screenshot(str(output_dir / "scan-sent.png"))
    case = int(msg.text.split("编号 ")[1].split("，")[0])
    with eng.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT r.source, r.micro_code, r.text, r.attrs->'qr'->>'code', count(m.id), r.matter_code, r.state "
                "FROM report r "
                "LEFT JOIN report_media m ON m.report_id = r.id WHERE r.id = :id GROUP BY r.id"
            ),
            {"id": case},
        ).one()
        after = conn.execute(sa.text("SELECT count(*) FROM report WHERE source = 'qr'")).scalar_one()
    assert tuple(row) == ("qr", code, "3号楼楼道堆放杂物，影响通行", code, 1, "04001", "filed")
    assert after == 1  # the refused empty report wrote nothing
