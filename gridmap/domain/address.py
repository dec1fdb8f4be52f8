"""Standard addresses: courtyard name + building number + unit, resolved to a building's point.

Reports often carry only an address such as ``二里岗街道宇通花园3号楼2单元``.  The
gazetteer holds every current building as (courtyard, number, units, point) and
tolerates the usual variations: 号楼 / 号 / 栋 / 幢 / 楼, numbers in Chinese
numerals or full-width digits, a missing or present street / community prefix,
spaces.  A courtyard name found in several streets needs the street to decide;
the error says so.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..errors import InputError

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百]+")
_PATTERN = re.compile(
    r"(?P<building>\d+)(?:号楼|号|栋|幢|楼|座)(?:(?P<unit>\d+)单元)?"
    r"(?:(?P<floor>\d+)(?:层|楼|F))?(?:(?P<room>\d+)(?:室|号|户)?)?"
)


def chinese_number(text: str) -> int:
    """'十二' -> 12, '二十三' -> 23, '三' -> 3, '一百零五' -> 105, '一〇五' -> 105."""
    if "十" not in text and "百" not in text:  # digit by digit
        return int("".join(str(_DIGITS[c]) for c in text))
    total = current = 0
    for ch in text:
        if ch == "百":
            total, current = total + (current or 1) * 100, 0
        elif ch == "十":
            total, current = total + (current or 1) * 10, 0
        else:
            current = _DIGITS[ch]
    return total + current


def normalise(text: str) -> str:
    """Full-width to ASCII, no spaces, Chinese numerals before 号/栋/幢/楼/座/单元/层/室/户 as digits."""
    text = unicodedata.normalize("NFKC", text).replace(" ", "").replace("-", "")

    def repl(m):
        following = text[m.end() : m.end() + 2]
        if following[:1] in ("号", "栋", "幢", "楼", "座", "层", "室", "户") or following == "单元":
            return str(chinese_number(m.group(0)))
        return m.group(0)

    return _CN_NUMBER.sub(repl, text)


@dataclass(frozen=True)
class Building:
    code: str
    courtyard_code: str
    number: int
    units: int
    lon: float
    lat: float


@dataclass(frozen=True)
class Resolved:
    address: str
    building: Building
    unit: int | None
    floor: int | None = None  # from "15层" / "15楼", or a room's leading digits ("1502室": 15)
    room: str | None = None


class Gazetteer:
    """Courtyards and their buildings, searchable by name.

    ``courtyards``: rows of (code, name, community name, street name);
    ``buildings``: :class:`Building` objects.
    """

    def __init__(self, courtyards, buildings):
        self.by_name: dict[str, list[tuple[str, str, str]]] = {}
        for code, name, community, street in courtyards:
            self.by_name.setdefault(normalise(name), []).append((code, community or "", street or ""))
        self.names = sorted(self.by_name, key=len, reverse=True)  # longest first
        self.buildings = {(b.courtyard_code, b.number): b for b in buildings}

    def resolve(self, address: str) -> Resolved:
        """The building (and unit) an address names; InputError saying why when it cannot."""
        if not address or not str(address).strip():
            raise InputError("empty address")
        text = normalise(str(address))
        match = None
        for m in _PATTERN.finditer(text):
            match = m
        if match is None:
            raise InputError(f"no building number in {address!r} (expected e.g. 3号楼 / 3栋 / 三幢)")
        head = text[: match.start()]
        name = next((n for n in self.names if head.endswith(n)), None) or next(
            (n for n in self.names if n in head), None
        )
        if name is None:
            raise InputError(f"no known courtyard in {address!r}")
        candidates = self.by_name[name]
        prefix = head[: head.rfind(name)]
        if len(candidates) > 1 and prefix:
            narrowed = [
                c for c in candidates if (c[2] and normalise(c[2]) in prefix) or (c[1] and normalise(c[1]) in prefix)
            ]
            candidates = narrowed or candidates
        if len(candidates) > 1:
            streets = sorted({c[2] for c in candidates})
            raise InputError(
                f"ambiguous address {address!r}: courtyard {name} exists in {', '.join(streets)}; add the street"
            )
        court = candidates[0][0]
        number = int(match.group("building"))
        building = self.buildings.get((court, number))
        if building is None:
            raise InputError(f"{name} has no building {number} ({address!r})")
        unit = int(match.group("unit")) if match.group("unit") else None
        if unit is not None and not 1 <= unit <= building.units:
            raise InputError(f"{name}{number}号楼 has {building.units} units, not {unit} ({address!r})")
        floor, room = floor_and_room(match.group("floor"), match.group("room"))
        return Resolved(str(address), building, unit, floor, room)


def floor_and_room(floor: str | None, room: str | None) -> tuple[int | None, str | None]:
    """A household's floor and room from an address's parts: the floor as written, else the room
    number's leading digits as Chinese flats are numbered (1502: floor 15, flat 02; 301: floor 3)."""
    if floor:
        return int(floor), room
    if room and len(room) >= 3:
        return int(room[:-2]), room
    return None, room
