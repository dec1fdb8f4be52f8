"""The people who answer for a grid (网格长, 网格员, 楼栋长, 单元长, 党组织) and the checks on a roster.

Pure: no SQL, no files.  A *post* is one person holding one role at one place: a grid of any level,
a building, or one unit (stairwell) of a building.  Phone numbers are checked with libphonenumber's
rules for China (mobile 1[3-9]x, landlines with their area code) and kept in one canonical form;
ID-card numbers are checked (GB 11643 check digit and birth date) and kept only as a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import phonenumbers

from ..errors import InputError
from . import values
from .values import shown

#: role → (Chinese label, what it is attached to: "grid" (levels listed), "building" or "unit")
ROLES = {
    "grid_leader": ("网格长", "grid"),
    "grid_worker": ("网格员", "grid"),
    "building_lead": ("楼栋长", "building"),
    "unit_lead": ("单元长", "unit"),
    "party_secretary": ("党组织书记", "grid"),
    "party_member": ("党员", "grid"),
    "volunteer": ("志愿者", "grid"),
}
LABELS = {role: label for role, (label, _) in ROLES.items()}
#: Grid levels a grid-attached role may hold; grid workers serve the smallest grids.
ROLE_LEVELS = {"grid_worker": ("micro", "special")}
#: Roles residents see on a grid's public page, in this order.
PUBLIC_ORDER = ("grid_worker", "grid_leader", "building_lead", "unit_lead", "party_secretary", "volunteer")
#: Names a street office's export uses for a role (Chinese labels and common variants).
ROLE_ALIASES = {
    **{label: role for role, label in LABELS.items()},
    **{role: role for role in ROLES},
    "专职网格员": "grid_worker",
    "兼职网格员": "grid_worker",
    "微网格员": "grid_worker",
    "楼长": "building_lead",
    "党支部书记": "party_secretary",
    "支部书记": "party_secretary",
    "书记": "party_secretary",
    "党小组长": "party_secretary",
}
ORG_KINDS = {"committee": "党委", "general_branch": "党总支", "branch": "党支部", "group": "党小组"}
#: Column names of a roster file → canonical names (the street office's Chinese headers included).
COLUMN_ALIASES = {
    "网格编码": "grid",
    "网格代码": "grid",
    "网格": "grid",
    "grid_code": "grid",
    "楼栋编码": "building",
    "楼栋": "building",
    "building_code": "building",
    "单元": "unit",
    "单元号": "unit",
    "职务": "role",
    "角色": "role",
    "岗位": "role",
    "姓名": "name",
    "电话": "phone",
    "手机": "phone",
    "手机号": "phone",
    "联系电话": "phone",
    "身份证号": "id_card",
    "身份证号码": "id_card",
    "身份证": "id_card",
    "党组织": "org",
    "党组织编码": "org",
    "org_code": "org",
    "任职日期": "valid_from",
    "起始日期": "valid_from",
}
_EXTENSION = re.compile(r"\s*(?:转|ext\.?|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def check_role(value: str) -> str:
    """The canonical role for ``value`` (an English name or a Chinese label); InputError naming the roles."""
    role = ROLE_ALIASES.get(str(value).strip())
    if role is None:
        raise InputError(f"unknown role {shown(value)}: one of " + ", ".join(f"{r} ({LABELS[r]})" for r in ROLES))
    return role


def normalise_phone(value: str) -> str:
    """A Chinese mobile (``13812345678``) or landline (``0371-67881234``, ``…-801`` extension) number
    in canonical form; InputError saying why ``value`` is not one."""
    text = str(value).strip()
    ext = _EXTENSION.search(text)
    main = text[: ext.start()] if ext else text
    try:
        number = phonenumbers.parse(main, "CN")
    except phonenumbers.NumberParseException:
        raise InputError(f"{shown(value)} is not a phone number") from None
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        raise InputError(f"{shown(value)} is not a Chinese mobile or landline number (landlines need their area code)")
    national = str(number.national_number)
    if phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE,):
        return national
    area_len = 2 if national[0] in "12" else 3  # 010, 02x; other area codes have 3 digits after the 0
    out = f"0{national[:area_len]}-{national[area_len:]}"
    return f"{out}-{ext.group(1)}" if ext else out


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``; ``0371-67881234`` → ``0371-****1234`` (the area code stays)."""
    if not phone:
        return phone
    if "-" in phone:
        area, local = phone.split("-", 2)[:2]
        return f"{area}-{'*' * (len(local) - 4)}{local[-4:]}"
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def tel_uri(phone: str) -> str:
    """An RFC 3966 ``tel:`` URI a phone dials: ``0371-67881234-801`` → ``tel:037167881234,801`` (the
    comma pauses before the extension)."""
    parts = phone.split("-")
    if len(parts) == 3:
        return f"tel:{parts[0]}{parts[1]},{parts[2]}"
    return "tel:" + "".join(parts)


def mask_name(name: str | None) -> str | None:
    """What the public page shows of a name: ``张伟`` → ``张*``, ``王小明`` → ``王*明``, ``欧阳娜娜`` → ``欧**娜``."""
    if not name or len(name) < 2:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def check_id_card(value: str) -> str:
    """An 18-character resident ID number, upper-case; InputError when its length, birth date or
    check digit (GB 11643) is wrong."""
    text = str(value).strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", text):
        raise InputError(f"ID-card number {shown(mask_id_card(text))} must be 17 digits and a digit or X")
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise InputError(f"ID-card number {shown(mask_id_card(text))} has no valid birth date") from None
    if born.year < 1900 or born > date.today():
        raise InputError(f"ID-card number {shown(mask_id_card(text))} has an impossible birth date")
    expected = _ID_CHECK[sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS, strict=True)) % 11]
    if text[17] != expected:
        raise InputError(f"ID-card number {shown(mask_id_card(text))} fails its check digit")
    return text


