"""The order in which the planner walks a courtyard's units: building after building along a closed
route, each building's units along its long axis, in the direction that continues the route.

The cut (:mod:`.floors`) only makes grids of consecutive units, so consecutive units should be
neighbours on the ground: the route is a shortest closed tour over the buildings' footprint centroids
(nearest neighbour, then 2-opt) where a step between two buildings whose cells do not touch costs
``JUMP_PENALTY`` times the courtyard's size extra; a grid never crosses such a step.  A closed tour
lets the planner start anywhere on it (:func:`rotations`), so groupings that wrap round a U-shaped
courtyard are reachable too.  Each building then takes the orientation whose first unit's cell
touches the previous building's last unit's cell (else the nearer end).

Parts of a courtyard cut in two by a road get their own tours, joined nearest part next; the steps
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
    starts = np.unique(np.linspace(0, n - 1, min(n, 4)).round().astype(int))
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


def _improve(order, cost, rounds: int = 30) -> np.ndarray:
    """2-opt (reverse a stretch) and Or-opt (move a stretch of 1-3 stops elsewhere) until neither helps."""
    n = len(order)
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
                seg = np.roll(order, -i)[:length]
                rest = np.roll(order, -i)[length:]
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


def route(parts: list, part_units: list[list[int]]):
    """The walk over every unit of every part.

    Parameters
    ----------
    parts : one :class:`.ground.Ground` per courtyard part.
    part_units : per part, the global unit index of each of its cells (in the Ground's cell order).

    Returns (stops, steps): ``stops`` a list of (global unit index, part, cell index) in walking order,
    as a cycle; ``steps[i]`` the kind of the step from stop i to stop i + 1 (the last closes the
    cycle): UNIT within a building, BUILDING between touching cells of two buildings, JUMP between
    cells that do not touch, PART between parts.
    """
    tours = []
    for g in parts:
        xy = np.array([shapely.get_coordinates(shapely.centroid(s))[0] for s in g.slices])
        adj = np.zeros((len(xy), len(xy)), bool)
        for a, b in g.edges:
            adj[a, b] = adj[b, a] = True
        b_of = np.array([o[0] for o in g.owner])
        # leaving a building costs a little: finish a building before the next one
        extra = (b_of[:, None] != b_of[None, :]) * BUILDING_STEP_M
        tours.append((closed_tour(xy, adj, extra), xy))
    order = [0]  # parts in a chain, each next the nearest to the last one
    centres = np.array([t[1].mean(0) for t in tours])
    while len(order) < len(tours):
        rest = [p for p in range(len(tours)) if p not in order]
        order.append(min(rest, key=lambda p: float(np.hypot(*(centres[p] - centres[order[-1]])))))
    stops = [(part_units[p][c], p, c) for p in order for c in tours[p][0]]
    steps = []
    for (_, p, c), (_, q, d) in zip(stops, stops[1:] + stops[:1]):
        if p != q:
            steps.append(PART)
        elif c == d:  # a cycle of one unit
            steps.append(None)
        else:
            g = parts[p]
            touch = d in g.neighbours[c]
            steps.append(JUMP if not touch else UNIT if g.owner[c][0] == g.owner[d][0] else BUILDING)
    if len(order) == 1 and len(stops) > 1 and steps[-1] == PART:
        steps[-1] = JUMP
    return stops, steps


def rotations(steps: list, limit: int) -> list[int]:
    """Up to ``limit`` places to open the cycle: after every JUMP (opening there removes it), then
    between buildings or parts, then at party walls, each group spread evenly along the walk."""
    n = len(steps)
    picked: list[int] = []
    for group in ((JUMP,), (BUILDING, PART), (UNIT,)):
        at = [(i + 1) % n for i, k in enumerate(steps) if k in group]
        room = limit - len(picked)
        if group != (JUMP,) and len(at) > room > 0:
            at = [at[i] for i in np.unique(np.linspace(0, len(at) - 1, room).round().astype(int))]
        elif room <= 0 and group != (JUMP,):
            at = []
        picked += [a for a in at if a not in picked]
    return picked or [0]
