"""Bringing the last grids into the band: moves and swaps of units across grid borders on the ground.

The cut (:mod:`.floors`) is exact for grids that are runs of one walk, but a walk cannot make every
grouping a run: a unit may fit the band only with the grid on its other side.  This local search
starts from the cut and moves what the walk could not, on the cells' adjacency (:mod:`.ground`):

* a whole unit (a unit of at most ``max`` households, always one block) to a grid whose cells touch
  its cell;
* two such units between two neighbouring grids at once (a swap);
* the top or bottom floor of a grid's range in a tall unit to the grid holding the next floor of it
  (floor ranges stay contiguous: a grid never holds floors 3-5 and 9-12 of one unit).

A move is kept when it lowers the plan's cost (households outside the band first, then the distance
of the grids from the band's middle, as in :mod:`.floors`) and every grid still has its cells in one
piece.  It stops when no move helps or after ``max_moves``.  Hand-written: the moves need the band's
two-sided window and the floor ranges, which no districting library offers.
"""

from __future__ import annotations

import numpy as np

#: Moves tried at most per plan (each costs a pass over the border blocks).
MAX_MOVES = 200


def _cost(h: np.ndarray, lo: int, hi: int, w: float) -> np.ndarray:
    return w * (np.maximum(lo - h, 0) + np.maximum(h - hi, 0)) + np.abs(h - (lo + hi) / 2)


def _connected(cells: set, neighbours) -> bool:
    if len(cells) <= 1:
        return True
    start = next(iter(cells))
    seen, stack = {start}, [start]
    while stack:
        for nb in neighbours[stack.pop()]:
            if nb in cells and nb not in seen:
                seen.add(nb)
                stack.append(nb)
    return len(seen) == len(cells)


def repair(
    blocks,
    run_of,
    cell_of,
    neighbours,
    band_min: int,
    band_max: int,
    *,
    weight: float = 1e6,
    max_moves: int = MAX_MOVES,
) -> np.ndarray:
    """A better assignment of ``blocks`` (``floors.Block``) to grids than ``run_of`` (block -> grid), or
    ``run_of`` itself when no move helps.  ``cell_of[k]``: the ground cell of block k; ``neighbours``:
    the cells touching each cell."""
    run_of = np.array(run_of, dtype=np.int64)
    hh = np.array([b.households for b in blocks], dtype=np.int64)
    k = int(run_of.max()) + 1
    size = np.bincount(run_of, weights=hh, minlength=k).astype(np.int64)
    if not (_cost(size, band_min, band_max, weight) >= weight).any():
        return run_of  # every grid in the band already
    unit = np.array([b.unit for b in blocks])
    whole = np.bincount(unit)[unit] == 1  # a unit of one block: never split
    for _ in range(max_moves):
        cells = [{} for _ in range(k)]  # grid -> cell -> blocks on it
        for i, (r, c) in enumerate(zip(run_of, cell_of)):
            cells[r].setdefault(c, []).append(i)
        cost = _cost(size, band_min, band_max, weight)
        best = (0.0, None)
        for i in np.flatnonzero(whole):
            a, c = int(run_of[i]), cell_of[i]
            left = set(cells[a]) - {c}
            if not left:
                continue  # a grid of one unit is not emptied by a move (a swap may still take it)
            for b in {int(run_of[j]) for cc in neighbours[c] for j in _on(cells, cc)} - {a}:
                gain = _gain(size, cost, a, b, hh[i], band_min, band_max, weight)
                if gain > best[0] + 1e-9 and _connected(left, neighbours):
                    best = (gain, ("move", i, b))
        for i in np.flatnonzero(~whole):  # floors at the ends of a grid's range in a tall unit
            a = int(run_of[i])
            for j in (i - 1, i + 1):
                if 0 <= j < len(blocks) and unit[j] == unit[i] and run_of[j] != a:
                    b = int(run_of[j])
                    same = [x for x in cells[a].get(cell_of[i], []) if x != i]
                    end = not (
                        (i - 1 >= 0 and run_of[i - 1] == a and unit[i - 1] == unit[i])
                        and (i + 1 < len(blocks) and run_of[i + 1] == a and unit[i + 1] == unit[i])
                    )
                    if not end:
                        continue
                    if not same and not _connected(set(cells[a]) - {cell_of[i]}, neighbours):
                        continue
                    gain = _gain(size, cost, a, b, hh[i], band_min, band_max, weight)
                    if gain > best[0] + 1e-9 and (same or len(cells[a]) > 1):
                        best = (gain, ("move", i, b))
        if best[1] is None:
            best = _best_swap(run_of, whole, cells, cell_of, neighbours, size, cost, hh, band_min, band_max, weight)
        if best[1] is None:
            break
        kind, i, x = best[1]
        if kind == "move":
            size[run_of[i]] -= hh[i]
            size[x] += hh[i]
            run_of[i] = x
        else:
            j = x
            a, b = int(run_of[i]), int(run_of[j])
            size[a] += hh[j] - hh[i]
            size[b] += hh[i] - hh[j]
            run_of[i], run_of[j] = b, a
    return run_of


def _on(cells, c):
    for grid in cells:
        yield from grid.get(c, [])


def _gain(size, cost, a, b, h, lo, hi, w) -> float:
    new = _cost(np.array([size[a] - h, size[b] + h]), lo, hi, w)
    return float(cost[a] + cost[b] - new.sum())


def _best_swap(run_of, whole, cells, cell_of, neighbours, size, cost, hh, lo, hi, w):
    """The best swap of two whole units between neighbouring grids, one of them out of the band."""
    best = (0.0, None)
    out = {int(r) for r in np.flatnonzero(cost >= w)}
    for i in np.flatnonzero(whole):
        a, c = int(run_of[i]), cell_of[i]
        if a not in out:
            continue
        for b in {int(run_of[j]) for cc in neighbours[c] for j in _on(cells, cc)} - {a}:
            for j in np.flatnonzero(whole & (run_of == b)):
                d = hh[i] - hh[j]
                if d == 0:
                    continue
                new = _cost(np.array([size[a] - d, size[b] + d]), lo, hi, w)
                gain = float(cost[a] + cost[b] - new.sum())
                if gain <= best[0] + 1e-9:
                    continue
                ca = (set(cells[a]) - {c}) | {cell_of[j]}
                cb = (set(cells[b]) - {cell_of[j]}) | {c}
                if _connected(ca, neighbours) and _connected(cb, neighbours):
                    best = (gain, ("swap", int(i), int(j)))
    return best
