"""Grid levels, how they nest, and the kinds of special grid."""

from __future__ import annotations

from ..errors import InputError

#: Nested levels, top first.  Each level tiles its parent.
LEVELS = ("district", "street", "community", "courtyard", "micro")
#: Special grids (malls, markets, schools, enterprises) sit inside one community.
SPECIAL = "special"
ALL_LEVELS = LEVELS + (SPECIAL,)
SPECIAL_KINDS = ("mall", "market", "school", "enterprise", "other")
#: Households per micro-grid (Zhengzhou's rule): the partitioner's default band, the edit preview's
#: out-of-band flags and the statistics histogram all use this one pair.
HOUSEHOLD_BAND = (50, 70)

LABELS = {
    "district": "区县",
    "street": "街道/乡镇",
    "community": "社区/村",
    "courtyard": "小区/院落",
    "micro": "微网格",
    "special": "专属网格",
}


def parent_level(level: str) -> str | None:
    """The level a grid of ``level`` must have as parent (None for districts)."""
    check_level(level)
    if level == SPECIAL:
        return "community"
    i = LEVELS.index(level)
    return LEVELS[i - 1] if i else None


def child_level(level: str) -> str | None:
    """The level that tiles a grid of ``level`` (None for micro-grids and special grids)."""
    check_level(level)
    if level == SPECIAL or level == LEVELS[-1]:
        return None
    return LEVELS[LEVELS.index(level) + 1]


def check_level(level: str) -> str:
    """Return ``level`` or raise InputError naming the allowed set."""
    if level not in ALL_LEVELS:
        raise InputError(f"unknown level {level!r}: choose one of {', '.join(ALL_LEVELS)}")
    return level
