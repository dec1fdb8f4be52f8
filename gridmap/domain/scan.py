"""The checks on a report a resident files from a scanned QR code (pure: no I/O).

Limits that a street office would set: a report is 2–500 characters of text; a photo is a JPEG,
PNG, WebP or HEIC of at most ``MAX_PHOTO`` bytes, recognised by its first bytes (a browser's
content type is whatever the file name says); a phone position must be a place in China and
is used only when it lies within ``NEAR_M`` of the grid (else the grid's own point is used and
the report says so), so a code copied far away cannot place a report elsewhere.
"""

from __future__ import annotations

import math

from ..errors import InputError, PayloadTooLarge
from ..geo import CHINA_BOUNDS
from .values import shown

MIN_TEXT, MAX_TEXT = 2, 500
MAX_PHOTO = 5 * 1024 * 1024
NEAR_M = 300.0
#: Reports through QR codes allowed per hour from one phone, and on one grid.
PER_CLIENT_HOUR = 5
PER_GRID_HOUR = 30
#: Whole phone numbers a phone may ask for per hour from the call buttons.
CALLS_PER_HOUR = 20
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)


def check_text(text: str | None) -> str:
    """The report's text, stripped; InputError when it is missing, too short or too long."""
    text = (text or "").strip()
    if not text:
        raise InputError("请写下要反映的问题 / please describe the problem")
    if len(text) < MIN_TEXT:
        raise InputError(f"问题描述太短 / the description needs at least {MIN_TEXT} characters")
    if len(text) > MAX_TEXT:
        raise InputError(f"问题描述太长 / the description may have at most {MAX_TEXT} characters, it has {len(text)}")
    return text


def check_matter(value: str | None, public) -> str | None:
    """The matter chosen on the page: one of ``public`` (the catalogue's public codes), required
    when there are any; None only when the catalogue offers residents no choice."""
    matter = (value or "").strip() or None
    if matter is None:
        if public:
            raise InputError("请选择事项 / choose what the report is about from the list")
        return None
    if matter not in public:
        raise InputError(f"事项 {shown(matter)} 不在公开目录中 / {shown(matter)} is not a matter residents may choose")
    return matter


def photo_type(data: bytes) -> tuple[str, str]:
    """(content type, file suffix) of a photo; PayloadTooLarge over ``MAX_PHOTO``, InputError when it
    is not a JPEG, PNG, WebP or HEIC image."""
    if len(data) > MAX_PHOTO:
        raise PayloadTooLarge(
            f"照片太大 / the photo is {len(data) / 1048576:.1f} MB, at most "
            f"{MAX_PHOTO // 1048576} MB: take it again at a lower size"
        )
    for magic, content_type, suffix in _MAGIC:
        if data.startswith(magic):
            return content_type, suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image/heic", "heic"
    raise InputError("照片格式不支持 / the photo must be a JPEG, PNG, WebP or HEIC image")


def check_position(lon: str | None, lat: str | None) -> tuple[float, float] | None:
    """A phone's WGS84 position, or None when the resident did not share it; InputError when only
    one coordinate is given or it is not a number in China."""
    if not lon and not lat:
        return None
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise InputError("位置无效 / the position must be two numbers (lon, lat)") from None
    lo_x, lo_y, hi_x, hi_y = CHINA_BOUNDS
    if not (math.isfinite(x) and math.isfinite(y) and lo_x <= x <= hi_x and lo_y <= y <= hi_y):
        raise InputError("位置不在中国境内 / the position is not in China")
    return x, y


def limit_message(from_client: int, on_grid: int) -> str | None:
    """Why one more report must wait (rate limits), or None when it may go in."""
    if from_client >= PER_CLIENT_HOUR:
        return f"提交太频繁 / at most {PER_CLIENT_HOUR} reports an hour from one phone: please try again later"
    if on_grid >= PER_GRID_HOUR:
        return f"本网格上报太多 / this grid has had {PER_GRID_HOUR} reports this hour: please call the grid worker"
    return None
