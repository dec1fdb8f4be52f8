"""The last fallback: subset cuts (which units go together first, then where the line runs), and
the check of household sums alone (:func:`packable`)."""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from ... import geo
from .cells import cell_adjacency
from .geometry import TRIES_PER_REGION

# --- the last fallback: which units go together first, then where the line runs ---------------
#
# Straight cuts and spanning-tree cuts both choose a *line* (or tree edge) and take whatever units
# fall on each side, so a grouping that needs one unit taken "across" another (a U-shaped courtyard
# whose only groupings into 50-53 / 50-53 put one end unit of one arm with the far building) is
# never drawn: no line separates those units and random trees almost never isolate it.  This search
# turns the order round.  It lists groupings whose household sums fit both windows (a subset-sum,
# solved by dynamic programming), most compact first, and only then draws each one on the cell graph
# with filler cells: one side's units joined by shortest paths through empty cells (a Steiner tree
# grown greedily, never entering a cell of the other side's units), the rest left to the other side
# if it is still in one piece, then empty cells moved across the border toward the nearer units'
# side while both sides stay connected.  The two-sided windows are what no library handles (spopt's
# max-p has only a floor, GerryChain's tree cuts are the random trees above), hence hand-written.
#
# It runs where the usual search gives up, so the searches that already succeed are untouched: in the
# filler pass for a region no tree cut fits, and, when every grid count that keeps the band has
# failed, in one more filler pass per such count with the subset cuts tried first (see partition()).
# Plans whose household sums cannot fit the band whatever the geometry (:func:`packable`) are not
# searched at all.

#: Regions with more units than this skip the subset search (a region that large has room for
#: the straight and tree cuts, and the search's work grows with the cube of the unit count).
SUBSET_ITEMS = 24
#: Groupings the subset search tries to draw per region ...
SUBSET_TRIES = 24
#: ... and per courtyard in all (each draw is a few shortest-path searches over the cells).
SUBSET_BUDGET = 150


def _knapsack(h, cost, lo, hi) -> list:
    """For each sum ``s`` in ``lo..hi`` some subset reaches, the subset (bool mask over the items)
    with sum ``s`` and the least total ``cost``: a 0/1 knapsack over the sums (households are small
    integers, so the table is at most items x hi)."""
    m = len(h)
    best = np.full(hi + 1, np.inf)
    best[0] = 0.0
    take = np.zeros((m, hi + 1), bool)
    for i in range(m):
        if h[i] > hi:
            continue
        cand = np.full(hi + 1, np.inf)
        cand[h[i] :] = best[: hi + 1 - h[i]] + cost[i]
        take[i] = cand < best - 1e-9
        best = np.where(take[i], cand, best)
    out = []
    for s in range(max(lo, 0), hi + 1):
        if not np.isfinite(best[s]):
            continue
        mask, t = np.zeros(m, bool), s
        for i in range(m - 1, -1, -1):
            if take[i, t]:
                mask[i] = True
                t -= h[i]
        out.append(mask)
    return out


def _splittable(h, leaves) -> bool:
    """Whether households ``h`` can be cut, by sums alone, into sides for some k1 of ``leaves`` (one
    level of look-ahead: a grouping whose side fails this can never be cut further, so it is not drawn)."""
    if len(leaves) == 1:
        return leaves[0][0] <= int(h.sum()) <= leaves[0][1]
    reach = 1  # bit s: some subset sums to s
    for v in h.tolist():
        reach |= reach << v
    total = int(h.sum())
    for k1 in range(1, len(leaves)):
        lo = max(sum(lv[0] for lv in leaves[:k1]), total - sum(lv[1] for lv in leaves[k1:]))
        hi = min(sum(lv[1] for lv in leaves[:k1]), total - sum(lv[0] for lv in leaves[k1:]))
        if lo <= hi and (reach >> lo) & ((1 << (hi - lo + 1)) - 1):
            return True
    return False


def _connected(nbrs, members: set) -> bool:
    """Whether the cells ``members`` form one piece of the adjacency ``nbrs``."""
    if not members:
        return False
    start = next(iter(members))
    seen, stack = {start}, [start]
    while stack:
        u = stack.pop()
        for v in nbrs[u]:
            if v in members and v not in seen:
                seen.add(v)
                stack.append(v)
    return len(seen) == len(members)


