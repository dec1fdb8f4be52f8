"""The matter catalogue (事项清单): which matters exist, who handles each at which level, how long
they may take, how duplicates are found and how disposal is verified: the model.  Pure.

The catalogue is a TOML file (defaults, department kinds, Open311 attributes, optionally the
matters as ``[[matter]]`` tables) and, beside it, an optional CSV with one matter per row (the
shipped demo keeps its 504 matters there so that officials can edit them as a spreadsheet),
read by ``services/matters.py`` and checked by :mod:`.catalogue_check` (every problem named by
the file, the line and the key, all of them at once).

A *department kind* (城市管理, 市场监管, …) exists at some levels; the department that handles a
case is that kind at the case's grid of the handling level (``routing``).  The kind ``grid`` is
the grid workers of the micro-grid (or courtyard) itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import NotFound

#: Handling levels, lowest first: a case climbs this way when it is not solved in time.
LEVELS_UP = ("micro", "courtyard", "community", "street", "district")
#: Deadline units: working hours, working days (on the Chinese calendar) and calendar days.
UNITS = {"h": "working hours", "wd": "working days", "d": "calendar days"}
#: How disposal is verified: not at all, an after-photo, or an after-photo taken near the case.
VERIFY = ("none", "photo", "site")
#: The grid workers of the case's own micro-grid or courtyard rather than a department.
GRID_KIND = "grid"
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
CSV_COLUMNS = (
    "code",
    "name",
    "category",
    "auto",
    "level",
    "deadline",
    "verify",
    "duplicate_radius_m",
    "duplicate_window_h",
    "description",
) + LEVELS_UP
_DEADLINE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(h|wd|d)\s*")


@dataclass(frozen=True)
class Deadline:
    """A handling time limit: ``amount`` of ``unit`` (``h``, ``wd`` or ``d``)."""

    amount: float
    unit: str

    @classmethod
    def parse(cls, text) -> Deadline:
        """``"4h"``, ``"2wd"``, ``"3d"``; ValueError naming the accepted forms."""
        m = _DEADLINE.fullmatch(str(text))
        if not m or float(m.group(1)) <= 0:
            raise ValueError(f"{text!r} is not a deadline: use e.g. 4h (working hours), 2wd (working days), 3d")
        return cls(float(m.group(1)), m.group(2))

    def __str__(self) -> str:
        return f"{self.amount:g}{self.unit}"


@dataclass(frozen=True)
class Department:
    """A kind of department and what it is called at each level where it exists."""

    kind: str
    name: str
    titles: dict[str, str]


@dataclass(frozen=True)
class Attribute:
    """An Open311 service attribute asked of matters in ``categories`` (all when empty)."""

    code: str
    datatype: str
    required: bool
    description: str
    order: int
    values: tuple[tuple[str, str], ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Defaults:
    """Catalogue-wide settings used where a matter says nothing."""

    duplicate_radius_m: float = 250.0
    duplicate_window_h: float = 72.0
    warn_ratio: float = 0.8
    rating_days: int = 14
    verify_radius_m: float = 100.0
    #: Working periods of a working day, as minutes after midnight.
    work_hours: tuple[tuple[int, int], ...] = ((9 * 60, 12 * 60), (13 * 60, 18 * 60))
    #: The department kind at each level when a matter names none.
    level_kinds: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Matter:
    """One matter type: ``handlers`` maps every level from ``level`` up to district to a kind."""

    code: str
    name: str
    category: str
    auto: bool
    level: str
    deadline: Deadline
    handlers: dict[str, str]
    duplicate_radius_m: float
    duplicate_window_h: float
    verify: str
    description: str = ""
    line: str = ""

    def to_dict(self) -> dict:
        """The matter as JSON (the API and ``gridmap matters list --format json``)."""
        return {
            "code": self.code,
            "name": self.name,
            "category": self.category,
            "auto": self.auto,
            "level": self.level,
            "deadline": str(self.deadline),
            "handlers": self.handlers,
            "duplicate_radius_m": self.duplicate_radius_m,
            "duplicate_window_h": self.duplicate_window_h,
            "verify": self.verify,
        }

    def levels_above(self, level: str) -> tuple[str, ...]:
        """The handling levels above ``level``, lowest first (the escalation path)."""
        return LEVELS_UP[LEVELS_UP.index(level) + 1 :]


@dataclass(frozen=True)
class Catalogue:
    """The parsed catalogue; ``matter(code)`` raises NotFound for an unknown code."""

    matters: dict[str, Matter]
    departments: dict[str, Department]
    defaults: Defaults
    attributes: tuple[Attribute, ...] = ()
    source: str = ""
    #: The matters a resident may choose on a grid's QR page (扫码上报), in the catalogue's order.
    public: tuple[str, ...] = ()

    def public_matters(self) -> list[tuple[str, str]]:
        """(code, name) of the matters residents may choose."""
        return [(c, self.matters[c].name) for c in self.public]

    def matter(self, code: str) -> Matter:
        """The matter of ``code``; NotFound naming it."""
        try:
            return self.matters[code]
        except KeyError:
            raise NotFound(f"unknown matter {code!r} (see `gridmap matters list`)") from None

    def attributes_for(self, matter: Matter) -> list[Attribute]:
        """Open311 attributes that apply to ``matter``, in their order."""
        return sorted(
            (a for a in self.attributes if not a.categories or matter.category in a.categories), key=lambda a: a.order
        )

    def department_title(self, kind: str, level: str) -> str:
        """What the department of ``kind`` is called at ``level`` (grid workers for ``grid``)."""
        if kind == GRID_KIND:
            return "网格员"
        return self.departments[kind].titles.get(level, self.departments[kind].name)

    def categories(self) -> dict[str, int]:
        """Matter count per category, in first-seen order."""
        out: dict[str, int] = {}
        for m in self.matters.values():
            out[m.category] = out.get(m.category, 0) + 1
        return out
