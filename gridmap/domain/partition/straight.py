"""Straight cuts: recursive bisection by lines in 12 directions with nested household windows."""

from __future__ import annotations

import numpy as np
import shapely

from .geometry import BUDGET, TRIES_PER_REGION, NoCut, halfplane, metric_normal, polygons, pp_local

# --- the bisection ---------------------------------------------------------------------


def _side(region_parts, item_xy):
    """The one part holding every item, plus the parts holding none; None when items are spread."""
    if not len(item_xy):
        return None
    holder = None
    for i, part in enumerate(region_parts):
        inside = shapely.intersects_xy(part, item_xy[:, 0], item_xy[:, 1])
        if inside.all():
            holder = i
            break
        if inside.any():
            return None
    if holder is None:
        return None
    return region_parts[holder], [p for i, p in enumerate(region_parts) if i != holder]


def _attach(main_a, main_b, leftovers):
    """Give each piece without entrances to the main piece it shares an edge with."""
    a, b = [main_a], [main_b]
    pending = list(leftovers)
    while pending:
        progress = False
        for piece in list(pending):
            shared_a = shapely.length(shapely.intersection(piece.boundary, shapely.union_all(a).boundary))
            shared_b = shapely.length(shapely.intersection(piece.boundary, shapely.union_all(b).boundary))
            if max(shared_a, shared_b) <= 0:
                continue
            (a if shared_a >= shared_b else b).append(piece)
            pending.remove(piece)
            progress = True
        if not progress:
            raise NoCut()
    out = []
    for group in (a, b):
        merged = shapely.union_all(group) if len(group) > 1 else group[0]
        merged = shapely.make_valid(merged) if not merged.is_valid else merged
        parts = polygons(merged)
        if len(parts) != 1:
            raise NoCut()
        out.append(parts[0])
    return out


def _cuts(region, xy, hh, leaves, angles):
    """Cuts of ``region`` (holding items ``xy`` with households ``hh``) between leaves[:k1] and
    leaves[k1:], best first: (region_a, idx_a, region_b, idx_b, k1)."""
    k = len(leaves)
    total = hh.sum()
    for k1 in [k // 2] + [k1 for k1 in range(1, k) if k1 != k // 2]:
        lo_a = sum(lv[0] for lv in leaves[:k1])
        hi_a = sum(lv[1] for lv in leaves[:k1])
        lo_b = sum(lv[0] for lv in leaves[k1:])
        hi_b = sum(lv[1] for lv in leaves[k1:])
        target = sum(lv[2] for lv in leaves[:k1])
        found = []
        for angle in angles:
            normal = metric_normal(angle)
            proj = xy @ normal
            order = np.lexsort((np.arange(len(proj)), proj))
            p = proj[order]
            pre = np.cumsum(hh[order])[:-1]
            ok = (
                (pre >= lo_a)
                & (pre <= hi_a)
                & (total - pre >= lo_b)
                & (total - pre <= hi_b)
                & (p[1:] - p[:-1] > 1e-12 * (abs(p[1:]) + 1))
            )
            candidates = np.flatnonzero(ok)
            kept = 0
            for i in candidates[np.argsort(np.abs(pre[candidates] - target), kind="stable")]:
                if kept == 2:
                    break
                c = (p[i] + p[i + 1]) / 2
                try:
                    half = halfplane(region, normal, c)
                    part_a = polygons(shapely.intersection(region, half))
                    part_b = polygons(shapely.difference(region, half))
                    ia, ib = order[: i + 1], order[i + 1 :]
                    side_a, side_b = _side(part_a, xy[ia]), _side(part_b, xy[ib])
                    if side_a is None or side_b is None:
                        continue
                    ra, rb = _attach(side_a[0], side_b[0], side_a[1] + side_b[1])
                except (NoCut, shapely.errors.GEOSException):
                    continue
                score = (
                    1 / max(pp_local(ra), 1e-6)
                    + 1 / max(pp_local(rb), 1e-6)
                    + 2 * abs(pre[i] - target) / max(target, 1)
                )
                found.append((score, len(found), ra, ia, rb, ib))
                kept += 1
        found.sort(key=lambda f: f[:2])
        for _score, _, ra, ia, rb, ib in found[:TRIES_PER_REGION]:
            yield ra, ia, rb, ib, k1


#: The straight cuts get fewer tries (plus two per grid): when they fail, the Voronoi-cell
#: fallback is more flexible.
STRAIGHT_BUDGET = 40


def bisect(region, xy, hh, idx, leaves, angles, budget=None) -> list:
    """[(region, item indices)] per leaf, or raise NoCut (backtracking over the best cuts, at most
    ``BUDGET`` regions cut in all)."""
    if len(leaves) == 1:
        return [(region, idx)]
    budget = [BUDGET] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise NoCut()
    for ra, ia, rb, ib, k1 in _cuts(region, xy[idx], hh[idx], leaves, angles):
        try:
            return bisect(ra, xy, hh, idx[ia], leaves[:k1], angles, budget) + bisect(
                rb, xy, hh, idx[ib], leaves[k1:], angles, budget
            )
        except NoCut:
            if budget[0] < 0:
                raise
            continue
    raise NoCut()
