"""QR codes on paper: A4 sheets of labels ready to post (PDF), and one code as SVG or PNG.

Sheets are drawn with ``reportlab`` and its built-in CID font STSong-Light, so Chinese text needs
no font file (PDF viewers bring the font, as they do for any Adobe-Asian-fonts document).  Speed is
the point of two choices, measured in ``scripts/bench_people.py``:

* sheet codes are encoded by ``zxing-cpp`` (a maintained C++ library, the decoder the tests use):
  0.2 ms a code with its best mask, where pure-Python ``segno`` took 0.7 ms with one fixed mask —
  most of a sheet's time.  Single SVG/PNG codes stay with ``segno`` (its writers are the point there);
* each code is one inline 1-bit image mask (``BI … /IM true … EI``, one bit a module, hex-encoded,
  no interpolation) drawn under one ``cm`` — sharp at any size, as a vector path of module
  rectangles is, but made by ``numpy.packbits`` rather than a Python loop over runs of modules.

Several sheets are written in parallel, one process per file.
"""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import segno
import zxingcpp
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from ..errors import InputError

CJK = "STSong-Light"
LATIN = "Helvetica"
COLS, ROWS = 3, 4
PER_PAGE = COLS * ROWS
MARGIN = 18.0
QR_SIZE = 118.0  # points: 42 mm, readable by a phone at arm's length
ERROR_LEVEL = "m"  # 15 % of the code may be dirty or torn, as stickers on a stairwell wall are
CALL_TO_ACTION = "扫码上报 / scan to report"


@dataclass(frozen=True)
class Label:
    """One sticker: the URL in the code, the place's name and code, what it is, the masked phone."""

    url: str
    title: str
    code: str
    kind_label: str
    phone: str | None = None


def _fonts() -> None:
    if CJK not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK))


def _mask_image(url: str) -> str:
    """The code of ``url`` as a PDF inline image mask of one bit a module (dark = 1), unit square."""
    code = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level=ERROR_LEVEL.upper())
    dark = np.asarray(code.to_image(scale=1, add_quiet_zones=False)) < 128
    n = dark.shape[0]
    bits = np.packbits(dark, axis=1).tobytes().hex()
    return f"BI /W {n} /H {n} /IM true /D [1 0] /I false /F /AHx ID {bits}> EI"


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut (with …) to fit ``width`` points."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _draw_label(c: Canvas, label: Label, x: float, y: float, w: float, h: float) -> None:
    cx = x + w / 2
    top = y + h - 16
    c.setFont(CJK, 11)
    c.drawCentredString(cx, top, CALL_TO_ACTION)
    qx, qy = cx - QR_SIZE / 2, top - 16 - QR_SIZE  # 4+ modules of quiet zone
    c.addLiteral(f"q 0 g {QR_SIZE} 0 0 {QR_SIZE} {qx:.2f} {qy:.2f} cm {_mask_image(label.url)} Q")
    c.setFont(CJK, 10)
    c.drawCentredString(cx, qy - 15, _fit(f"{label.kind_label} {label.title}", CJK, 10, w - 12))
    c.setFont(LATIN, 8)
    c.drawCentredString(cx, qy - 27, label.code)
    if label.phone:
        c.setFont(CJK, 9)
        c.drawCentredString(cx, qy - 39, f"网格员 {label.phone}")


def sheet_pdf(labels: list[Label], title: str = "gridmap QR") -> bytes:
    """A4 pages of ``PER_PAGE`` labels each with dashed cut lines; InputError when there are none."""
    if not labels:
        raise InputError("no codes to print")
    _fonts()
    # binary (zlib only) page streams: reportlab's ASCII85 step is pure Python without its optional C
    # accelerator, a tenth of the time of a sheet, and PDF readers need no 7-bit streams
    a85, rl_config.useA85 = rl_config.useA85, 0
    try:
        return _pages(labels, title)
    finally:
        rl_config.useA85 = a85


def _pages(labels: list[Label], title: str) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, pageCompression=1)
    c.setTitle(title)
    pw, ph = A4
    w, h = (pw - 2 * MARGIN) / COLS, (ph - 2 * MARGIN) / ROWS
    for start in range(0, len(labels), PER_PAGE):
        c.setDash(3, 3)
        c.setLineWidth(0.3)
        c.setStrokeGray(0.6)
        for i in range(1, COLS):
            c.line(MARGIN + i * w, MARGIN, MARGIN + i * w, ph - MARGIN)
        for j in range(1, ROWS):
            c.line(MARGIN, MARGIN + j * h, pw - MARGIN, MARGIN + j * h)
        for k, label in enumerate(labels[start : start + PER_PAGE]):
            col, row = k % COLS, k // COLS
            _draw_label(c, label, MARGIN + col * w, ph - MARGIN - (row + 1) * h, w, h)
        c.showPage()
    c.save()
    return buf.getvalue()


def _write_one(job: tuple[Path, list[Label], str]) -> tuple[str, int]:
    path, labels, title = job
    path.write_bytes(sheet_pdf(labels, title))
    return str(path), len(labels)


def write_sheets(jobs: list[tuple[Path, list[Label], str]], workers: int = 1) -> list[tuple[str, int]]:
    """Write each (path, labels, title) as one PDF, ``workers`` processes at a time; (path, codes) each."""
    if workers <= 1 or len(jobs) <= 1:
        return [_write_one(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (workers * 32))))


def code_image(url: str, fmt: str, scale: int = 8) -> bytes:
    """One code as ``svg`` or ``png`` (best mask, 4-module quiet zone); InputError for another format."""
    if fmt not in ("svg", "png"):
        raise InputError(f"unknown image format {fmt!r}: svg or png")
    buf = io.BytesIO()
    segno.make(url, error=ERROR_LEVEL, micro=False).save(buf, kind=fmt, scale=scale, border=4)
    return buf.getvalue()
