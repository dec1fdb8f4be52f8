"""The partitioner's inputs and outputs: the household band and its plans, the visit-time model,
units as items, buildings in, the plan out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ..levels import HOUSEHOLD_BAND, band_holds
from .geometry import tour_length

POLICIES = ("keep", "over", "under")
#: Cut directions tried per bisection (spread over 180 degrees).
DIRECTIONS = 12


@dataclass(frozen=True)
class Band:
    """The household band of a micro-grid and what to do when a total cannot be split into it."""

    min: int = HOUSEHOLD_BAND[0]
    max: int = HOUSEHOLD_BAND[1]
    policy: str = "keep"

    def __post_init__(self):
        if not (0 < self.min <= self.max):
            raise InputError(f"the household band must have 0 < min <= max, got {self.min}..{self.max}")
        if self.policy not in POLICIES:
            raise InputError(f"unknown policy {self.policy!r}: choose one of {', '.join(POLICIES)}")

    @property
    def target(self) -> float:
        return (self.min + self.max) / 2

    def feasible(self, total: int) -> bool:
        """Whether ``total`` is a feasible total for the band (``levels.band_holds``)."""
        return band_holds(total, self.min, self.max)

    def plans(self, total: int):
        """Grid plans to try in order: (leaves, policy applied, note).  First :meth:`leaves`; then, for a
        feasible total, the other grid counts that can hold the band; then, when the units are too
        coarse for any of them, the policy's one-grid-out-of-band plans; last, the whole courtyard as
        one grid (always possible, and reported)."""
        leaves, policy = self.leaves(total)
        yield leaves, policy, None if policy is None else "infeasible total"
        if policy is not None:
            if self.policy == "keep":  # the other side too
                other = Band(self.min, self.max, "under" if policy == "over" else "over")
                yield *other.leaves(total), "infeasible total"
            if len(leaves) > 1:  # the last resort: the whole courtyard as one grid
                yield (
                    [(1, total, float(total))],
                    "over" if total > self.max else "under",
                    "units too coarse for the band",
                )
            return
        k_lo, k_hi = math.ceil(total / self.max), total // self.min
        for k in sorted(range(k_lo, k_hi + 1), key=lambda k: (abs(k - len(leaves)), k)):
            if k != len(leaves):
                yield [(self.min, self.max, total / k)] * k, None, None
        for side in ("over", "under") if self.policy == "keep" else (self.policy,):
            k = max(1, len(leaves) - 1) if side == "over" else len(leaves) + 1
            relaxed = (self.min, total, total / k) if side == "over" else (1, self.max, total / k)
            yield [(self.min, self.max, total / k)] * (k - 1) + [relaxed], side, "units too coarse for the band"
        if len(leaves) > 2:
            yield [(1, total, float(total))], "over", "units too coarse for the band"

    def leaves(self, total: int) -> tuple[list[tuple[int, int, float]], str | None]:
        """The grids to make: a (low, high, target) band per grid, and the policy applied (None when
        the total is feasible)."""
        if self.feasible(total):
            k_lo, k_hi = math.ceil(total / self.max), total // self.min
            k = min(max(round(total / self.target), k_lo), k_hi)
            return [(self.min, self.max, total / k)] * k, None
        # infeasible: one grid out of the band, the others in it
        k_over = max(1, total // self.min)
        over_size = total - (k_over - 1) * self.max  # the oversized grid, as small as it can be
        excess = over_size - self.max
        k_under = max(1, math.ceil(total / self.max))
        under_size = total - (k_under - 1) * self.min  # the undersized grid, as large as it can be
        deficit = self.min - under_size
        policy = self.policy
        if policy == "keep":
            policy = "over" if excess <= deficit else "under"
        if total < self.min:
            return [(1, total, float(total))], "under"
        if policy == "over":
            rest = (total - over_size) / max(k_over - 1, 1)
            return [(self.min, self.max, rest)] * (k_over - 1) + [(self.max + 1, total, float(over_size))], "over"
        rest = (total - under_size) / max(k_under - 1, 1)
        return [(self.min, self.max, rest)] * (k_under - 1) + [(1, self.min - 1, float(under_size))], "under"


@dataclass(frozen=True)
class VisitModel:
    """Minutes one grid worker needs to visit every household of a grid once.

    ``walk``: a closed tour over the grid's unit entrances (nearest-neighbour then 2-opt, metres
    in EPSG:4547) at ``walk_m_per_min``; plus ``per_entrance_min`` per entrance (doors, stairs)
    and ``per_household_min`` per household (knock, talk, note).  Defaults: 72 m/min (4.3 km/h),
    2 min and 1.4 min: a 70-household grid with 5 entrances 300 m apart takes about 115 minutes,
    which is Zhengzhou's "about 2 hours" for the top of the band.
    """

    walk_m_per_min: float = 72.0
    per_entrance_min: float = 2.0
    per_household_min: float = 1.4
    limit_min: float = 120.0

    def minutes(self, entrances_m: np.ndarray, households: int) -> float:
        return (
            tour_length(entrances_m) / self.walk_m_per_min
            + len(entrances_m) * self.per_entrance_min
            + households * self.per_household_min
        )


@dataclass
class Item:
    """What the partitioner places: one unit, or one floor chunk of a unit taller than the band."""

    building: str
    unit: int
    households: int
    x: float  # storage lon/lat of the entrance
    y: float
    floors: str | None = None  # "1-9" for a floor chunk


@dataclass
class BuildingIn:
    code: str
    footprint: object  # shapely geometry, storage lon/lat
    units: list[int]
    floors: int | None = None


@dataclass
class Plan:
    """The proposal for one courtyard."""

    courtyard: str
    households: int
    grids: list = field(default_factory=list)  # dicts: code, households, geometry, items, pp, minutes
    policy: str | None = None
    split_units: list = field(default_factory=list)
    error: str | None = None
    note: str | None = None

    @property
    def in_band(self) -> int:
        return sum(1 for g in self.grids if g["in_band"])

    def summary(self) -> dict:
        pp = [g["polsby_popper"] for g in self.grids]
        minutes = [g["visit_minutes"] for g in self.grids]
        return {
            "courtyard": self.courtyard,
            "households": self.households,
            "grids": len(self.grids),
            "in_band": self.in_band,
            "feasible": self.note != "infeasible total" and self.error is None,
            "policy": self.policy,
            "note": self.note,
            "split_units": self.split_units,
            "error": self.error,
            "polsby_popper_median": float(np.median(pp)) if pp else None,
            "visit_minutes_max": float(max(minutes)) if minutes else None,
            "over_time": [g["code"] for g in self.grids if g["over_time"]],
            "micro_grids": [
                {
                    k: g[k]
                    for k in ("code", "households", "in_band", "polsby_popper", "visit_minutes", "over_time", "units")
                }
                for g in self.grids
            ],
        }
