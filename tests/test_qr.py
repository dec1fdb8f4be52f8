"""QR codes: the signature (good, forged, copied to another grid, retired key), and the printed
codes read back with a real decoder (zxing-cpp) from a PNG and from the PDF pages rendered by pdfium."""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from gridmap.domain import qr
from gridmap.errors import InputError
from gridmap.services import qr_sheets

SECRET = b"s" * 32
BASE = "https://wg.example.cn"


def test_good_signature_verifies():
    t = qr.Target("g", "41010200100100101")
    url = qr.url(t, SECRET, BASE)
    assert url == f"{BASE}/g/41010200100100101?s={qr.sign(t, SECRET)}"
    target, sig = qr.parse("41010200100100101", {"s": url.rsplit("=", 1)[1]})
    assert qr.verify(target, sig, {1: SECRET}) == t


def test_forged_signature_is_refused():
    target, sig = qr.parse("41010200100100101", {"s": "AAAAAAAAAAAA"})
    with pytest.raises(qr.BadSignature, match="forged or copied") as err:
        qr.verify(target, sig, {1: SECRET})
    assert err.value.status == 403


def test_signature_copied_to_another_grid_is_refused():
    sig = qr.sign(qr.Target("g", "41010200100100101"), SECRET)
    target, sig = qr.parse("41010200100100102", {"s": sig})
    with pytest.raises(qr.BadSignature, match="does not belong to grid 41010200100100102"):
        qr.verify(target, sig, {1: SECRET})
    # nor does a grid's signature pass for a building of the same code, or under another server's key
    with pytest.raises(qr.BadSignature):
        qr.verify(
            qr.Target("b", "41010200100100101"), qr.sign(qr.Target("g", "41010200100100101"), SECRET), {1: SECRET}
        )
    with pytest.raises(qr.BadSignature):
        qr.verify(qr.Target("g", "41010200100100101"), sig, {1: b"t" * 32})


def test_key_versions_and_kinds_travel_in_the_url():
    t = qr.Target("u", qr.unit_code("4101020010010B003", 2), version=2)
    url = qr.url(t, b"new" * 11, BASE)
    assert url.endswith("&k=u&v=2") and "/g/4101020010010B003-U2?s=" in url
    sig = url.split("s=")[1].split("&")[0]
    target, sig = qr.parse("4101020010010B003-U2", {"s": sig, "k": "u", "v": "2"})
    assert qr.verify(target, sig, {1: SECRET, 2: b"new" * 11}) == t
    with pytest.raises(qr.BadSignature, match="retired"):
        qr.verify(target, sig, {1: SECRET})
    assert qr.split_unit(target.code) == ("4101020010010B003", 2)


@pytest.mark.parametrize(
    "code, args, message",
    [
        ("41010200100100101", {}, "no signature"),
        ("41010200100100101", {"s": "short"}, "malformed"),
        ("41010200100100101", {"s": "AAAAAAAAAAAA", "k": "z"}, "unknown QR kind"),
        ("41010200100100101", {"s": "AAAAAAAAAAAA", "v": "x"}, "must be a number"),
        ("../../etc", {"s": "AAAAAAAAAAAA"}, "not a grid, building or unit code"),
    ],
)
def test_malformed_links_get_a_clear_message(code, args, message):
    with pytest.raises(InputError, match=message):
        qr.parse(code, args)


def test_png_and_svg_hold_the_url():
    url = qr.url(qr.Target("g", "41010200100100101"), SECRET, BASE)
    png = qr_sheets.code_image(url, "png")
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))] == [url]
    svg = qr_sheets.code_image(url, "svg").decode()
    assert svg.startswith("<?xml") and "<path" in svg
    with pytest.raises(InputError, match="svg or png"):
        qr_sheets.code_image(url, "gif")


def _labels(n):
    out = []
    for i in range(n):
        code = f"4101020010010{i:04d}"
        out.append(
            qr_sheets.Label(
                qr.url(qr.Target("g", code), SECRET, BASE),
                f"锦艺小区第{i + 1}网格",
                code,
                "微网格",
                "138****5678" if i % 2 else None,
            )
        )
    return out


def test_pdf_sheet_holds_every_code_and_each_decodes_to_its_url(tmp_path):
    labels = _labels(qr_sheets.PER_PAGE + 5)
    path = tmp_path / "sheet.pdf"
    assert qr_sheets.write_sheets([(path, labels, "测试")]) == [(str(path), len(labels))]
    doc = pdfium.PdfDocument(str(path))
    assert len(doc) == 2
    decoded = []
    for page in doc:
        text = page.get_textpage().get_text_range()
        assert "扫码上报" in text and "网格员 138****5678" in text
        decoded += [r.text for r in zxingcpp.read_barcodes(page.render(scale=2).to_pil())]
    assert sorted(decoded) == sorted(label.url for label in labels)


def test_sheets_in_parallel_write_one_file_each(tmp_path):
    jobs = [(tmp_path / f"c{i}.pdf", _labels(3 + i), f"c{i}") for i in range(3)]
    done = qr_sheets.write_sheets(jobs, workers=2)
    assert done == [(str(tmp_path / f"c{i}.pdf"), 3 + i) for i in range(3)]
    assert all(len(pdfium.PdfDocument(str(p))) == 1 for p, _, _ in jobs)
    with pytest.raises(InputError, match="no codes"):
        qr_sheets.sheet_pdf([])
