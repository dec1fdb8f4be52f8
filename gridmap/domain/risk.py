"""Three-colour risk elements (三色管理): the visiting rule, the overdue state and the roll-up of
colours through the grid chain.  Pure: no SQL (``gridmap.store.risk`` fetches and writes).

Elements are people (人), places (地), things (物), events (事), situations (情) and organisations
(组织) marked red (high risk), yellow (medium) or blue (low / ordinary).  Rules come from
``layers/risk.toml`` (see the comments there for every key), read by
:func:`gridmap.services.resources.load_rules` and checked here by :func:`parse_rules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import lazy_loader
import numpy as np

from .levels import ALL_LEVELS, LEVELS, SPECIAL

pd = lazy_loader.load("pandas")

KINDS = ("person", "place", "thing", "event", "situation", "organisation")
KIND_LABELS = {"person": "人", "place": "地", "thing": "物", "event": "事", "situation": "情", "organisation": "组织"}
#: Highest risk first: the order of the roll-up rule.
COLOURS = ("red", "yellow", "blue")
COLOUR_LABELS = {"red": "红", "yellow": "黄", "blue": "蓝"}

_THRESHOLDS = ("red_threshold", "yellow_threshold", "blue_threshold")
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_STYLE_KEYS = {
    "red": {
        "label": str,
        "colour": "hex",
        "fill": "hex",
        "fill_opacity": "unit",
        "radius": "number",
        "weight": "number",
    },
    "overdue": {"label": str, "colour": "hex", "weight": "number", "dash_array": str},
}
_STYLE_KEYS["yellow"] = _STYLE_KEYS["blue"] = _STYLE_KEYS["red"]


@dataclass(frozen=True)
class Rules:
    """The visiting rule, the roll-up thresholds (defaults and per-level overrides) and map styles."""

    visit_days: dict[str, int] = field(default_factory=lambda: {"red": 7, "yellow": 30, "blue": 90})
    red_threshold: int = 1
    yellow_threshold: int = 3
    blue_threshold: int = 1
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    styles: dict[str, dict] = field(default_factory=dict)
    source: str | None = None

    def thresholds(self, level: str) -> tuple[int, int, int]:
        """(red, yellow, blue) thresholds of ``level``, overrides first."""
        own = self.levels.get(level, {})
        return tuple(own.get(k, getattr(self, k)) for k in _THRESHOLDS)

    def to_dict(self) -> dict:
        return {
            "visit_days": dict(self.visit_days),
            "rollup": {**{k: getattr(self, k) for k in _THRESHOLDS}, "levels": self.levels},
            "styles": self.styles,
        }


def parse_rules(data: dict, path: str) -> Rules:
    """Rules from the parsed TOML ``data`` of the file ``path``.

    ValueError naming the file and the key for a missing, unknown or ill-typed key.
    """

    def fail(key, why):
        raise ValueError(f"{path}: {key}: {why}")

    def whole(key, value):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail(key, f"must be a whole number >= 1, got {value!r}")
        return value

    def table(key, value, allowed):
        if not isinstance(value, dict):
            fail(key, "must be a table")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            fail(f"{key}.{unknown[0]}", f"unknown key (allowed: {', '.join(allowed)})")
        missing = [k for k in allowed if k not in value]
        return missing

    for key in data:
        if key not in ("visit_days", "rollup", "style"):
            fail(key, "unknown key (allowed: visit_days, rollup, style)")
    for section in ("visit_days", "rollup", "style"):
        if section not in data:
            fail(section, "missing table")
    missing = table("visit_days", data["visit_days"], COLOURS)
    if missing:
        fail(f"visit_days.{missing[0]}", "missing")
    visit = {c: whole(f"visit_days.{c}", data["visit_days"][c]) for c in COLOURS}

    rollup = data["rollup"]
    missing = table("rollup", rollup, _THRESHOLDS + ("levels",))
    for k in missing:
        if k != "levels":
            fail(f"rollup.{k}", "missing")
    base = {k: whole(f"rollup.{k}", rollup[k]) for k in _THRESHOLDS}
    levels = {}
    for level, over in rollup.get("levels", {}).items():
        if level not in ALL_LEVELS:
            fail(f"rollup.levels.{level}", f"unknown level (choose from {', '.join(ALL_LEVELS)})")
        table(f"rollup.levels.{level}", over, _THRESHOLDS)
        levels[level] = {k: whole(f"rollup.levels.{level}.{k}", v) for k, v in over.items()}

    styles = {}
    missing = table("style", data["style"], tuple(_STYLE_KEYS))
    if missing:
        fail(f"style.{missing[0]}", "missing")
    for name, keys in _STYLE_KEYS.items():
        entry = data["style"][name]
        gone = table(f"style.{name}", entry, tuple(keys))
        if gone:
            fail(f"style.{name}.{gone[0]}", "missing")
        for k, kind in keys.items():
            v, where = entry[k], f"style.{name}.{k}"
            if kind is str and not isinstance(v, str):
                fail(where, f"must be a string, got {v!r}")
            if kind == "hex" and not (isinstance(v, str) and _HEX.fullmatch(v)):
                fail(where, f"must be a colour like #c0392b, got {v!r}")
            if kind in ("number", "unit") and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
                fail(where, f"must be a number >= 0, got {v!r}")
            if kind == "unit" and v > 1:
                fail(where, f"must be between 0 and 1, got {v!r}")
        styles[name] = dict(entry)
    return Rules(visit_days=visit, levels=levels, styles=styles, source=path, **base)


def check_kind(value) -> str | None:
    """The problem with a kind value, or None when it is one of :data:`KINDS`."""
    if value is None or str(value).strip() == "":
        return "missing kind"
    return None if value in KINDS else f"unknown kind {value!r} (choose from {', '.join(KINDS)})"


def check_colour(value) -> str | None:
    if value is None or str(value).strip() == "":
        return "missing colour"
    return None if value in COLOURS else f"unknown colour {value!r} (choose from {', '.join(COLOURS)})"


def visit_interval(colours, rules: Rules) -> np.ndarray:
    """The allowed gap between visits (numpy timedelta64[s]) for each colour."""
    colours = np.asarray(colours, dtype=object)
    days = np.zeros(len(colours), dtype="int64")
    for c in COLOURS:
        days[colours == c] = rules.visit_days[c]
    return (days * 86_400).astype("timedelta64[s]")


def _instants(values) -> np.ndarray:
    """Aware datetimes / Timestamps / NaT -> datetime64[us] in UTC (NaT for missing)."""
    return (
        pd.to_datetime(pd.Series(values, dtype=object), utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    )


def next_visit_due(colour, last_visit_at, marked_at, rules: Rules) -> np.ndarray:
    """coalesce(last visit, marked) + interval(colour), as datetime64[us] UTC."""
    last, marked = _instants(last_visit_at), _instants(marked_at)
    since = np.where(np.isnat(last), marked, last)
    return since + visit_interval(colour, rules)


def overdue(colour, last_visit_at, marked_at, now, rules: Rules) -> np.ndarray:
    """Vectorised: True where coalesce(last visit, marked) + interval(colour) < ``now`` (strictly:
    an element visited exactly ``interval`` ago is still on time)."""
    now64 = _instants([now])[0]
    return next_visit_due(colour, last_visit_at, marked_at, rules) < now64


def colour_of(red, yellow, blue, level, rules: Rules):
    """The rolled-up colour for count arrays (or scalars) of one level or an array of levels:
    red when red >= the red threshold, else yellow when red + yellow >= the yellow threshold,
    else blue when all elements >= the blue threshold, else None."""
    red, yellow, blue = (np.atleast_1d(np.asarray(v, dtype="int64")) for v in (red, yellow, blue))
    levels = np.broadcast_to(np.asarray(level, dtype=object), red.shape).astype(str)
    names, which = np.unique(levels, return_inverse=True)
    t = np.array([rules.thresholds(lv) for lv in names], dtype="int64").reshape(-1, 3)[which.ravel()]
    out = np.full(red.shape, None, dtype=object)
    out[red + yellow + blue >= t[:, 2]] = "blue"
    out[red + yellow >= t[:, 1]] = "yellow"
    out[red >= t[:, 0]] = "red"
    return out


def explain_colour(red: int, yellow: int, blue: int, level: str, rules: Rules) -> dict:
    """Why a grid of ``level`` with these element counts has its rolled-up colour: the level's thresholds
    and one sentence (Chinese and English) naming the rule that decided and the counts it compared, so
    a courtyard that is blue with one red element shows why (its red threshold is higher)."""
    t_red, t_yellow, t_blue = rules.thresholds(level)
    colour = colour_of(red, yellow, blue, level, rules)[0]
    counts = f"red {red}, yellow {yellow}, blue {blue}"
    if colour == "red":
        why = f"红 red: {red} red ≥ {t_red} (the {level} red threshold)"
    elif colour == "yellow":
        why = f"黄 yellow: red + yellow = {red + yellow} ≥ {t_yellow}; red {red} < {t_red} (the {level} thresholds)"
    elif colour == "blue":
        why = (
            f"蓝 blue: red {red} < {t_red} and red + yellow = {red + yellow} < {t_yellow} "
            f"(the {level} thresholds); {red + yellow + blue} element(s) ≥ {t_blue}"
        )
    else:
        why = f"无色 none: {red + yellow + blue} element(s) < {t_blue}"
    return {
        "colour": colour,
        "thresholds": {"red": t_red, "yellow": t_yellow, "blue": t_blue},
        "counts": counts,
        "why": why,
    }


COUNT_COLUMNS = ("red", "yellow", "blue", "overdue")


def rollup(
    counts: pd.DataFrame, chain: pd.DataFrame, rules: Rules, specials: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Counts and colour of every grid with an element below it.

    ``counts``: one row per micro-grid code (``micro_code``) with ``red``, ``yellow``, ``blue`` and
    ``overdue`` element counts (elements without a current micro-grid are ignored).
    ``chain``: current grids, ``code``, ``level``, ``parent_code``.  Counts climb micro-grid ->
    courtyard -> community -> street -> district by parent codes.  ``specials``: the same counts per
    special grid ``code`` (their elements lie in them, not below them).
    Returns ``code``, ``level``, ``colour``, red, yellow, blue, overdue; sorted by code.
    """
    cols = list(COUNT_COLUMNS)
    parent = pd.Series(chain["parent_code"].to_numpy(dtype=object), index=chain["code"].to_numpy(dtype=object))
    level_of = pd.Series(chain["level"].to_numpy(dtype=object), index=chain["code"].to_numpy(dtype=object))
    current = counts[counts["micro_code"].map(level_of).to_numpy(dtype=object) == "micro"]
    step = current.groupby("micro_code")[cols].sum()
    parts = [step.assign(level="micro")]
    for level in reversed(LEVELS[:-1]):  # courtyard, community, street, district
        up = step.index.to_series().map(parent)
        keep = up.map(level_of).to_numpy(dtype=object) == level
        step = step[keep].groupby(up[keep].to_numpy(dtype=object))[cols].sum()
        parts.append(step.assign(level=level))
    if specials is not None and len(specials):
        sp = specials[specials["code"].map(level_of).to_numpy(dtype=object) == SPECIAL]
        parts.append(sp.groupby("code")[cols].sum().assign(level=SPECIAL))
    out = pd.concat(parts)
    out.index.name = "code"
    out = out.reset_index()
    if out.empty:
        return pd.DataFrame(columns=["code", "level", "colour", *cols])
    out = out[(out[["red", "yellow", "blue"]].sum(axis=1) > 0)]
    out[cols] = out[cols].astype("int64")
    # object, not pandas' inferred str dtype, so "no colour" stays None (not NaN)
    out["colour"] = pd.Series(
        colour_of(out["red"], out["yellow"], out["blue"], out["level"].to_numpy(dtype=object), rules),
        index=out.index,
        dtype=object,
    )
    return out[["code", "level", "colour", *cols]].sort_values("code").reset_index(drop=True)