def mask_id_card(value: str) -> str:
    """The first 6 (the issuing region) and the last 4 characters; what an error message may show."""
    return value[:6] + "*" * max(len(value) - 10, 0) + value[-4:] if len(value) > 10 else "*" * len(value)


def hash_id_card(value: str, key: bytes) -> str:
    """What the database keeps of an ID-card number: HMAC-SHA256 under the server's secret key.

    Keyed, not a per-row random salt: the same person must hash the same across imports (to find
    duplicates), and an ID number has too few possibilities (~10^10) for an unkeyed hash to hide it.
    """
    return "h1:" + hmac.new(key, check_id_card(value).encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Places:
    """What a roster may point at: current grids (code → level), buildings (code → (courtyard code,
    unit numbers)), party organisations (codes)."""

    grids: Mapping[str, str]
    buildings: Mapping[str, tuple[str, Iterable[int]]]
    orgs: frozenset = frozenset()


def _text(row: Mapping, key: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):  # NaN from a spreadsheet
        return None
    text = str(value).strip()
    return text or None


def _whole(text: str | None) -> int | None:
    """A unit number as a spreadsheet may write it (``2``, ``2.0``); None when it is not one."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() and value > 0 else None


def check_row(row: Mapping, places: Places, key: bytes) -> dict:
    """One roster row (canonical column names) checked and cleaned; InputError naming its first problem.

    Building and unit leads get the grid code of their building's courtyard (a post always has a grid).
    """
    name = _text(row, "name")
    if not name:
        raise InputError("missing name")
    name = values.text(name, "name")  # at most values.NAME_MAX characters, as every name
    role = check_role(_text(row, "role") or "")
    kind = ROLES[role][1]
    grid, building, unit = _text(row, "grid"), _text(row, "building"), _text(row, "unit")
    if kind == "grid":
        if not grid:
            raise InputError(f"a {role} ({LABELS[role]}) needs a grid code")
        if grid not in places.grids:
            raise InputError(f"unknown grid {shown(grid)}")
        allowed = ROLE_LEVELS.get(role)
        if allowed and places.grids[grid] not in allowed:
            raise InputError(f"a {role} serves a {' or '.join(allowed)} grid, {grid} is a {places.grids[grid]}")
        building = unit = None
    else:
        if not building:
            raise InputError(f"a {role} ({LABELS[role]}) needs a building code")
        if building not in places.buildings:
            raise InputError(f"unknown building {shown(building)}")
        courtyard, units = places.buildings[building]
        if kind == "unit":
            number = _whole(unit)
            if number is None or number not in set(units):
                raise InputError(f"unknown unit {shown(unit)} of building {building}")
            unit = str(number)
        else:
            unit = None
        grid = courtyard  # a building's post belongs to the courtyard the building stands in
    org = _text(row, "org")
    if org and org not in places.orgs:
        raise InputError(f"unknown party organisation {shown(org)}")
    phone = _text(row, "phone")
    id_card = _text(row, "id_card")
    valid_from = _text(row, "valid_from")
    if valid_from:
        try:
            datetime.fromisoformat(valid_from)
        except ValueError:
            raise InputError(f"valid_from {shown(valid_from)} is not a date such as 2026-03-01") from None
    return {
        "name": name,
        "role": role,
        "grid_code": grid,
        "building_code": building,
        "unit": int(unit) if unit else None,
        "org_code": org,
        "phone": normalise_phone(phone) if phone else None,
        "id_hash": hash_id_card(id_card, key) if id_card else None,
        "valid_from": valid_from,
    }


def post_key(post: Mapping) -> tuple:
    """Who holds which role where: the person (ID hash, else name and phone) and the place."""
    who = post["id_hash"] or (post["name"], post["phone"])
    return (who, post["role"], post["grid_code"], post["building_code"], post["unit"])


def check_roster(rows: Iterable[Mapping], places: Places, key: bytes, existing: Iterable[tuple] = ()):
    """Every row checked: returns (clean posts, problems); each problem is ``{"row", "code", "problem"}``
    with rows numbered from 1.  A post repeated in the file or already current is a duplicate."""
    seen: dict[tuple, int] = {k: 0 for k in existing}
    posts, problems = [], []
    for i, row in enumerate(rows, start=1):
        code = _text(row, "grid") or _text(row, "building")
        try:
            post = check_row(row, places, key)
        except InputError as exc:
            problems.append({"row": i, "code": code, "problem": exc.message})
            continue
        k = post_key(post)
        if k in seen:
            where = f"row {seen[k]}" if seen[k] else "a current post"
            problems.append(
                {"row": i, "code": code, "problem": f"duplicate: {post['name']} as {post['role']} here repeats {where}"}
            )
            continue
        seen[k] = i
        posts.append(post)
    return posts, problems


def canonical_columns(columns: Iterable[str]) -> dict[str, str]:
    """Renames for a roster file's header (Chinese or English) to the canonical column names."""
    return {c: COLUMN_ALIASES.get(str(c).strip(), str(c).strip()) for c in columns}