def _draw(graph, nbrs, dist, items, side_a, leave_room):
    """Two connected sides of the region's cells (bool mask, True on side A) putting ``items[side_a]``
    on side A and the other units on side B, or None.

    Side S (A, then B when that fails) is grown from its first unit by adding, one at a time, the
    nearest of its units still out by the shortest path from what it holds, through cells other than
    the other side's units (``leave_room`` makes the cells next to those dearer, so the path leaves
    them a way out); the other side takes the rest if its units are in one piece of it, and cells cut
    off from both join S (they can only touch S).  Then empty cells on the border move to the side
    whose units are nearer (by path length), as long as the side they leave stays connected: the
    border settles like a Voronoi edge between the two groups."""
    n = graph.shape[0]
    is_item = np.zeros(n, bool)
    is_item[items] = True
    for a_first in (True, False):
        own, other = (items[side_a], items[~side_a]) if a_first else (items[~side_a], items[side_a])
        allowed = np.ones(n, bool)
        allowed[other] = False
        keep = np.flatnonzero(allowed)
        g = graph[keep][:, keep].tocsr()
        if leave_room:  # entering a cell next to the other side's units costs three times its length
            near = np.zeros(n, bool)
            for o in other:
                near[nbrs[o]] = True
            g = g.multiply(np.where(near[keep], 3.0, 1.0)[None, :]).tocsr()
        local = {int(c): i for i, c in enumerate(keep)}
        tree = {local[int(own[0])]}
        remaining = {local[int(o)] for o in own[1:]}
        while remaining:
            d, pred = dijkstra(g, indices=sorted(tree), min_only=True, return_predecessors=True)[:2]
            reach = sorted(r for r in remaining if np.isfinite(d[r]))
            if not reach:
                break
            v = min(reach, key=lambda r: (d[r], r))
            while v not in tree:
                tree.add(v)
                v = pred[v]
            remaining -= tree
        if remaining:
            continue
        in_s = np.zeros(n, bool)
        in_s[keep[sorted(tree)]] = True
        rest = np.flatnonzero(~in_s)
        _, comp = connected_components(graph[rest][:, rest], directed=False)
        comp_of = dict(zip(rest.tolist(), comp.tolist()))
        home = {comp_of[int(o)] for o in other}
        if len(home) != 1:
            continue  # S's paths cut the other side's units apart
        (home,) = home
        mask = np.ones(n, bool)  # True: side S
        mask[rest[comp == home]] = False
        if not a_first:
            mask = ~mask
        break
    else:
        return None
    # let empty cells follow the nearer units, keeping both sides in one piece
    d_a = dist[side_a].min(0)
    d_b = dist[~side_a].min(0)
    for _ in range(n):
        moved = False
        pull = np.where(mask, d_a - d_b, d_b - d_a)  # > 0: the cell's own side's units are farther
        for c in np.argsort(-pull, kind="stable"):
            if pull[c] <= 1e-9:
                break
            if is_item[c] or all(mask[v] == mask[c] for v in nbrs[c]):
                continue
            same = set(np.flatnonzero(mask == mask[c]).tolist())
            same.discard(int(c))
            if not _connected(nbrs, same):
                continue
            mask[c] = not mask[c]
            moved = True
        if not moved:
            break
    return mask


