"""Checking a matter catalogue: the TOML's tables and the CSV's rows into a :class:`Catalogue`, every
problem named ``file:line: key: why`` and all of them reported at once.  Pure: ``services/matters.py``
reads the files and hands over the parsed TOML, its text (for line numbers) and the CSV's rows."""

from __future__ import annotations

import re

from ...errors import InputError
from .catalogue import (
    CSV_COLUMNS,
    DATATYPES,
    GRID_KIND,
    LEVELS_UP,
    VERIFY,
    Attribute,
    Catalogue,
    Deadline,
    Defaults,
    Department,
    Matter,
)

_REQUIRED = ("code", "name", "category", "auto", "level", "deadline")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_HOURS = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_TRUE, _FALSE = ("true", "yes", "1", "是", "y"), ("false", "no", "0", "否", "n", "")


class _Problems:
    """Collects ``file:line: key: why`` problems; ``raise_any`` raises one InputError for all."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, where: str, key: str, why: str) -> None:
        self.items.append(f"{where}: {key}: {why}")

    def raise_any(self) -> None:
        if self.items:
            more = f" (and {len(self.items) - 1} more problems)" if len(self.items) > 1 else ""
            raise InputError(self.items[0] + more, detail=list(self.items))


#: The catalogue file's top-level keys.
TOP_KEYS = ("defaults", "levels", "departments", "attribute", "matter", "matters_csv", "public")


def _toml_lines(text: str) -> dict[tuple, int]:
    """Line numbers of tables and keys in TOML text: tomllib keeps none, so scan the lines.

    Keys are ``(table, …, key)``; array-of-tables entries get their index (``("matter", 3)``).
    """
    where: dict[tuple, int] = {}
    table: tuple = ()
    counts: dict[tuple, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[["):
            name = tuple(p.strip().strip('"') for p in line.strip("[] ").split("."))
            counts[name] = counts.get(name, -1) + 1
            table = name + (counts[name],)
            where[table] = n
        elif line.startswith("["):
            table = tuple(p.strip().strip('"') for p in line.split("]")[0].strip("[ ").split("."))
            where[table] = n
        elif "=" in line and not line.startswith("#"):
            key = tuple(p.strip().strip('"') for p in line.split("=", 1)[0].split("."))
            where.setdefault(table + key, n)
    return where


def _line_of(lines: dict[tuple, int], path: tuple) -> int:
    for i in range(len(path), 0, -1):
        if path[:i] in lines:
            return lines[path[:i]]
    return 1


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is not yes/no (use true or false)")


def _number(value, *, minimum: float = 0.0) -> float:
    try:
        out = float("nan") if isinstance(value, bool) else float(value)  # True is not 1 here
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if not out > minimum:  # also refuses NaN
        raise ValueError(f"{value!r} must be a number > {minimum:g}")
    return out


def _defaults(data: dict, where, problems: _Problems) -> Defaults:
    """The ``[defaults]`` and ``[levels]`` tables; problems for bad or unknown keys."""
    base = Defaults()
    got = dict(data.get("defaults", {}))
    known = ("duplicate_radius_m", "duplicate_window_h", "warn_ratio", "rating_days", "verify_radius_m", "work_hours")
    values: dict = {}
    for key, value in got.items():
        at = where(("defaults", key))
        try:
            if key not in known:
                raise ValueError(f"unknown key (allowed: {', '.join(known)})")
            if key == "work_hours":
                values[key] = _work_hours(value)
            elif key == "rating_days":
                values[key] = int(_number(value))
            elif key == "warn_ratio":
                values[key] = _number(value)
                if values[key] >= 1:
                    raise ValueError(f"{value!r} must be below 1 (a share of the handling time)")
            else:
                values[key] = _number(value)
        except ValueError as exc:
            problems.add(at, f"defaults.{key}", str(exc))
    kinds = dict(data.get("levels", {}))
    for level in kinds:
        if level not in LEVELS_UP:
            problems.add(
                where(("levels", level)), f"levels.{level}", f"unknown level (choose from {', '.join(LEVELS_UP)})"
            )
    for level in LEVELS_UP:
        if level not in kinds:
            problems.add(where(("levels",)), f"levels.{level}", "missing: every level needs a default department kind")
    return Defaults(**{**base.__dict__, **values, "level_kinds": kinds})


def _work_hours(value) -> tuple[tuple[int, int], ...]:
    """``["09:00-12:00", "13:00-18:00"]`` → minute pairs, ascending and not overlapping."""
    if not isinstance(value, list) or not value:
        raise ValueError('must be a list like ["09:00-12:00", "13:00-18:00"]')
    out = []
    for item in value:
        m = _HOURS.fullmatch(str(item))
        if not m:
            raise ValueError(f"{item!r} is not a period like 09:00-12:00")
        h1, m1, h2, m2 = map(int, m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if not (0 <= start < end <= 24 * 60) or (out and start < out[-1][1]):
            raise ValueError(f"{item!r}: periods must be within a day, ascending and not overlapping")
        out.append((start, end))
    return tuple(out)


def _departments(data: dict, where, problems: _Problems) -> dict[str, Department]:
    out = {}
    for kind, entry in dict(data.get("departments", {})).items():
        at = where(("departments", kind))
        if kind == GRID_KIND or not _CODE.fullmatch(kind):
            problems.add(at, f"departments.{kind}", "kind must be letters/digits and not 'grid' (reserved)")
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.add(at, f"departments.{kind}.name", "missing: a department kind needs a name")
            continue
        titles = {k: v for k, v in entry.items() if k != "name"}
        for level, title in titles.items():
            if level not in LEVELS_UP[2:]:
                why = "unknown key (allowed: name, community, street, district)"
            elif not isinstance(title, str):
                why = f"must be the department's title at {level} level, a string"
            else:
                continue
            problems.add(where(("departments", kind, level)), f"departments.{kind}.{level}", why)
        out[kind] = Department(kind, entry["name"], titles)
    return out


def _attributes(data: dict, where, problems: _Problems) -> tuple[Attribute, ...]:
    out = []
    for i, entry in enumerate(data.get("attribute", [])):
        at, key = where(("attribute", i)), f"attribute[{i}]"
        try:
            code, datatype = str(entry["code"]), str(entry.get("datatype", "string"))
            if datatype not in DATATYPES:
                raise ValueError(f"datatype {datatype!r} unknown (choose from {', '.join(DATATYPES)})")
            values = tuple((str(v["key"]), str(v["name"])) for v in entry.get("values", []))
            if datatype.endswith("list") and not values:
                raise ValueError(f"a {datatype} needs values = [{{key = ..., name = ...}}, ...]")
            out.append(
                Attribute(
                    code,
                    datatype,
                    _flag(entry.get("required", False)),
                    str(entry.get("description", code)),
                    int(entry.get("order", i + 1)),
                    values,
                    tuple(entry.get("categories", ())),
                )
            )
        except KeyError as exc:
            problems.add(at, f"{key}.{exc.args[0]}", "missing")
        except (TypeError, ValueError) as exc:
            problems.add(at, key, str(exc))
    return tuple(out)


def _kind_ok(kind, level: str, departments: dict) -> bool:
    if kind == GRID_KIND:
        return level in ("micro", "courtyard")
    return isinstance(kind, str) and kind in departments and level in departments[kind].titles


def _matter(entry: dict, at: str, defaults: Defaults, departments: dict, problems: _Problems) -> Matter | None:
    """One matter from a TOML table or a CSV row (strings); None after adding its problems."""
    before = len(problems.items)
    for key in _REQUIRED:
        if str(entry.get(key, "")).strip() == "":
            problems.add(at, key, "missing")
    unknown = sorted(set(entry) - set(CSV_COLUMNS))
    for key in unknown:
        problems.add(at, key, f"unknown key (allowed: {', '.join(CSV_COLUMNS)})")
    if len(problems.items) > before:
        return None
    code = str(entry["code"]).strip()
    if not _CODE.fullmatch(code):
        problems.add(at, "code", f"{code!r}: letters, digits, '.', '_' or '-', at most 32")
    level = str(entry["level"]).strip()
    if level not in LEVELS_UP:
        problems.add(at, "level", f"{level!r} unknown (choose from {', '.join(LEVELS_UP)})")
        return None
    parsed = {}
    for key, parse in (
        ("auto", _flag),
        ("deadline", Deadline.parse),
        ("duplicate_radius_m", _number),
        ("duplicate_window_h", _number),
    ):
        value = entry.get(key, "")
        if str(value).strip() == "":
            parsed[key] = getattr(defaults, key)
            continue
        try:
            parsed[key] = parse(value)
        except ValueError as exc:
            problems.add(at, key, str(exc))
    verify = str(entry.get("verify") or "photo").strip()
    if verify not in VERIFY:
        problems.add(at, "verify", f"{verify!r} unknown (choose from {', '.join(VERIFY)})")
    handlers = {}
    for lv in LEVELS_UP[LEVELS_UP.index(level) :]:
        kind = str(entry.get(lv) or defaults.level_kinds.get(lv, "")).strip()
        if kind == GRID_KIND and lv not in ("micro", "courtyard"):
            problems.add(at, lv, "grid workers handle only micro and courtyard levels")
        elif kind != GRID_KIND and (kind not in departments or lv not in departments[kind].titles):
            problems.add(at, lv, f"no department kind {kind!r} at level {lv} (see [departments] in the TOML)")
        handlers[lv] = kind
    if len(problems.items) > before:
        return None
    return Matter(
        code,
        str(entry["name"]).strip(),
        str(entry["category"]).strip(),
        parsed["auto"],
        level,
        parsed["deadline"],
        handlers,
        parsed["duplicate_radius_m"],
        parsed["duplicate_window_h"],
        verify,
        str(entry.get("description") or "").strip(),
        at,
    )


def check(
    data: dict,
    toml_text: str,
    *,
    source: str = "matters.toml",
    csv_columns: list[str] | None = None,
    csv_rows: list[tuple[dict, int]] | None = None,
    csv_source: str = "matters.csv",
) -> Catalogue:
    """The catalogue from parsed TOML ``data`` (its ``toml_text`` gives the line numbers) and the
    rows of an optional CSV (each with its line number; ``csv_columns`` its header).

    Raises InputError: its message is the first ``file:line: key: why``, ``detail`` lists all.
    """
    problems = _Problems()
    lines = _toml_lines(toml_text)

    def where(path: tuple) -> str:
        return f"{source}:{_line_of(lines, path)}"

    for key in data:
        if key not in TOP_KEYS:
            problems.add(where((key,)), key, f"unknown key (allowed: {', '.join(TOP_KEYS)})")
    defaults = _defaults(data, where, problems)
    departments = _departments(data, where, problems)
    for level, kind in defaults.level_kinds.items():
        if level in LEVELS_UP and not _kind_ok(kind, level, departments):
            problems.add(
                where(("levels", level)),
                f"levels.{level}",
                f"{kind!r} is not a department kind at {level} "
                "level (see [departments]; 'grid' only at micro and courtyard)",
            )
    attributes = _attributes(data, where, problems)
    entries = [(dict(m), where(("matter", i))) for i, m in enumerate(data.get("matter", []))]
    for column in csv_columns or ():
        if column not in CSV_COLUMNS:
            problems.add(f"{csv_source}:1", column, f"unknown column (allowed: {', '.join(CSV_COLUMNS)})")
    for row, line in csv_rows or ():
        entries.append(({k: v for k, v in row.items() if k in CSV_COLUMNS and v is not None}, f"{csv_source}:{line}"))
    matters: dict[str, Matter] = {}
    for entry, at in entries:
        matter = _matter(entry, at, defaults, departments, problems)
        if matter is None:
            continue
        if matter.code in matters:
            problems.add(at, "code", f"{matter.code!r} already defined at {matters[matter.code].line}")
            continue
        matters[matter.code] = matter
    if not entries:
        problems.add(f"{source}:1", "matter", "the catalogue has no matters")
    public = _public(data.get("public", []), where, matters, problems)
    problems.raise_any()
    return Catalogue(matters, departments, defaults, attributes, source, public)


def _public(value, where, matters: dict, problems: _Problems) -> tuple[str, ...]:
    """The ``public`` list: codes of defined matters, each once."""
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        problems.add(where(("public",)), "public", "must be a list of matter codes")
        return ()
    for code in value:
        if code not in matters:
            problems.add(where(("public",)), "public", f"{code!r} is not a matter of the catalogue")
    if len(set(value)) != len(value):
        problems.add(where(("public",)), "public", "a matter is listed twice")
    return tuple(c for c in dict.fromkeys(value) if c in matters)
