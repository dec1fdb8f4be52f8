"""The orders in which the planner walks a courtyard's units (the cut, :mod:`.floors`, makes grids of
runs of a walk).

* :func:`tour`: a short closed tour over the unit cells' centres (nearest neighbour from a few starts,
  then 2-opt and Or-opt), where a step between cells that do not touch costs ``JUMP_PENALTY`` times the
  courtyard's size extra and leaving a building ``BUILDING_STEP_M``: consecutive units are neighbours
  on the ground, and a building's units come together along its long axis.  A closed tour lets the
  planner open it anywhere (:func:`rotations`), so groupings that wrap round a U are reachable too.
* :func:`hilbert`: the units along a Hilbert curve through their centres: its runs are compact blobs
  rather than strips along the tour (its steps need not touch: the cut keeps only runs in one piece).

Parts of a courtyard cut in two by a road are walked one after the other, nearest part next; the steps
between parts are ``PART`` positions (a grid across one is a declared multi-part grid).
"""

from __future__ import annotations

import numpy as np
import shapely

from .floors import BUILDING, JUMP, PART, UNIT

#: Extra cost of a step between cells that do not touch, in courtyard diameters ...
JUMP_PENALTY = 10.0
#: ... and of a step from one building to another, in metres.
BUILDING_STEP_M = 5.0


def closed_tour(xy: np.ndarray, adjacent: np.ndarray, extra=0.0) -> list[int]:
    """A short closed tour over points ``xy`` (metres) preferring steps between ``adjacent`` ones: the
    best of nearest-neighbour tours from a few starts, each improved by 2-opt and Or-opt moves."""
    n = len(xy)
    if n < 3:
        return list(range(n))
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    cost = d + extra + (~adjacent) * JUMP_PENALTY * (d.max() + 1.0)
    starts = np.unique(np.linspace(0, n - 1, min(n, 4 if n <= 50 else 2)).round().astype(int))
    best, best_len = None, np.inf
    for start in starts:
        order = _improve(_nearest(cost, int(start)), cost)
        length = cost[order, np.roll(order, -1)].sum()
        if length < best_len - 1e-9:
            best, best_len = order, length
    # open the cycle after its dearest step (a jump when there is one): a part is walked from there
    step = cost[best, np.roll(best, -1)]
    return np.roll(best, -(int(np.argmax(step.round(6))) + 1)).tolist()


def _nearest(cost, start) -> np.ndarray:
    n = len(cost)
    order, left = [start], np.ones(n, bool)
    left[start] = False
    while left.any():
        nxt = int(np.argmin(np.where(left, cost[order[-1]], np.inf)))
        order.append(nxt)
        left[nxt] = False
    return np.array(order)


#: Tours of at most this many stops are improved in plain Python: most parts have 3-10 units, where
#: numpy's per-call overhead was most of the time (1.9 s of 600 courtyards' planning), the same moves.
SMALL_TOUR = 48


def _improve(order, cost, rounds: int = 30) -> np.ndarray:
    """2-opt (reverse a stretch) and Or-opt (move a stretch of 1-3 stops elsewhere) until neither helps."""
    n = len(order)
    if n <= SMALL_TOUR:
        return np.array(_improve_small(order.tolist(), cost.tolist(), rounds), dtype=order.dtype)
    for _ in range(rounds):
        improved = False
        for i in range(n - 1):  # 2-opt, vectorised over the second edge
            a, b = order[i], order[i + 1]
            j = np.arange(i + 2, n)
            c, e = order[j], order[(j + 1) % n]
            delta = cost[a, c] + cost[b, e] - cost[a, b] - cost[c, e]
            delta[(j + 1) % n == i] = 0.0
            if len(delta) and delta.min() < -1e-9:
                jj = int(j[np.argmin(delta)])
                order[i + 1 : jj + 1] = order[i + 1 : jj + 1][::-1]
                improved = True
        for length in (1, 2, 3):  # Or-opt
            if n < length + 3:
                break
            for i in range(n):
                rolled = np.concatenate([order[i:], order[:i]])
                seg, rest = rolled[:length], rolled[length:]
                p, q = rest[-1], rest[0]  # the stops around the segment
                gain = cost[p, seg[0]] + cost[seg[-1], q] - cost[p, q]
                a, b = rest[:-1], rest[1:]
                fwd = cost[a, seg[0]] + cost[seg[-1], b] - cost[a, b]
                rev = cost[a, seg[-1]] + cost[seg[0], b] - cost[a, b]
                k = int(np.argmin(np.minimum(fwd, rev)))
                if min(fwd[k], rev[k]) < gain - 1e-9:
                    piece = seg if fwd[k] <= rev[k] else seg[::-1]
                    order = np.concatenate([rest[: k + 1], piece, rest[k + 1 :]])
                    improved = True
        if not improved:
            break
    return order