def subset_cuts(cells, idx, hh, leaves, spare):
    """Cuts of the cell set ``idx`` into two connected sides fitting leaves[:k1] and leaves[k1:],
    found from the units' groupings rather than from a line: (idx_a, idx_b, k1), most compact first.

    Candidate groupings come from one knapsack per ordered pair of units (p, q): a unit's cost of
    joining side A is its squared path length to p minus that to q (two centres, Lloyd-style), so
    each gives, per household sum in A's window, the grouping that best splits the region round p
    and q.  Path lengths run through the cells, so they go round a concave outline rather than across
    it.  Groupings whose sides cannot be cut further by sums (:func:`_splittable`) are dropped; the
    rest are ranked by the sides' spread (mean squared path length within a side, as the tree cuts'
    moments) and the distance from the target split, and drawn by :func:`_draw` in that order, at most
    SUBSET_TRIES per region and ``spare`` per courtyard, until TRIES_PER_REGION are drawn.  The drawn
    cuts are yielded best first by the straight cuts' score (Polsby-Popper of the sides)."""
    n = len(idx)
    w = hh[idx]
    items = np.flatnonzero(w > 0)
    m = len(items)
    if m < 2 or m > SUBSET_ITEMS or spare[0] <= 0:
        return
    adjacency = cell_adjacency(cells, idx)
    if adjacency is None:
        return
    ea, eb, xy, length = adjacency
    graph = coo_matrix((np.r_[length, length], (np.r_[ea, eb], np.r_[eb, ea])), shape=(n, n)).tocsr()
    nbrs = [[] for _ in range(n)]
    for a, b in zip(ea.tolist(), eb.tolist()):
        nbrs[a].append(b)
        nbrs[b].append(a)
    dist = dijkstra(graph, indices=items)  # m x n metres along the cells
    if not np.isfinite(dist).all():
        return  # not connected
    d2 = dist[:, items] ** 2
    h = w[items].astype(np.int64)
    # cell areas, perimeters and shared edges on the lon/lat plane scaled to metres (for ranking)
    kx, ky = geo.local_scale()
    scaled = shapely.transform(np.array([cells.geoms[i] for i in idx], dtype=object), lambda c: c * [kx, ky])
    area, perimeter = shapely.area(scaled), shapely.length(scaled)
    shared = shapely.intersection(shapely.boundary(scaled[ea]), shapely.boundary(scaled[eb]))
    edge_len = shapely.length(shared)
    total = int(h.sum())
    base = d2.sum() / (2 * m * m) + 1e-9

    def spread(mask):
        k = int(mask.sum())
        return d2[np.ix_(mask, mask)].sum() / (2 * k * k) if k > 1 else 0.0

    k = len(leaves)
    for k1 in [k // 2] + [k1 for k1 in range(1, k) if k1 != k // 2]:
        lo_a, hi_a = sum(lv[0] for lv in leaves[:k1]), sum(lv[1] for lv in leaves[:k1])
        lo_b, hi_b = sum(lv[0] for lv in leaves[k1:]), sum(lv[1] for lv in leaves[k1:])
        target = sum(lv[2] for lv in leaves[:k1])
        lo, hi = max(lo_a, total - hi_b), min(hi_a, total - lo_b)
        if lo > hi:
            continue
        # with the same leaves on both sides a grouping and its complement are one cut: keep one
        mirror = leaves[:k1] == leaves[k1:]
        found = {}
        for p in range(m):
            for q in range(m):
                if p == q:
                    continue
                for mask in _knapsack(h, d2[p] - d2[q], lo, hi):
                    if mirror and not mask[0]:
                        mask = ~mask
                    key = mask.tobytes()
                    if key not in found and mask.any() and not mask.all():
                        if not (_splittable(h[mask], leaves[:k1]) and _splittable(h[~mask], leaves[k1:])):
                            found[key] = None
                            continue
                        off = 2 * abs(int(h[mask].sum()) - target) / max(target, 1)
                        found[key] = ((spread(mask) + spread(~mask)) / base + off, len(found), mask)
        drawn = {}
        for _, _, mask in sorted((f for f in found.values() if f), key=lambda f: f[:2])[:SUBSET_TRIES]:
            if spare[0] <= 0 or len(drawn) == TRIES_PER_REGION:
                break
            spare[0] -= 1
            for leave_room in (True, False):
                side = _draw(graph, nbrs, dist, items, mask, leave_room)
                if side is not None:
                    break
            if side is None or side.tobytes() in drawn:
                continue
            # the unit positions cannot tell a clean grouping from one that must snake round a unit
            # of the other side, so the drawn sides are ranked as straight cuts are: by Polsby-Popper
            # (from the cells' areas and edges) and the distance from the target split
            outer = [perimeter[s].sum() - 2 * edge_len[s[ea] & s[eb]].sum() for s in (side, ~side)]
            pp = [4 * math.pi * area[s].sum() / max(p, 1e-9) ** 2 for s, p in zip((side, ~side), outer)]
            a_w = int(h[mask].sum())
            score = sum(1 / max(v, 1e-6) for v in pp) + 2 * abs(a_w - target) / max(target, 1)
            drawn[side.tobytes()] = (score, len(drawn), side)
        for _, _, side in sorted(drawn.values(), key=lambda f: f[:2])[:TRIES_PER_REGION]:
            yield idx[side], idx[~side], k1
        if drawn:  # the most even split that works; other splits only when it cannot
            return


#: Empty cells added per entrance by the last fallback (see :func:`by_cells`).

PACK_STEPS = 10000


def packable(hh, leaves, steps=PACK_STEPS) -> bool:
    """Whether households ``hh`` can be put into len(leaves) grids each within its leaf's band, by sums
    alone; True when that is not settled within ``steps``.  A plan that fails it cannot be drawn whatever
    the geometry, so no search is spent on it.  Depth-first, largest household count first, each into
    the emptiest grid first (so the first descent is the greedy LPT packing, which settles almost every
    feasible case at once), grids alike so far tried once, cut off when what is left cannot lift every
    grid to its floor."""
    h = sorted((int(v) for v in hh), reverse=True)
    lo = [lv[0] for lv in leaves]
    hi = [lv[1] for lv in leaves]
    if not sum(lo) <= sum(h) <= sum(hi):
        return False
    fill = [0] * len(leaves)
    rest = [0] * (len(h) + 1)
    for i in range(len(h) - 1, -1, -1):
        rest[i] = rest[i + 1] + h[i]
    left = [steps]

    def place(i, deficit):
        left[0] -= 1
        if left[0] < 0:
            raise OverflowError
        if deficit > rest[i]:
            return False
        if i == len(h):
            return True
        tried = set()
        for j in sorted(range(len(fill)), key=lambda j: (fill[j], j)):
            state = (fill[j], lo[j], hi[j])
            if fill[j] + h[i] > hi[j] or state in tried:
                continue
            tried.add(state)
            lift = min(h[i], max(lo[j] - fill[j], 0))
            fill[j] += h[i]
            ok = place(i + 1, deficit - lift)
            fill[j] -= h[i]
            if ok:
                return True
        return False

    try:
        return place(0, sum(lo))
    except (OverflowError, RecursionError):
        return True
