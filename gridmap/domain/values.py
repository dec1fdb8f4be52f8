"""The rules every input value meets, wherever it comes from (HTTP through :mod:`gridmap.web.params`,
edit files through :mod:`gridmap.services.boundary_edits`): text of bounded length, whole numbers that
are whole and in range, finite numbers, grid codes of their level's format, geometries of bounded size.

Limits (documented in the README, "Limits"):

- names (grids, people) at most :data:`NAME_MAX` characters, free text (reasons, notes, report
  texts) at most :data:`TEXT_MAX`;
- households and population 0..:data:`COUNT_MAX`;
- a geometry at most :data:`MAX_VERTICES` vertices, an edit at most :data:`EDIT_VERTICES` in all
  (a 5,000-vertex zigzag outline takes about 3 s to check; checks grow faster than the vertices);
- coordinates finite numbers of at most 180 in absolute value.

Every refusal is an :class:`InputError` (400) or :class:`PayloadTooLarge` (413) naming the field and
showing at most :data:`SHOWN` characters of the value.
"""

from __future__ import annotations

import math
import re

from ..errors import InputError, PayloadTooLarge
from .levels import ALL_LEVELS, SPECIAL, SPECIAL_KINDS

NAME_MAX = 100
TEXT_MAX = 2000
COUNT_MAX = 10_000_000
MAX_VERTICES = 5_000
EDIT_VERTICES = 20_000
SHOWN = 60
#: Code formats: national codes for district, street, community; then the parent's code plus digits.
CODE_FORMATS = {
    "district": r"\d{6}",
    "street": r"\d{9}",
    "community": r"\d{12}",
    "courtyard": r"\d{15}",
    "micro": r"\d{17}",
    "special": r"\d{12}S\d{2}",
}
ANY_CODE = re.compile("|".join(f"(?:{p})" for p in CODE_FORMATS.values()))


def shown(value) -> str:
    """``repr(value)`` cut to :data:`SHOWN` characters, for error messages (never echo a whole input)."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def text(value, field: str, *, max_len: int = NAME_MAX, required: bool = True) -> str | None:
    """``value`` as stripped text of 1..``max_len`` characters (None when absent and not ``required``)."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InputError(f"{field} must be text, got {shown(value)}")
    value = value.strip()
    if not value:
        if not required:
            return None
        raise InputError(f"{field} must not be empty")
    if len(value) > max_len:
        raise InputError(f"{field} is {len(value)} characters long; at most {max_len} are allowed")
    return value


def whole(value, field: str, lo: int, hi: int) -> int:
    """``value`` as a whole number in ``lo..hi``: a JSON integer (not a boolean, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field} must be a whole number, got {shown(value)}")
    if not lo <= value <= hi:
        raise InputError(f"{field} must be between {lo} and {hi}, got {shown(value)}")
    return value


def count(value, field: str) -> int:
    """Households or population: a whole number in 0..:data:`COUNT_MAX`."""
    return whole(value, field, 0, COUNT_MAX)


def number(value, field: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite number in ``lo..hi`` (JSON integer or float; not a boolean or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{field} must be a number, got {shown(value)}")
    try:
        x = float(value)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x) or not lo <= x <= hi:
        raise InputError(f"{field} must be a finite number between {lo:g} and {hi:g}, got {shown(value)}")
    return x


def code(value, field: str, level: str | None = None, parent: str | None = None) -> str:
    """A grid code in the format of ``level`` (any level's when None), under ``parent`` when given."""
    if not isinstance(value, str):
        raise InputError(f"{field} must be a grid code (text), got {shown(value)}")
    pattern = CODE_FORMATS.get(level) if level else None
    ok = re.fullmatch(pattern, value) if pattern else ANY_CODE.fullmatch(value)
    if not ok:
        what = f"a {level} code ({CODE_FORMATS[level]})" if pattern else "a grid code"
        raise InputError(f"{field} must be {what}, got {shown(value)}")
    if parent is not None and not value.startswith(parent):
        raise InputError(f"{field} {value} must start with its parent's code {parent}")
    return value


def kind(value, field: str, level: str) -> str | None:
    """A special grid's kind (one of :data:`SPECIAL_KINDS`); grids of other levels have none."""
    if level != SPECIAL:
        if value is not None:
            raise InputError(f"{field}: only special grids have a kind; a {level} has none")
        return None
    if value not in SPECIAL_KINDS:
        raise InputError(f"{field} must be one of {', '.join(SPECIAL_KINDS)}, got {shown(value)}")
    return value


def level(value, field: str = "level") -> str:
    if value not in ALL_LEVELS:
        raise InputError(f"{field} must be one of {', '.join(ALL_LEVELS)}, got {shown(value)}")
    return value


def vertices(geometry, field: str, limit: int = MAX_VERTICES) -> int:
    """Vertices of a GeoJSON geometry object, counted before any parsing; every coordinate must be a
    finite number of at most 180 in absolute value.  PayloadTooLarge (413) over ``limit``."""
    if not isinstance(geometry, dict):
        raise InputError(f"{field} must be a GeoJSON geometry object, got {shown(geometry)}")
    if geometry.get("type") == "GeometryCollection":
        raise InputError(f"{field}: a GeometryCollection is not a grid outline")
    found = [0]
    _positions(geometry.get("coordinates"), field, 0, found, limit)
    return found[0]


def _positions(value, field: str, depth: int, found: list, limit: int) -> None:
    """Count positions into ``found[0]``, stopping as soon as there are more than ``limit``."""
    if not isinstance(value, (list, tuple)) or depth > 3:
        raise InputError(f"{field}: coordinates must be nested lists of [lon, lat] positions")
    if value and not isinstance(value[0], (list, tuple)):  # a position
        if len(value) not in (2, 3):
            raise InputError(f"{field}: a position is [lon, lat], got {shown(value)}")
        for x in value:
            number(x, f"{field} coordinate", -180, 180)
        found[0] += 1
        if found[0] > limit:
            raise PayloadTooLarge(f"{field} has more than {limit} vertices; at most {limit} are allowed")
        return
    for v in value:
        _positions(v, field, depth + 1, found, limit)
