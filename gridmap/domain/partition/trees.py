"""The fallback: bisection over the entrances' Voronoi cells by cutting one edge of random
spanning trees of their adjacency (both sides stay connected), optionally with empty filler cells."""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from ... import geo
from .cells import Cells, cell_adjacency
from .geometry import BUDGET, TRIES_PER_REGION, NoCut, polygons
from .subsets import SUBSET_BUDGET, subset_cuts

# --- the fallback: bisection over the entrances' Voronoi cells ---------------------------------

#: Spanning trees drawn per region by the fallback; each gives every cut of the region into two
#: connected sides with one edge.
TREES = 12
#: ... and up to this many for the even split while none has given a cut, drawing on a spare
#: allowance of SPARE_TREES per courtyard.
TREES_MAX = 200
SPARE_TREES = 1500


def _tree_cuts(cells, idx, hh, leaves, rng, spare):
    """Cuts of the cell set ``idx`` into two connected sides fitting leaves[:k1] and leaves[k1:],
    best first: (idx_a, idx_b, k1).  Sides come from cutting one edge of a spanning tree of the
    cells' adjacency (random edge weights scaled by length, so trees favour short links)."""
    n = len(idx)
    graph = cell_adjacency(cells, idx)
    if graph is None:
        return
    ea, eb, xy, length = graph
    w = hh[idx].astype(float)
    total = w.sum()
    base = ((xy - xy.mean(0)) ** 2).sum(1).mean() + 1e-9
    found = {}
    k = len(leaves)
    for k1 in [k // 2] + [k1 for k1 in range(1, k) if k1 != k // 2]:
        lo_a, hi_a = sum(lv[0] for lv in leaves[:k1]), sum(lv[1] for lv in leaves[:k1])
        lo_b, hi_b = sum(lv[0] for lv in leaves[k1:]), sum(lv[1] for lv in leaves[k1:])
        target = sum(lv[2] for lv in leaves[:k1])
        for tree in range(TREES_MAX if k1 == k // 2 else TREES):
            if tree >= TREES and (found or spare[0] <= 0):
                break
            if tree >= TREES:
                spare[0] -= 1
            weights = length * rng.uniform(1.0, 2.0, len(length))
            mst = minimum_spanning_tree(coo_matrix((weights, (ea, eb)), shape=(n, n)))
            order, parent = breadth_first_order(mst, 0, directed=False)
            if len(order) != n:
                return  # not connected: no cut can keep both sides whole
            below = w.copy()
            for v in order[:0:-1]:
                below[parent[v]] += below[v]
            children = [[] for _ in range(n)]
            for v in order[1:]:
                children[parent[v]].append(v)
            for v in order[1:]:
                for side_a_is_sub in (True, False):
                    a_w = below[v] if side_a_is_sub else total - below[v]
                    if not (lo_a <= a_w <= hi_a and lo_b <= total - a_w <= hi_b):
                        continue
                    stack, members = [v], []
                    while stack:
                        u = stack.pop()
                        members.append(u)
                        stack += children[u]
                    mask = np.zeros(n, bool)
                    mask[members] = True
                    if not side_a_is_sub:
                        mask = ~mask
                    key = (k1, mask.tobytes())
                    if key in found:
                        continue
                    # compactness: the sides' moments of inertia (cells stand for area), against the region's
                    spread = sum(((xy[m] - xy[m].mean(0)) ** 2).sum(1).mean() for m in (mask, ~mask)) / base
                    found[key] = (spread + 2 * abs(a_w - target) / max(target, 1), len(found), mask, k1)
        if found:  # the most even split that works; other splits only when it cannot
            break
    for _, _, mask, k1 in sorted(found.values(), key=lambda f: f[:2])[:TRIES_PER_REGION]:
        yield idx[mask], idx[~mask], k1


def _cell_cuts(cells, idx, hh, leaves, rng, budget, subsets):
    """The cuts of a region: its tree cuts, and its subset cuts as ``subsets`` says: "none", never;
    "fallback", only when no tree cut fits the region at all, where the tree search alone would give
    the region up (cheap: most searches never get there); "first", before the tree cuts (the last
    try of a plan, see partition())."""
    if subsets == "first":
        yield from subset_cuts(cells, idx, hh, leaves, budget[2])
    tried = False
    for cut in _tree_cuts(cells, idx, hh, leaves, rng, budget[1]):
        tried = True
        yield cut
    if subsets == "fallback" and not tried:
        yield from subset_cuts(cells, idx, hh, leaves, budget[2])


def graph_bisect(cells, idx, hh, leaves, rng, budget, subsets="none") -> list:
    """[cell indices] per leaf, or raise NoCut (``subsets``: see :func:`_cell_cuts`)."""
    if len(leaves) == 1:
        return [idx]
    budget[0] -= 1
    if budget[0] < 0:
        raise NoCut()
    for ia, ib, k1 in _cell_cuts(cells, idx, hh, leaves, rng, budget, subsets):
        try:
            return graph_bisect(cells, ia, hh, leaves[:k1], rng, budget, subsets) + graph_bisect(
                cells, ib, hh, leaves[k1:], rng, budget, subsets
            )
        except NoCut:
            if budget[0] < 0:
                raise
    raise NoCut()


FILLERS_PER_ENTRANCE = 12


def _fillers(region, entrances, rng) -> np.ndarray:
    """Points on a jittered lattice inside ``region`` (lon/lat), about FILLERS_PER_ENTRANCE per
    entrance and none within 3 m of one."""
    local = geo.to_local([region])[0]
    ent = shapely.get_coordinates(geo.to_local([shapely.multipoints(entrances)])[0])
    step = max(math.sqrt(local.area / (FILLERS_PER_ENTRANCE * len(entrances))), 5.0)
    x0, y0, x1, y1 = local.bounds
    gx, gy = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step))
    pts = np.column_stack([gx.ravel(), gy.ravel()]) + rng.uniform(-step / 4, step / 4, (gx.size, 2))
    pts = pts[shapely.contains_xy(local, pts[:, 0], pts[:, 1])]
    if len(pts):
        near = ((pts[:, None, :] - ent[None, :, :]) ** 2).sum(-1).min(1) < 9.0
        pts = pts[~near]
    if not len(pts):
        return np.empty((0, 2))
    return shapely.get_coordinates(geo.from_local([shapely.multipoints(pts)])[0])


