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


def band_holds(total: int, band_min: int = HOUSEHOLD_BAND[0], band_max: int = HOUSEHOLD_BAND[1]) -> bool:
    """Whether a courtyard of ``total`` households has a *feasible total*: some number of grids ``k``
    with ``k * band_min <= total <= k * band_max``.  With units split by floors where needed, such a
    total can be cut into grids all in the band when the walk's floors hold at most
    ``band_max - band_min + 1`` households each (every grid then stops inside the band) and the ground
    lets the grids be one piece each; any other total cannot, whatever the units.  For 50-70: 50-70, 100-140 and
    every total from 150 on are feasible; under 50, 71-99 and 141-149 are not (two grids hold at most
    140, three at least 150)."""
    total = int(total)
    if band_min <= 0 or band_max < band_min:
        raise InputError(f"a household band needs 0 < min <= max, got {band_min}..{band_max}")
    return total > 0 and -(-total // band_max) <= total // band_min


#: How a new grid's code extends its parent's: a suffix, then this many digits (README "The grid model").
CODE_SUFFIX = {"street": ("", 3), "community": ("", 3), "courtyard": ("", 3), "micro": ("", 2), SPECIAL: ("S", 2)}

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


def new_codes(parent_code: str, level: str, last: int, n: int) -> list[str]:
    """``n`` codes for new ``level`` grids under ``parent_code``, numbered after ``last`` (the highest
    number ever issued there).  Raises InputError for districts (national codes are given, not made)
    and when the numbers run out."""
    if level not in CODE_SUFFIX:
        raise InputError(f"a new {level} needs its code given: gridmap makes codes below district level only")
    suffix, width = CODE_SUFFIX[level]
    if last + n >= 10**width:
        raise InputError(
            f"no free {level} codes left under {parent_code}: {last} of {10**width - 1} were issued "
            "(a code is never issued again); give codes"
        )
    return [f"{parent_code}{suffix}{i:0{width}d}" for i in range(last + 1, last + n + 1)]