def _improve_small(o: list, c: list, rounds: int) -> list:
    """:func:`_improve` on lists, move for move: the same sums in the same order, the first cheapest."""
    n = len(o)
    for _ in range(rounds):
        improved = False
        for i in range(n - 1):  # 2-opt
            a, b = o[i], o[i + 1]
            best, at = None, -1
            for j in range(i + 2, n):
                e = o[(j + 1) % n]
                d = 0.0 if (j + 1) % n == i else c[a][o[j]] + c[b][e] - c[a][b] - c[o[j]][e]
                if best is None or d < best:
                    best, at = d, j
            if best is not None and best < -1e-9:
                o[i + 1 : at + 1] = o[i + 1 : at + 1][::-1]
                improved = True
        for length in (1, 2, 3):  # Or-opt
            if n < length + 3:
                break
            for i in range(n):
                rolled = o[i:] + o[:i]
                seg, rest = rolled[:length], rolled[length:]
                first, last = seg[0], seg[-1]
                p, q = rest[-1], rest[0]
                gain = c[p][first] + c[last][q] - c[p][q]
                best, at, fwd, rev = None, -1, 0.0, 0.0
                for k in range(len(rest) - 1):
                    x, y = rest[k], rest[k + 1]
                    f = c[x][first] + c[last][y] - c[x][y]
                    r = c[x][last] + c[first][y] - c[x][y]
                    m = f if f <= r else r
                    if best is None or m < best:
                        best, at, fwd, rev = m, k, f, r
                if min(fwd, rev) < gain - 1e-9:
                    piece = seg if fwd <= rev else seg[::-1]
                    o = rest[: at + 1] + piece + rest[at + 1 :]
                    improved = True
        if not improved:
            break
    return o


def _part_chain(centres: np.ndarray) -> list[int]:
    """Parts in a chain, each next the nearest to the last one."""
    order = [0]
    while len(order) < len(centres):
        rest = [p for p in range(len(centres)) if p not in order]
        order.append(min(rest, key=lambda p: float(np.hypot(*(centres[p] - centres[order[-1]])))))
    return order


def _centres(g) -> np.ndarray:
    return shapely.get_coordinates(shapely.centroid(np.array(g.slices, dtype=object)))


def tour(parts: list, part_units: list[list[int]]) -> list[tuple[int, int, int]]:
    """The walk over every unit of every part as a closed tour of the unit cells (a cycle of stops:
    global unit index, part, cell).  ``part_units``: per part, the global unit of each of its cells."""
    tours = []
    for g in parts:
        xy = _centres(g)
        adj = np.zeros((len(xy), len(xy)), bool)
        for a, b in g.edges:
            adj[a, b] = adj[b, a] = True
        b_of = np.array([o[0] for o in g.owner])
        # leaving a building costs a little: finish a building before the next one
        extra = (b_of[:, None] != b_of[None, :]) * BUILDING_STEP_M
        tours.append(closed_tour(xy, adj, extra))
    order = _part_chain(np.array([_centres(g).mean(0) for g in parts]))
    return [(part_units[p][c], p, c) for p in order for c in tours[p]]


def hilbert(parts: list, part_units: list[list[int]], bits: int = 10) -> list[tuple[int, int, int]]:
    """The units in the order of a Hilbert curve through their slices' centres, part by part: runs of
    it are compact blobs rather than strips along a tour (their cells need not touch in that order; the
    cut keeps only runs whose cells are one piece)."""
    order = _part_chain(np.array([_centres(g).mean(0) for g in parts]))
    out = []
    for p in order:
        xy = _centres(parts[p])
        span = np.maximum(np.ptp(xy, axis=0).max(), 1e-9)
        q = np.floor((xy - xy.min(0)) / span * ((1 << bits) - 1)).astype(np.int64)
        keys = [_hilbert_index(int(x), int(y), bits) for x, y in q]
        out += [(part_units[p][c], p, int(c)) for c in np.argsort(keys, kind="stable")]
    return out


def _hilbert_index(x: int, y: int, bits: int) -> int:
    """The distance of cell (x, y) along the Hilbert curve of a 2^bits square (the classic xy2d)."""
    d = 0
    s = 1 << (bits - 1)
    while s > 0:
        rx = 1 if x & s else 0
        ry = 1 if y & s else 0
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = s - 1 - x, s - 1 - y
            x, y = y, x
        s >>= 1
    return d


def steps_of(stops: list, parts: list) -> list:
    """The kind of each step of the cycle ``stops`` (the last one closes it): UNIT across a party wall,
    BUILDING between touching cells of two buildings, JUMP between cells that do not touch, PART
    between courtyard parts, None from a unit to itself (a cycle of one)."""
    steps = []
    for (_, p, c), (_, q, d) in zip(stops, stops[1:] + stops[:1]):
        if p != q:
            steps.append(PART)
        elif c == d:
            steps.append(None)
        else:
            g = parts[p]
            touch = d in g.neighbours[c]
            steps.append(JUMP if not touch else UNIT if g.owner[c][0] == g.owner[d][0] else BUILDING)
    return steps


def rotations(steps: list, limit: int) -> list[int]:
    """Up to ``limit`` places to open the cycle: after every JUMP (opening there removes it), then
    between buildings or parts, then at party walls, each group spread evenly along the walk."""
    n = len(steps)
    picked: list[int] = []
    for group in ((JUMP,), (BUILDING, PART), (UNIT,)):
        at = [(i + 1) % n for i, k in enumerate(steps) if k in group]
        room = limit - len(picked)
        if len(at) > room > 0:
            at = [at[i] for i in np.unique(np.linspace(0, len(at) - 1, room).round().astype(int))]
        elif room <= 0:
            at = []
        picked += [a for a in at if a not in picked]
    return picked or [0]
