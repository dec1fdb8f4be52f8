"""Which micro-grid holds which floors: answering for shared towers, and the membership file.

A micro-grid version's shares (``grid_share``) are floor ranges of units.  :class:`Memberships` answers
from them:

* ``grid_of(building, unit, floor)``: the one micro-grid of a household's floor (an address with a
  floor or a room has exactly one);
* ``holders(building)``: every micro-grid holding floors of a building, with the ranges (a point in a
  shared tower's footprint is in all of them).

The membership file (CSV, UTF-8 or GBK like every gridmap CSV) has one row per share::

    building,unit,floor_from,floor_to,micro_code
    410104006010001B003,2,1,16,41010400601000101

:func:`read_rows` checks it: every field present and whole, floors ``1 <= floor_from <= floor_to``;
errors name the row (numbered from 1, the header is not a row) and the field.  Whether the building,
unit, floors and micro-grid exist, and whether the floors tile each unit, is for the caller with the
store (and :mod:`.integrity_shares`) to say.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

import lazy_loader
import numpy as np
import shapely

from .. import geo
from ..errors import InputError

pd = lazy_loader.load("pandas")

COLUMNS = ("building", "unit", "floor_from", "floor_to", "micro_code")


@dataclass(frozen=True)
class ShareRow:
    code: str
    building: str
    unit: int
    floor_from: int
    floor_to: int
    households: int | None = None


class Memberships:
    """Shares of the current (or dated) micro-grids, indexed by building and unit.

    Built from ShareRows, or from a frame of them (:meth:`of_frame`) whose buildings are indexed
    only when asked about: a city holds 120,000 shares, and a lookup asks about the one building
    its point lies in (making a ShareRow of each share cost a fresh command 1-2 s)."""

    def __init__(self, rows=()):
        self._rows: dict = {}  # building -> [ShareRow]
        self._ranges: dict = {}  # (building, unit) -> sorted [(floor_from, floor_to, code)]
        self._frame = None
        for r in rows:
            self._rows.setdefault(r.building, []).append(r)

    @classmethod
    def of_frame(cls, frame) -> Memberships:
        """From a frame with columns ``code, building_code, unit, floor_from, floor_to, households``.
        Its rows are found by binary search in the building codes sorted once as fixed-width text
        (sorted and searched in C: a dictionary of 56,000 buildings' row positions took 0.2 s)."""
        m = cls()
        m._frame = frame.reset_index(drop=True)
        keys = m._frame["building_code"].to_numpy(dtype=str)
        m._order = np.argsort(keys, kind="stable")
        m._keys = keys[m._order]
        return m

    def buildings_shared(self) -> list[str]:
        """Buildings whose floors more than one micro-grid holds, sorted."""
        if self._frame is None:
            return sorted(b for b in self._rows if self.shared(b))
        pairs = self._frame[["building_code", "code"]].drop_duplicates()
        counts = pairs["building_code"].value_counts()
        return sorted(counts.index[counts.to_numpy() > 1].tolist())

    def rows_of(self, building: str) -> list[ShareRow]:
        rows = self._rows.get(building)
        if rows is None:
            if self._frame is None:
                return []
            lo, hi = np.searchsorted(self._keys, building, "left"), np.searchsorted(self._keys, building, "right")
            if lo == hi:
                return []
            at = self._order[lo:hi]
            part = self._frame.iloc[at]
            rows = [
                ShareRow(c, b, int(u), int(f0), int(f1), None if pd.isna(h) else int(h))
                for c, b, u, f0, f1, h in zip(
                    part["code"],
                    part["building_code"],
                    part["unit"],
                    part["floor_from"],
                    part["floor_to"],
                    part["households"],
                    strict=True,
                )
            ]
            self._rows[building] = rows  # one assignment: threads asking at once compute the same
        return rows

    def grid_of(self, building: str, unit: int, floor: int) -> str | None:
        """The micro-grid holding ``floor`` of the unit, or None when no share covers it."""
        ranges = self._ranges.get((building, unit))
        if ranges is None:
            ranges = sorted((r.floor_from, r.floor_to, r.code) for r in self.rows_of(building) if r.unit == unit)
            self._ranges[(building, unit)] = ranges
        if not ranges:
            return None
        i = bisect_right([r[0] for r in ranges], floor) - 1
        if i >= 0 and ranges[i][0] <= floor <= ranges[i][1]:
            return ranges[i][2]
        return None

    def holders(self, building: str) -> list[dict]:
        """Micro-grids holding floors of ``building``: code and the ranges it holds, by code."""
        out: dict = {}
        for r in sorted(self.rows_of(building), key=lambda r: (r.code, r.unit, r.floor_from)):
            out.setdefault(r.code, []).append(
                {"unit": r.unit, "floor_from": r.floor_from, "floor_to": r.floor_to, "households": r.households}
            )
        return [{"code": code, "floors": ranges} for code, ranges in out.items()]

    def shared(self, building: str) -> bool:
        return len({r.code for r in self.rows_of(building)}) > 1


def _whole(value, row: int, field: str) -> int:
    text = "" if value is None else str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise InputError(f"row {row}: {field} must be a whole number, got {text!r}")
    return int(text)


def read_rows(records) -> list[ShareRow]:
    """Checked share rows from dicts with the COLUMNS (a CSV's records).  Raises InputError naming the
    first bad row and field, and how many rows are bad in all."""
    out, errors = [], []
    for n, rec in enumerate(records, 1):
        try:
            missing = [c for c in COLUMNS if c not in rec or rec[c] is None or str(rec[c]).strip() == ""]
            if missing:
                raise InputError(f"row {n}: missing {', '.join(missing)}")
            unit = _whole(rec["unit"], n, "unit")
            f0 = _whole(rec["floor_from"], n, "floor_from")
            f1 = _whole(rec["floor_to"], n, "floor_to")
            if unit < 1:
                raise InputError(f"row {n}: unit must be 1 or more, got {unit}")
            if not 1 <= f0 <= f1:
                raise InputError(f"row {n}: floors must satisfy 1 <= floor_from <= floor_to, got {f0}..{f1}")
            out.append(ShareRow(str(rec["micro_code"]).strip(), str(rec["building"]).strip(), unit, f0, f1))
        except InputError as exc:
            errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 1} more bad rows)" if len(errors) > 1 else ""
        raise InputError(errors[0] + more)
    return out


