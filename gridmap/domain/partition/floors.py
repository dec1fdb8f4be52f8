"""Households in three dimensions: stairwell units, their floors, and the cut of a sequence of them.

A courtyard's households live in units (单元) of buildings, floor by floor.  The planner walks the
units in one order (building after building along a route, units along each building's long axis,
floors bottom to top: see :mod:`.route`) and cuts that sequence into runs, one micro-grid per run.
This module does the cutting, exactly, by dynamic programming over the sequence:

* **Blocks.**  A unit of at most ``max`` households is one block; a taller unit is one block per
  floor, so it can be cut at any floor and its pieces fill grids with the neighbouring units (floors
  1-16 of unit 2 with unit 1, floors 17-33 with unit 3).  When whole small units cannot bring every
  grid into the band, the planner cuts again with every unit by floors (``blocks_of(whole_max=0)``):
  a unit of 45 households over 15 floors may then give floors 1-8 to one grid and 9-15 to the next;
  units the cut leaves in one grid are made whole again (:func:`rejoin`).
* **Positions** between consecutive blocks have a kind: ``FLOOR`` (inside a unit), ``UNIT`` (a party
  wall inside a building), ``BUILDING`` (two buildings whose ground cells touch), ``JUMP`` (two
  cells that do not touch: a run may cross it only when its cells are one piece all the same) and
  ``PART`` (two parts of a courtyard cut in two by a road: a run across it is a declared multi-part
  grid).
* **Cost of a plan**, lexicographic through its weights: households outside the band (the distance of
  each grid from ``min..max``: 66 + 66 + 33 is 17 away, 66 + 99 is 29; 70 + 36 is 14, one grid of 106
  is 36) first; then grids across parts; then cuts through a unit at a floor, then cuts at party walls
  (whole buildings before whole units before floor splits); last the distance of each grid from the
  band's middle.  With ``policy='over'`` (``'under'``) a grid below (above) the band costs a thousand
  times more, so the other side is chosen whenever the total allows it.

The minimum over all runs is found exactly in O(blocks x window) (each grid holds at most
``min + max`` households, so a run starts at most that many blocks back); each step is one NumPy
expression over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

FLOOR, UNIT, BUILDING, JUMP, PART = range(5)
KIND_NAMES = ("floor", "unit", "building", "jump", "part")


@dataclass(frozen=True)
class Unit:
    """One stairwell unit: its building, number (1 = the first along the building's long axis) and
    households per floor, ground floor first (zeros allowed: shops, bicycle rooms)."""

    building: str
    number: int
    floor_households: tuple[int, ...]

    @property
    def households(self) -> int:
        return int(sum(self.floor_households))

    @property
    def floors(self) -> int:
        return len(self.floor_households)


def even_floors(households: int, floors: int) -> tuple[int, ...]:
    """``households`` spread over ``floors`` as evenly as whole flats allow, the extra ones on the lower
    floors (the usual case when only a unit's total and the building's height are known)."""
    if floors < 1:
        raise InputError(f"a unit needs at least one floor, got {floors}")
    base, extra = divmod(int(households), int(floors))
    return tuple(base + (1 if f < extra else 0) for f in range(floors))


@dataclass(frozen=True)
class Block:
    """What the cut never splits: a whole unit, or one floor of a unit taller than the band."""

    unit: int  # index into the planner's unit list
    floor_from: int  # 1-based, inclusive
    floor_to: int
    households: int


def blocks_of(units: list[Unit], order: list[int], band_max: int, steps: list | None = None, whole_max=None):
    """The blocks of ``units`` taken in ``order`` and the kind of every position between two blocks:
    FLOOR inside a unit; between units ``steps[i]`` (the kind of the step from ``order[i]`` to
    ``order[i + 1]``), or when not given UNIT within a building and BUILDING between two.
    A unit of at most ``whole_max`` households (default ``band_max``) is one block, a larger one a block
    per floor; ``whole_max=0`` gives every unit by floors (the planner's second pass, see
    :func:`rejoin`).  Returns (blocks, kinds)."""
    whole_max = band_max if whole_max is None else whole_max
    blocks: list[Block] = []
    kinds: list[int] = []
    for pos, i in enumerate(order):
        u = units[i]
        if u.households <= 0:
            raise InputError(f"unit {u.number} of building {u.building} has {u.households} households")
        pieces = (
            [Block(i, 1, u.floors, u.households)]
            if u.households <= whole_max or u.floors == 1
            else [Block(i, f + 1, f + 1, int(h)) for f, h in enumerate(u.floor_households)]
        )
        for j, b in enumerate(pieces):
            if blocks:
                if j:
                    kinds.append(FLOOR)
                else:
                    step = steps[pos - 1] if steps is not None else None
                    same = units[blocks[-1].unit].building == u.building
                    kinds.append(step if step is not None else UNIT if same else BUILDING)
            blocks.append(b)
    return blocks, kinds


def rejoin(blocks: list[Block], run_of, units: list[Unit], band_max: int):
    """Blocks and their runs after a cut of floor blocks, with every unit of at most ``band_max``
    households that the cut left in one run made one block again (so the repair moves it whole); the
    floors of a unit the cut did split stay blocks.  Returns (blocks, run_of)."""
    run_of = np.asarray(run_of, dtype=np.int64)
    runs_of_unit: dict[int, set] = {}
    for b, r in zip(blocks, run_of):
        runs_of_unit.setdefault(b.unit, set()).add(int(r))
    out, runs = [], []
    for b, r in zip(blocks, run_of):
        u = units[b.unit]
        if u.households <= band_max and len(runs_of_unit[b.unit]) == 1:
            if out and out[-1].unit == b.unit:
                continue  # the unit's first floor already stands for all of it
            b = Block(b.unit, 1, u.floors, u.households)
        out.append(b)
        runs.append(int(r))
    return out, np.array(runs, dtype=np.int64)


@dataclass(frozen=True)
class Weights:
    """The cost of a plan (see the module docstring); each weight dominates the ones below it."""

    out_of_band: float = 1e6  # per household a grid lies outside min..max
    wrong_side: float = 1e3  # multiplies ``out_of_band`` for the side the policy does not want
    part_crossing: float = 1e4  # per grid across two parts of the courtyard
    jump_crossing: float = 50.0  # per grid wrapping round a jump of the walk (in one piece all the same)
    floor_cut: float = 100.0  # per cut between two floors of a unit
    unit_cut: float = 30.0  # per cut at a party wall
    balance: float = 1.0  # per household a grid lies from the band's middle


DEFAULT_WEIGHTS = Weights()


def cut(
    hh,
    kinds,
    band_min: int,
    band_max: int,
    policy: str = "keep",
    weights: Weights = DEFAULT_WEIGHTS,
    cells=None,
    neighbours=None,
):
    """Cut blocks of households ``hh`` (kinds of the positions between them: ``kinds``, len(hh) - 1) into
    runs at least cost.  Returns (run starts, cost); the runs are ``hh[s[i]:s[i+1]]``.

    A run crosses a JUMP only when ``cells`` (the ground cell of each block) and ``neighbours`` (the
    cells touching each cell) are given and the run's cells form one piece: a run that wraps round
    the walk's far end (units 5, 6, 7 and 0 of a cycle whose step 5 -> 0 jumps, where 7 touches 0) is
    as good as a contiguous one.  Every sequence can be cut (a run may be out of the band), so this
    never fails; a run holds at most ``min + max`` households unless one block alone is larger (a larger run
    could be cut in two runs of at least ``min``)."""
    hh = np.asarray(hh, dtype=np.int64)
    n = len(hh)
    if n == 0:
        raise InputError("nothing to cut: no households")
    kinds = np.asarray(kinds, dtype=np.int64).reshape(-1)
    if len(kinds) != n - 1:
        raise ValueError(f"{n} blocks need {n - 1} position kinds, got {len(kinds)}")
    w_under = weights.out_of_band * (weights.wrong_side if policy == "over" else 1.0)
    w_over = weights.out_of_band * (weights.wrong_side if policy == "under" else 1.0)
    target = (band_min + band_max) / 2
    cum = np.concatenate([[0], np.cumsum(hh)])
    # position q (1..n-1) lies between blocks q-1 and q; kind_at[q]
    kind_at = np.concatenate([[-1], kinds, [-1]])
    cut_cost = np.zeros(n + 1)
    cut_cost[kind_at == FLOOR] = weights.floor_cut
    cut_cost[kind_at == UNIT] = weights.unit_cut
    parts = np.cumsum(kind_at == PART)  # PART positions at or before q
    last_jump = np.maximum.accumulate(np.where(kind_at == JUMP, np.arange(n + 1), 0))
    cap = max(band_min + band_max, int(hh.max()))
    # every run's own cost at once: row j-1 holds the runs ending before block j, starting at
    # i = lo_j .. j-1 (columns past j-1 are padding at infinity).  The weights are whole numbers, so these
    # sums are exact and the cheapest run is the one the loop below would find term by term
    ends = np.arange(1, n + 1)
    lo = np.minimum(np.searchsorted(cum, cum[1:] - cap, side="left"), ends - 1)
    width = int((ends - lo).max())
    i_all = lo[:, None] + np.arange(width)[None, :]
    pad = i_all >= ends[:, None]
    i_all = np.where(pad, ends[:, None] - 1, i_all)
    h = cum[ends][:, None] - cum[i_all]
    own = (
        w_under * np.maximum(band_min - h, 0)
        + w_over * np.maximum(h - band_max, 0)
        + weights.part_crossing * (parts[ends - 1][:, None] - parts[i_all])
        + weights.balance * np.abs(h - target)
    )
    own[pad] = np.inf
    # ends whose window reaches back over a jump: their runs must lie in one piece
    jumpy = (last_jump[ends - 1] > lo).tolist()
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, dtype=np.int64)
    same_cell = [False] + [cells is not None and cells[b] == cells[b - 1] for b in range(1, n)]
    ok, ok_start, ok_end = None, 0, -1  # the one-piece test of runs from ok_start on ending before ok_end
    for j in range(1, n + 1):
        i = i_all[j - 1]
        cost = best[i] + own[j - 1]
        if jumpy[j - 1]:  # runs starting before the last jump: only when in one piece
            start = int(lo[j - 1])
            if ok_end == j - 1 and same_cell[j - 1] and last_jump[j - 1] == last_jump[j - 2]:
                # block j-1 stands on the cell of block j-2 (floors of one unit): every run that ends
                # with it covers the cells of the run ending one block earlier, so the answers carry over
                ok = np.concatenate([ok[start - ok_start :], [True]])
            else:
                ok = _in_one_piece(cells, neighbours, start, j, int(last_jump[j - 1]))
            ok_start, ok_end = start, j
            mask = np.zeros(width, bool)
            mask[: j - start] = ok
            cost = np.where(mask, cost + weights.jump_crossing * (i < last_jump[j - 1]), np.inf)
        k = int(np.argmin(cost))
        best[j] = cost[k] + cut_cost[j]
        back[j] = i[k]
    starts = []
    j = n
    while j > 0:
        j = int(back[j])
        starts.append(j)
    return starts[::-1], float(best[n])


def _in_one_piece(cells, neighbours, lo: int, j: int, jump: int) -> np.ndarray:
    """For each start i in lo..j-1, whether blocks i..j-1 lie on cells forming one piece (True from
    ``jump`` on: runs after the last jump are contiguous in the walk).  Grown from j-1 down with a
    union-find, so the whole window costs one pass."""
    ok = np.ones(j - lo, bool)
    if cells is None:
        ok[: jump - lo] = False
        return ok
    parent: dict = {}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pieces = 0
    for i in range(j - 1, lo - 1, -1):
        c = int(cells[i])
        if c not in parent:
            parent[c] = c
            pieces += 1
            for nb in neighbours[c]:
                if nb in parent and find(nb) != find(c):
                    parent[find(nb)] = find(c)
                    pieces -= 1
        if i < jump:
            ok[i - lo] = pieces == 1
    return ok


def out_of_band(sizes, band_min: int, band_max: int) -> int:
    """Households by which grids of ``sizes`` miss the band, summed (0: all in band)."""
    s = np.asarray(sizes, dtype=np.int64)
    return int(np.maximum(band_min - s, 0).sum() + np.maximum(s - band_max, 0).sum())