def by_cells(region, xy, hh, leaves, seed, fillers=False, subsets="none") -> list:
    """The fallback partition: [(polygon, item indices)] per leaf, or raise NoCut.

    With ``fillers``, empty cells between the entrances let a grid reach round another one, so any
    grouping of units the band allows can be drawn with both sides contiguous (at some cost in
    compactness, which the cut's score still weighs)."""
    pts, inverse = np.unique(xy, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    if len(pts) < len(leaves):
        raise NoCut()
    if len(leaves) == 1:
        return [(region, np.arange(len(xy)))]
    rng = np.random.default_rng(seed)
    if fillers:
        pts = np.vstack([pts, _fillers(region, pts, rng)])
    cells = Cells(region, pts)
    cell_hh = np.bincount(inverse, weights=hh, minlength=len(pts)).astype(np.int64)
    budget = [BUDGET + 4 * len(leaves), [SPARE_TREES], [SUBSET_BUDGET]]
    groups = graph_bisect(cells, np.arange(len(pts)), cell_hh, leaves, rng, budget, subsets)
    out = []
    for g in groups:
        parts = polygons(shapely.union_all([cells.geoms[i] for i in g]))
        if len(parts) != 1:
            raise NoCut()
        out.append((parts[0], np.flatnonzero(np.isin(inverse, g))))
    return out


#: Steps the exact check of household sums (:func:`packable`) may take before it gives up (and the
#: search runs anyway).