def unit_spots(footprint, n: int) -> list:
    """Where each of a footprint's ``n`` units stands for geometry: the middle of its slice (slices side by
    side along the long axis, as the partitioner cuts them), lon/lat points."""
    # deferred: the partitioner package imports scipy (~0.3 s); a lookup reading shares never derives them
    from .partition.ground import unit_slices

    local = geo.to_local([footprint])[0]
    slices = unit_slices(local, n) if n > 1 else [local]
    return list(
        geo.from_local(
            [shapely.point_on_surface(s) if not s.is_empty else shapely.point_on_surface(local) for s in slices]
        )
    )


def derive(grids: list[tuple[str, object]], buildings: list[tuple[str, object, list[tuple[int, int, int]]]]):
    """Whole-unit shares from geometry alone, for micro-grids that came without a membership file: each
    unit belongs to the micro-grid holding the middle of its slice of the footprint (slices side by side
    along the long axis, as the partitioner cuts them; lowest code on a boundary, the nearest grid when
    none holds it).

    ``grids``: (code, lon/lat geometry); ``buildings``: (code, lon/lat footprint, [(unit number, floors,
    households)]).  Returns ShareRow objects with households."""
    if not grids:
        return []
    codes = [c for c, _ in sorted(grids, key=lambda g: g[0])]
    geoms = np.array([g for _, g in sorted(grids, key=lambda g: g[0])], dtype=object)
    tree = shapely.STRtree(geoms)
    out = []
    for code, footprint, units in buildings:
        for (number, floors, households), mid in zip(units, unit_spots(footprint, len(units))):
            hits = sorted(tree.query(mid, predicate="covered_by").tolist())
            at = hits[0] if hits else int(tree.nearest(mid))
            out.append(ShareRow(codes[at], code, int(number), 1, int(floors), int(households)))
    return out


@dataclass(frozen=True)
class UnitAfter:
    """A stairwell unit as an edit leaves it: its building's courtyard after the edit, its footprint and
    spot (:func:`unit_spots`, lon/lat) and the households of each floor, bottom up."""

    building: str
    courtyard: str
    number: int
    floors: tuple[int, ...]
    footprint: object
    spot: object


