"""QR codes against the real app and CLI: the printed sheet decodes to signed URLs that open the
scanned page; forged, copied and malformed links are refused; a report is checked whole (text,
photo size, position), limited per phone and per grid, and nothing is half-written."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pypdfium2 as pdfium
import pytest
import shapely
import sqlalchemy as sa
import zxingcpp
from PIL import Image

from gridmap import geo
from gridmap.domain import scan as scan_rules
from gridmap.services import qr as qr_service
from gridmap.store import labels as label_store

import cityfactory as cf

M1, M2 = "41019900100100101", "41019900100100102"
COMMUNITY, BUILDING = "410199001001", "410199001001001B001"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)
    (tmp_path / "roster.csv").write_text(f"grid,role,name,phone\n{M1},grid_worker,张伟,13812345678\n", encoding="utf-8")
    assert cli("people", "import", tmp_path / "roster.csv").exit_code == 0
    return tmp_path


def _link(engine, code, kind="g"):
    with engine.begin() as conn:
        url = qr_service.sign_url(conn, kind, code, "http://wg.example.cn")
    parts = urlsplit(url)
    return parts.path + "?" + parts.query


def _decode_pdf(path) -> list[str]:
    out = []
    for page in pdfium.PdfDocument(str(path)):
        out += [r.text for r in zxingcpp.read_barcodes(page.render(scale=2).to_pil())]
    return out


def _reports(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM report")).scalar_one()


def test_sheet_codes_open_their_own_page(city, cli, client, engine):
    out = city / "sheet.pdf"
    res = cli("qr", "sheet", "--community", COMMUNITY, "--out", out, "--base", "http://wg.example.cn")
    assert res.exit_code == 0, res.output
    # 8 grids (the community, 2 courtyards, 4 micro-grids, 1 school), 4 buildings, 8 unit entrances
    assert "wrote 20 codes on 2 pages" in res.output
    urls = _decode_pdf(out)
    assert len(urls) == 20 and all(u.startswith("http://wg.example.cn/g/") for u in urls)
    worker = next(u for u in urls if f"/g/{M1}?" in u)
    page = client.get(urlsplit(worker).path + "?" + urlsplit(worker).query)
    assert page.status_code == 200 and "张*" in page.text and "138****5678" in page.text
    assert "13812345678" not in page.text
    unit = next(u for u in urls if "-U2?" in u)
    assert client.get(urlsplit(unit).path + "?" + urlsplit(unit).query).status_code == 200


def test_an_unknown_code_or_community_is_named_before_a_missing_public_address(city, cli):
    no_url = {"GRIDMAP_PUBLIC_URL": ""}
    res = cli("qr", "code", "999", "--out", city / "code.svg", env=no_url)
    assert res.exit_code == 2 and res.output.strip() == "gridmap: error: no current grid '999'"
    res = cli("qr", "sheet", "--community", "410199009009", "--out", city / "sheet.pdf", env=no_url)
    assert res.exit_code == 2 and res.output.strip() == "gridmap: error: no current community '410199009009'"
    # a known code without an address still names the address
    res = cli("qr", "code", M1, "--out", city / "code.svg", env=no_url)
    assert res.exit_code == 2 and "must start with http:// or https:// (GRIDMAP_PUBLIC_URL or --base)" in res.output


def test_reprint_after_a_boundary_edit_has_only_what_changed(city, cli, engine):
    with engine.connect() as conn:
        since = conn.execute(sa.text("SELECT now()")).scalar_one()
    c = cf.city()
    row = cf.find(c, "micro", M2)
    row["name"] = "改名后的网格"
    path = cf.write([row], city, "micro-edit")
    assert cli("import", path, "--level", "micro", "--replace").exit_code == 0
    out = city / "again.pdf"
    res = cli(
        "qr",
        "sheet",
        "--community",
        COMMUNITY,
        "--out",
        out,
        "--base",
        "http://wg.example.cn",
        "--changed-since",
        since.isoformat(),
    )
    assert res.exit_code == 0, res.output
    urls = _decode_pdf(out)
    # the renamed micro-grid, and the building standing in it with its two unit entrances
    assert sorted(urlsplit(u).path for u in urls) == sorted(
        [f"/g/{M2}", "/g/410199001001001B002", "/g/410199001001001B002-U1", "/g/410199001001001B002-U2"]
    )
    none = cli(
        "qr",
        "sheet",
        "--community",
        COMMUNITY,
        "--out",
        city / "none.pdf",
        "--base",
        "http://x.cn",
        "--changed-since",
        "2099-01-01",
    )
    assert none.exit_code == 2 and "nothing to print" in none.output


def test_bad_links_are_refused_with_a_clear_page(city, client, engine):
    good = _link(engine, M1)
    sig = good.split("s=")[1]
    forged = client.get(f"/g/{M1}?s=AAAAAAAAAAAA")
    assert forged.status_code == 403 and "伪造" in forged.text
    copied = client.get(f"/g/{M2}?s={sig}")
    assert copied.status_code == 403 and f"does not belong to grid {M2}" in copied.text
    assert client.get(f"/g/{M1}").status_code == 400
    assert client.get(f"/g/{M1}?s={sig}&k=x").status_code == 400
    gone = client.get(_link(engine, "41019900100199999"))
    assert gone.status_code == 404
    posted = client.post(f"/g/{M2}/report?s={sig}", data={"text": "复制的码"})
    assert posted.status_code == 403 and _reports(engine) == 0


def test_report_checks_and_files_nothing_half_written(city, client, engine):
    link = _link(engine, M1).replace("?", "/report?")
    empty = client.post(link, data={"text": "  ", "matter": "01001"})
    assert empty.status_code == 400 and "please describe" in empty.json["error"]["message"]
    big = client.post(
        link,
        data={
            "text": "路灯坏了",
            "matter": "10003",
            "photo": (io.BytesIO(JPEG + b"x" * scan_rules.MAX_PHOTO), "a.jpg"),
        },
    )
    assert big.status_code == 413
    fake = client.post(
        link, data={"text": "路灯坏了", "matter": "10003", "photo": (io.BytesIO(b"%PDF-1.4 not a photo"), "a.jpg")}
    )
    assert fake.status_code == 400 and "JPEG" in fake.json["error"]["message"]
    bad_phone = client.post(link, data={"text": "路灯坏了", "matter": "10003", "phone": "12345"})
    assert bad_phone.status_code == 400
    assert _reports(engine) == 0
    inside = geo.from_local([shapely.Point(cf.X0 + 500, cf.Y0 + 500)])[0]
    ok = client.post(
        link,
        data={
            "text": "路灯坏了",
            "matter": "10003",
            "lon": inside.x,
            "lat": inside.y,
            "phone": "13900000000",
            "photo": (io.BytesIO(JPEG), "a.jpg"),
        },
    )
    assert ok.status_code == 201 and ok.json["location"] == "phone" and ok.json["grid"] == M1
    far = client.post(link, data={"text": "垃圾没清", "matter": "01001", "lon": 113.9, "lat": 34.9})
    assert far.status_code == 201 and far.json["location"] == "grid (phone too far)"
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.source, r.micro_code, r.community_code, count(m.id), count(c.id) FROM report r "
                "LEFT JOIN report_media m ON m.report_id = r.id LEFT JOIN report_contact c ON c.report_id = r.id "
                "GROUP BY r.id ORDER BY r.id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("qr", M1, COMMUNITY, 1, 1), ("qr", M1, COMMUNITY, 0, 0)]


def test_reports_are_limited_per_phone_and_per_grid(city, client, engine):
    link = _link(engine, M1).replace("?", "/report?")
    for i in range(scan_rules.PER_CLIENT_HOUR):
        assert client.post(link, data={"text": f"第{i}次", "matter": "01001"}).status_code == 201
    limited = client.post(link, data={"text": "再来一次", "matter": "01001"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3600"
    for i in range(scan_rules.PER_GRID_HOUR - scan_rules.PER_CLIENT_HOUR):
        res = client.post(link, data={"text": "别的手机", "matter": "01001"}, headers={"User-Agent": f"phone {i}"})
        assert res.status_code == 201
    grid_full = client.post(link, data={"text": "又一部手机", "matter": "01001"}, headers={"User-Agent": "phone x"})
    assert grid_full.status_code == 429 and "this grid" in grid_full.json["error"]["message"]
    assert _reports(engine) == scan_rules.PER_GRID_HOUR


def test_call_button_reveals_one_number_to_a_signed_link(city, client, engine):
    link = _link(engine, M1)
    page = client.get(link)
    post = page.text.split('data-post="')[1].split('"')[0]
    called = client.post(link.replace("?", "/call?") + f"&post={post}")
    assert called.status_code == 200 and called.json == {"tel": "tel:13812345678"}
    assert client.post(f"/g/{M1}/call?s=AAAAAAAAAAAA&post={post}").status_code == 403
    assert client.post(link.replace("?", "/call?") + "&post=999").status_code == 404


def test_print_one_code_from_the_panel(city, client, bearer):
    res = client.get(f"/api/v1/qr/{M1}", query_string={"format": "png"}, headers=bearer("dispatcher"))
    assert res.status_code == 200 and res.mimetype == "image/png"
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(res.data)))
    assert found.text.startswith(f"http://localhost/g/{M1}?s=")
    opened = client.get(urlsplit(found.text).path + "?" + urlsplit(found.text).query)
    assert opened.status_code == 200
    svg = client.get(f"/api/v1/qr/{BUILDING}", query_string={"kind": "b"}, headers=bearer("roster"))
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert client.get(f"/api/v1/qr/{M1}", headers=bearer("viewer")).status_code == 403
    assert client.get("/api/v1/qr/41019900100199999", headers=bearer("dispatcher")).status_code == 404
    assert (
        client.get(f"/api/v1/qr/{M1}", query_string={"format": "gif"}, headers=bearer("dispatcher")).status_code == 400
    )


def test_the_page_masks_for_every_caller_and_checks_its_values(city, client, engine, bearer):
    """The scanned page is public: a staff token changes nothing on it (names and phones masked through
    web/privacy.public_page); its query, form and call values are checked (web/params.py) before
    anything is written."""
    link = _link(engine, M1)
    for headers in ({}, bearer("admin"), bearer("roster")):
        page = client.get(link, headers=headers)
        assert page.status_code == 200 and "张*" in page.text and "138****5678" in page.text
        assert "张伟" not in page.text and "13812345678" not in page.text
    odd = client.get(link + "&debug=1")
    assert odd.status_code == 400 and "unknown query parameter &#39;debug&#39;" in odd.text  # an HTML page
    report = link.replace("?", "/report?")
    extra = client.post(report, data={"text": "路灯坏了", "name": "张三"})
    assert extra.status_code == 400 and extra.json["error"]["message"].startswith("unknown form field 'name'")
    long = client.post(report, data={"text": "路灯坏了", "matter": "x" * 3000})
    assert long.status_code == 400 and "matter is 3000 characters long" in long.json["error"]["message"]
    assert _reports(engine) == 0
    call = link.replace("?", "/call?")
    for bad in ("abc", "0", "1.5"):
        res = client.post(call + f"&post={bad}")
        assert res.status_code == 400 and "post" in res.json["error"]["message"], bad


def test_each_building_label_carries_the_worker_of_the_micro_grid_it_stands_in(city, cli, engine):
    """The labels' query looks in the building's own courtyard first; the answer must be the one a
    plain point-in-polygon over every micro-grid gives."""
    with engine.connect() as conn:
        micro = (
            conn.execute(sa.text("SELECT code FROM grid WHERE level = 'micro' AND valid_to IS NULL ORDER BY code"))
            .scalars()
            .all()
        )
    rows = [f"{code},grid_worker,网格员{i},1391234{i:04d}" for i, code in enumerate(micro) if code != M1]
    (city / "more.csv").write_text("grid,role,name,phone\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert cli("people", "import", city / "more.csv").exit_code == 0
    with engine.begin() as conn:
        got = {r["code"]: r["phone"] for r in label_store.labels(conn, None, kinds=("b",))}
        want = dict(
            conn.execute(
                sa.text(
                    "SELECT b.code, (SELECT pe.phone FROM grid g JOIN grid_post p ON p.grid_code = g.code "
                    "AND p.valid_to IS NULL AND p.role = 'grid_worker' JOIN person pe ON pe.id = p.person_id "
                    "WHERE g.level = 'micro' AND g.valid_to IS NULL AND ST_Covers(g.geom, ST_PointOnSurface(b.geom)) "
                    "ORDER BY p.id LIMIT 1) FROM building b WHERE b.valid_to IS NULL"
                )
            ).all()
        )
    assert got == want and len(got) >= 16 and len(set(got.values())) >= 16 and None not in got.values()


def test_a_scanned_report_runs_the_event_centres_loop(city, client, engine, bearer):
    """A report from the wall files into the event centre as the ``qr`` channel with the grid known:
    with a public matter it is filed and dispatched to the grid's worker at once with its deadline;
    without one it waits in the dispatchers' queue; a matter off the public list is refused."""
    link = _link(engine, M1)
    page = client.get(link)
    assert 'value="01001"' in page.text and "道路暴露垃圾" in page.text  # the catalogue's public list
    report = link.replace("?", "/report?")
    private = client.post(report, data={"text": "路灯坏了", "matter": "01002"})  # in the catalogue, not public
    assert private.status_code == 400 and "01002" in private.json["error"]["message"]
    assert _reports(engine) == 0
    filed = client.post(report, data={"text": "楼下垃圾没人清", "matter": "01001", "phone": "13900000000"})
    assert filed.status_code == 201, filed.json
    assert filed.json["state"] == "dispatched" and filed.json["matter"] == "01001"
    assert filed.json["due_at"] and filed.json["time_zone"] == "Asia/Shanghai" and filed.json["reporter_key"]
    unsaid = client.post(report, data={"text": "不知道找谁"})
    assert unsaid.status_code == 400 and "choose what the report is about" in unsaid.json["error"]["message"]
    waiting = client.post(report, data={"text": "楼上邻居天天半夜吵", "matter": "06001"})  # not auto-dispatched
    assert waiting.status_code == 201 and waiting.json["state"] == "filed" and waiting.json["due_at"]
    case = client.get(f"/api/v1/events/{filed.json['id']}", headers=bearer("dispatcher")).json
    assert case["source"] == "qr" and case["assignee"] == f"grid:{M1}" and case["micro_code"] == M1
    assert [e["action"] for e in case["timeline"]] == ["report", "file", "dispatch"]
    assert case["contacts"][0]["phone"] == "13900000000"
    queue = client.get("/api/v1/events", query_string={"grid": COMMUNITY}, headers=bearer("dispatcher")).json
    states = {c["id"]: c["state"] for c in queue["cases"]}
    assert states == {filed.json["id"]: "dispatched", waiting.json["id"]: "filed"}