def _ranges(floors: list[int]) -> list[tuple[int, int]]:
    """Sorted floor numbers as runs (first, last)."""
    out: list[list[int]] = []
    for f in sorted(floors):
        if out and out[-1][1] + 1 == f:
            out[-1][1] = f
        else:
            out.append([f, f])
    return [(a, b) for a, b in out]


def follow_edit(
    rows: list[ShareRow],
    after: dict[str, tuple[object, str]],
    opened: set[str],
    moved: set[str],
    closed: dict[str, object],
    units: list[UnitAfter],
) -> list[ShareRow]:
    """The shares of the micro-grids of the courtyards an edit touches, as the edit leaves them, so that
    every floor of every unit is in exactly one micro-grid of its building's courtyard.

    ``rows``: the shares before the edit of every micro-grid of those courtyards; ``after``: code ->
    (lon/lat ground, courtyard) of every micro-grid there after the edit; ``opened``: the codes of the new
    versions the edit draws; ``moved``: of the grids it gives a new version as they are (moved to another
    courtyard); ``closed``: code -> old ground of the micro-grids the edit ends; ``units``: every unit of
    the buildings of those courtyards, after the edit.

    * A grid that goes on (the same code) keeps its floors while its ground reaches the building and the
      building stays in its courtyard.
    * Other floors of a grid the edit ends or redraws (merged away, retired, cut by a cascaded split,
      split keeping its code) go to what its old ground became: a grid the edit draws in the building's
      courtyard over part of that ground that reaches the building (the one holding the unit's spot,
      else the one with most of the old ground); with none, as floors in no grid.
    * Floors then in no grid go, as runs, to the grid holding the unit's spot (lowest code, a new
      version first; when none holds it, the nearest new version, else the nearest grid), as
      :func:`derive` places whole units.

    Returns every share of the ``after`` grids, a grid's adjacent runs of one unit joined, households
    from the floors."""
    by_unit = {(u.building, u.number): u for u in units}
    changing = opened | moved
    yard_grids: dict[str, list[str]] = {}
    for code in sorted(after):
        yard_grids.setdefault(after[code][1], []).append(code)

    def reaches(code: str, u: UnitAfter) -> bool:
        geom, yard = after[code]
        return yard == u.courtyard and shapely.intersects(geom, u.footprint)

    def home(u: UnitAfter, origin=None) -> str | None:
        codes = yard_grids.get(u.courtyard, [])
        if origin is not None:  # what the old grid became: a new version over its ground, reaching the building
            heirs = [c for c in codes if c in opened and reaches(c, u)]
            overlap = {c: float(shapely.area(shapely.intersection(after[c][0], origin))) for c in heirs}
            heirs = [c for c in heirs if overlap[c] > 0]
            if heirs:
                return min(heirs, key=lambda c: (not shapely.covers(after[c][0], u.spot), -overlap[c], c))
        holding = [c for c in codes if shapely.covers(after[c][0], u.spot)]
        pick = [c for c in holding if c in changing] or holding
        if pick:
            return pick[0]
        near = [c for c in codes if c in changing] or codes
        return min(near, key=lambda c: (shapely.distance(after[c][0], u.spot), c)) if near else None

    held: dict[tuple[str, str, int], set[int]] = {}  # (grid, building, unit) -> floors
    for r in rows:
        u = by_unit.get((r.building, r.unit))
        if u is None:
            continue  # a unit that no longer exists: its share goes
        floors = {f for f in range(max(1, r.floor_from), r.floor_to + 1) if f <= len(u.floors)}
        code = r.code
        if code not in after or not reaches(code, u):
            code = home(u, closed.get(r.code))  # what its old ground became (a split may keep one code)
            if code is None or not reaches(code, u):
                continue  # left for the floors in no grid, below
        held.setdefault((code, r.building, r.unit), set()).update(floors)
    taken: dict[tuple[str, int], set[int]] = {}
    for (_code, b, n), floors in held.items():
        taken.setdefault((b, n), set()).update(floors)
    for u in units:
        missing = set(range(1, len(u.floors) + 1)) - taken.get((u.building, u.number), set())
        if missing:
            code = home(u)
            if code is not None:
                held.setdefault((code, u.building, u.number), set()).update(missing)
    out = []
    for (code, b, n), floors in sorted(held.items()):
        u = by_unit[(b, n)]
        for f0, f1 in _ranges(list(floors)):
            out.append(ShareRow(code, b, n, f0, f1, int(sum(u.floors[f0 - 1 : f1]))))
    return out
