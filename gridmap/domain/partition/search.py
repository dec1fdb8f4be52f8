"""Split a courtyard into micro-grids of 50-70 households (Zhengzhou's rule).

No library holds a two-sided household band while tiling the parent (spopt's max-p has
only a floor, GerryChain needs a fixed number of parts, METIS has no lower bound), so the
partitioner is gridmap's own:

1. **Items.** Each stairwell unit (单元) is one item at its entrance: a building's units sit
   side by side along its long axis, the entrance at the middle of the unit's slice.  A unit
   with more than ``max`` households is split by floors into the fewest chunks of at most
   ``max`` (the report lists them); no other unit is ever split.
2. **How many grids.** With ``H`` households, any ``k`` with ``k*min <= H <= k*max`` can hold
   the band; gridmap takes the one nearest ``H / 60``.  When no ``k`` can (fewer than 50;
   71-99; 141-149 for 50-70) the total is *infeasible* and the policy decides: ``over`` keeps
   one grid above ``max``, ``under`` one below ``min``, ``keep`` (the default) whichever is
   nearer the band.  Every other grid stays in the band.
3. **Recursive bisection with exact counts.** A region holding ``k`` grids is cut by a
   straight line into two regions holding ``k1 = k // 2`` and ``k - k1``, such that each side's
   households fit the sum of its grids' bands (``k1*min <= left <= k1*max`` and likewise on
   the right).  Those windows nest, so every leaf lands in its band.  Cuts are tried in 12
   directions (offset by the seed) at every position between two consecutive entrances whose
   count fits; a cut is kept only if each side's entrances lie in one connected piece (pieces
   without entrances join the neighbour they share an edge with), and the best is the one
   whose two sides are most compact (Polsby-Popper) and nearest the target split.
4. **Fallback.** When straight cuts cannot (coarse units in a row, concave outlines), the courtyard
   is cut into the entrances' Voronoi cells, and sides come from cutting one edge of random
   spanning trees of the cells' adjacency (both sides stay connected); if that fails too, empty
   filler cells between the entrances let a grid reach round another, and a region that no tree cut
   fits gets *subset cuts*: groupings of its units whose household sums fit both sides (a knapsack,
   most compact first), each drawn by joining one side's units through empty cells, so a grid can
   take a unit from across a U (:func:`_subset_cuts`).  Then come the other grid counts that can
   hold the band; when all have failed, each gets one more filler search with the subset cuts first
   in every region of at most ``SUBSET_ITEMS`` units.  Only then do the policy's plans of
   :meth:`Band.plans` come in, and the report says ``units too coarse for the band``.  A grid count
   that no grouping of the units fits by household sums alone is not searched (:func:`_packable`).
   Every search is bounded (``BUDGET``, ``TREES``, ``SUBSET_BUDGET``, ``PACK_STEPS``).
5. **Geometry.** Cuts are straight lines in metres (a plane affine to lon/lat, so they are
   straight in storage too), applied to the stored courtyard itself: the outline's vertices are
   untouched and the pieces tile it exactly.

Quality figures: Polsby-Popper ``4 pi A / P^2`` in EPSG:4547, and a visiting time (see
:class:`VisitModel`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from ... import geo
from ...errors import InputError

POLICIES = ("keep", "over", "under")
#: Cut directions tried per bisection (spread over 180 degrees).
DIRECTIONS = 12


@dataclass(frozen=True)
class Band:
    """The household band of a micro-grid and what to do when a total cannot be split into it."""

    min: int = 50
    max: int = 70
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
        """Whether ``total`` households can be cut into grids all in the band (ignoring unit sizes)."""
        return math.ceil(total / self.max) <= total // self.min

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
                yield [(1, total, float(total))], "over" if total > self.max else "under", "units too coarse for the band"
            return
        k_lo, k_hi = math.ceil(total / self.max), total // self.min
        for k in sorted(range(k_lo, k_hi + 1), key=lambda k: (abs(k - len(leaves)), k)):
            if k != len(leaves):
                yield [(self.min, self.max, total / k)] * k, None, None
        for side in (("over", "under") if self.policy == "keep" else (self.policy,)):
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
        return (tour_length(entrances_m) / self.walk_m_per_min + len(entrances_m) * self.per_entrance_min
                + households * self.per_household_min)


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
            "courtyard": self.courtyard, "households": self.households, "grids": len(self.grids),
            "in_band": self.in_band, "feasible": self.note != "infeasible total" and self.error is None,
            "policy": self.policy, "note": self.note, "split_units": self.split_units, "error": self.error,
            "polsby_popper_median": float(np.median(pp)) if pp else None,
            "visit_minutes_max": float(max(minutes)) if minutes else None,
            "over_time": [g["code"] for g in self.grids if g["over_time"]],
            "micro_grids": [{k: g[k] for k in ("code", "households", "in_band", "polsby_popper", "visit_minutes",
                                               "over_time", "units")} for g in self.grids],
        }


# --- items ---------------------------------------------------------------------------

def unit_entrances(footprint, n: int) -> np.ndarray:
    """Entrances of ``n`` units side by side along the footprint's long axis (n x 2, same CRS).

    Computed on the local metric plane; each is moved into the footprint when its slice's middle
    falls outside (an L-shaped building)."""
    local = geo.to_local([footprint])[0]
    rect = shapely.minimum_rotated_rectangle(local)
    corners = np.asarray(rect.exterior.coords)[:4]
    if len(np.unique(corners.round(9), axis=0)) < 3:  # degenerate footprint: all at one point
        c = local.representative_point()
        pts = np.repeat([[c.x, c.y]], n, axis=0)
    else:
        e1, e2 = corners[1] - corners[0], corners[2] - corners[1]
        long, short = (e1, e2) if np.hypot(*e1) >= np.hypot(*e2) else (e2, e1)
        t = (np.arange(n) + 0.5) / n  # the rectangle is corners[0] + a*e1 + b*e2, a and b in [0, 1]
        pts = corners[0] + t[:, None] * long + 0.5 * short
        inside = shapely.contains_xy(local, pts[:, 0], pts[:, 1])
        if not inside.all():
            rp = local.representative_point()
            pts[~inside] = [rp.x, rp.y]
    out = geo.from_local([shapely.multipoints(pts)])[0]
    return shapely.get_coordinates(out)


def items_of(courtyard: str, outline, buildings: list[BuildingIn], band: Band) -> tuple[list[Item], list[dict]]:
    """The units of ``buildings`` as items (tall units split by floors); raises InputError naming the
    building or unit that cannot be used."""
    if not buildings:
        raise InputError(f"courtyard {courtyard} has no buildings: nothing to partition")
    shapely.prepare(outline)
    items: list[Item] = []
    split: list[dict] = []
    for b in buildings:
        if not b.units:
            raise InputError(f"building {b.code} of courtyard {courtyard} has no units")
        for number, hh in enumerate(b.units, 1):
            if hh is None or hh <= 0:
                raise InputError(f"building {b.code} unit {number} has {hh} households: must be at least 1")
        if not outline.covers(b.footprint):
            outside = shapely.area(geo.to_metric([shapely.difference(b.footprint, outline)]))[0]
            if outside > 1.0:  # 1 m²: the validator's tolerance
                raise InputError(f"building {b.code} lies outside its courtyard {courtyard} "
                                 f"({outside:.0f} m² outside)")
        entrances = unit_entrances(b.footprint, len(b.units))
        for number, (hh, (x, y)) in enumerate(zip(b.units, entrances), 1):
            if not outline.covers(shapely.Point(x, y)):
                p = shapely.intersection(b.footprint, outline).representative_point()
                x, y = p.x, p.y
            if hh <= band.max:
                items.append(Item(b.code, number, int(hh), x, y))
                continue
            parts = math.ceil(hh / band.max)
            sizes = [hh // parts + (1 if i < hh % parts else 0) for i in range(parts)]
            floors = b.floors or parts
            bounds = np.linspace(0, floors, parts + 1).round().astype(int)
            record = {"building": b.code, "unit": number, "households": int(hh), "parts": []}
            spots = _chunk_spots(x, y, parts, outline)
            for i, size in enumerate(sizes):
                f = f"{bounds[i] + 1}-{max(bounds[i + 1], bounds[i] + 1)}"
                items.append(Item(b.code, number, int(size), spots[i][0], spots[i][1], floors=f))
                record["parts"].append({"floors": f, "households": int(size)})
            split.append(record)
    return items, split


def _chunk_spots(x, y, parts, outline) -> list:
    """Distinct stand-in points, 1 m apart, for the floor chunks of one unit, so that a cut can
    put them in different grids (they share the unit's entrance)."""
    origin = geo.to_local([shapely.Point(x, y)])[0]
    step = np.array([0.85, 0.53])  # a slant no cut direction is likely to be perpendicular to
    pts = [(origin.x + (j - (parts - 1) / 2) * step[0], origin.y + (j - (parts - 1) / 2) * step[1])
           for j in range(parts)]
    out = shapely.get_coordinates(geo.from_local([shapely.multipoints(pts)])[0])
    if not shapely.intersects_xy(outline, out[:, 0], out[:, 1]).all():
        return [(x, y)] * parts
    return [tuple(p) for p in out]


# --- geometry helpers ------------------------------------------------------------------

def _metric_normal(angle: float) -> np.ndarray:
    """A direction given in metres, as a normal in storage lon/lat: projections onto it order
    points exactly as the metric direction does (the local plane is affine to lon/lat)."""
    kx, ky = geo.local_scale()
    return np.array([math.cos(angle) * kx, math.sin(angle) * ky])


def _halfplane(region, normal, c):
    """The part of the plane where ``p . normal < c``, as a polygon covering ``region``."""
    x0, y0, x1, y1 = region.bounds
    reach = 4 * ((x1 - x0) + (y1 - y0)) + 1e-6
    u = normal / np.hypot(*normal)
    v = np.array([-u[1], u[0]])
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    on_line = centre + (c - centre @ normal) / (normal @ normal) * normal  # the line's point nearest the centre
    a, b = on_line + v * reach, on_line - v * reach
    return shapely.Polygon([a, b, b - u * reach, a - u * reach])


def _polygons(geom) -> list:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]


def polsby_popper(geoms) -> np.ndarray:
    """4 pi A / P^2 of storage geometries, measured in EPSG:4547 (1 = a circle)."""
    metric = geo.to_metric(np.asarray(geoms, dtype=object))
    p = shapely.length(metric)
    return np.where(p > 0, 4 * math.pi * shapely.area(metric) / np.maximum(p, 1e-12) ** 2, 0.0)


def _pp_local(geom) -> float:
    """Polsby-Popper on the lon/lat plane scaled to metres (for ranking cuts: fast, ~1% off)."""
    kx, ky = geo.local_scale()
    scaled = shapely.transform(geom, lambda c: c * [kx, ky])
    p = scaled.length
    return 4 * math.pi * scaled.area / (p * p) if p > 0 else 0.0


def tour_length(points_m: np.ndarray) -> float:
    """Length of a closed tour over ``points_m`` (metres): nearest neighbour, then 2-opt."""
    n = len(points_m)
    if n < 2:
        return 0.0
    d = np.hypot(*(points_m[:, None, :] - points_m[None, :, :]).transpose(2, 0, 1))
    order = [0]
    left = set(range(1, n))
    while left:
        last = order[-1]
        nxt = min(left, key=lambda j: (d[last, j], j))
        order.append(nxt)
        left.remove(nxt)
    improved = True
    while improved:
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                a, b = order[i - 1], order[i]
                c, e = order[j], order[(j + 1) % n]
                if d[a, c] + d[b, e] < d[a, b] + d[c, e] - 1e-9:
                    order[i:j + 1] = order[i:j + 1][::-1]
                    improved = True
    return float(sum(d[order[i], order[(i + 1) % n]] for i in range(n)))


# --- the bisection ---------------------------------------------------------------------

class _NoCut(Exception):
    pass


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
            raise _NoCut()
    out = []
    for group in (a, b):
        merged = shapely.union_all(group) if len(group) > 1 else group[0]
        merged = shapely.make_valid(merged) if not merged.is_valid else merged
        parts = _polygons(merged)
        if len(parts) != 1:
            raise _NoCut()
        out.append(parts[0])
    return out


#: Cuts tried per region before giving up on it (each tried cut recurses into both sides).
TRIES_PER_REGION = 8


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
            normal = _metric_normal(angle)
            proj = xy @ normal
            order = np.lexsort((np.arange(len(proj)), proj))
            p = proj[order]
            pre = np.cumsum(hh[order])[:-1]
            ok = ((pre >= lo_a) & (pre <= hi_a) & (total - pre >= lo_b) & (total - pre <= hi_b)
                  & (p[1:] - p[:-1] > 1e-12 * (abs(p[1:]) + 1)))
            candidates = np.flatnonzero(ok)
            kept = 0
            for i in candidates[np.argsort(np.abs(pre[candidates] - target), kind="stable")]:
                if kept == 2:
                    break
                c = (p[i] + p[i + 1]) / 2
                try:
                    half = _halfplane(region, normal, c)
                    part_a = _polygons(shapely.intersection(region, half))
                    part_b = _polygons(shapely.difference(region, half))
                    ia, ib = order[:i + 1], order[i + 1:]
                    side_a, side_b = _side(part_a, xy[ia]), _side(part_b, xy[ib])
                    if side_a is None or side_b is None:
                        continue
                    ra, rb = _attach(side_a[0], side_b[0], side_a[1] + side_b[1])
                except (_NoCut, shapely.errors.GEOSException):
                    continue
                score = (1 / max(_pp_local(ra), 1e-6) + 1 / max(_pp_local(rb), 1e-6)
                         + 2 * abs(pre[i] - target) / max(target, 1))
                found.append((score, len(found), ra, ia, rb, ib))
                kept += 1
        found.sort(key=lambda f: f[:2])
        for score, _, ra, ia, rb, ib in found[:TRIES_PER_REGION]:
            yield ra, ia, rb, ib, k1


#: Regions a single bisection attempt may cut (plus four per grid) before it gives up: backtracking
#: is exponential in the worst case, and a plan that needs this many tries is better served by the
#: next plan.
BUDGET = 200
#: The straight cuts get fewer tries (plus two per grid): when they fail, the Voronoi-cell
#: fallback is more flexible.
STRAIGHT_BUDGET = 40


def _bisect(region, xy, hh, idx, leaves, angles, budget=None) -> list:
    """[(region, item indices)] per leaf, or raise _NoCut (backtracking over the best cuts, at most
    ``BUDGET`` regions cut in all)."""
    if len(leaves) == 1:
        return [(region, idx)]
    budget = [BUDGET] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise _NoCut()
    for ra, ia, rb, ib, k1 in _cuts(region, xy[idx], hh[idx], leaves, angles):
        try:
            return (_bisect(ra, xy, hh, idx[ia], leaves[:k1], angles, budget)
                    + _bisect(rb, xy, hh, idx[ib], leaves[k1:], angles, budget))
        except _NoCut:
            if budget[0] < 0:
                raise
            continue
    raise _NoCut()


# --- the fallback: bisection over the entrances' Voronoi cells ---------------------------------

#: Spanning trees drawn per region by the fallback; each gives every cut of the region into two
#: connected sides with one edge.
TREES = 12
#: ... and up to this many for the even split while none has given a cut, drawing on a spare
#: allowance of SPARE_TREES per courtyard.
TREES_MAX = 200
SPARE_TREES = 1500


class _Cells:
    """The courtyard cut into one Voronoi cell per entrance (clipped to the courtyard; a cell's
    pieces cut off by a concave outline join the neighbour they share the longest edge with),
    and which cells share an edge.  Any connected set of cells unions to one polygon, and the
    cells tile the stored outline, so every grouping of connected cells is a valid tiling."""

    def __init__(self, outline, pts_ll):
        local = geo.to_local([outline])[0]
        pts = geo.to_local([shapely.multipoints(pts_ll)])[0]
        self.xy = shapely.get_coordinates(pts)
        cells_local = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=local, ordered=True))
        cells = shapely.intersection(geo.from_local(cells_local), outline)
        own, orphans = [], []
        for i, cell in enumerate(cells):
            parts = _polygons(cell)
            if not parts:
                raise _NoCut()
            x, y = pts_ll[i]
            holder = next((q for q in parts if shapely.intersects_xy(q, x, y)), max(parts, key=lambda q: q.area))
            own.append([holder])
            orphans += [q for q in parts if q is not holder]
        for piece in sorted(orphans, key=lambda q: -q.area):
            merged = [shapely.union_all(o) for o in own]
            shared = shapely.length(shapely.intersection(piece.boundary, shapely.boundary(np.array(merged, dtype=object))))
            own[int(np.argmax(shared))].append(piece)
        self.geoms = [shapely.union_all(o) if len(o) > 1 else o[0] for o in own]
        tree = shapely.STRtree(self.geoms)
        a, b = tree.query(self.geoms, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        g = np.array(self.geoms, dtype=object)
        shared = shapely.length(shapely.intersection(shapely.boundary(g[a]), shapely.boundary(g[b])))
        edge = shared > 1e-7  # degrees: about a centimetre of shared edge, not a corner touch
        self.edges = np.column_stack([a[edge], b[edge]])


def _adjacency(cells, idx):
    """The adjacency of the cell subset ``idx`` in local numbering: (edge ends a, b, cell points,
    edge lengths in metres + 1), or None when no two of its cells touch."""
    pos = {int(c): i for i, c in enumerate(idx)}
    sub = [(pos[a], pos[b]) for a, b in cells.edges if a in pos and b in pos]
    if not sub:
        return None
    ea, eb = np.array(sub).T
    xy = cells.xy[idx]
    return ea, eb, xy, np.hypot(*(xy[ea] - xy[eb]).T) + 1.0


def _tree_cuts(cells, idx, hh, leaves, rng, spare):
    """Cuts of the cell set ``idx`` into two connected sides fitting leaves[:k1] and leaves[k1:],
    best first: (idx_a, idx_b, k1).  Sides come from cutting one edge of a spanning tree of the
    cells' adjacency (random edge weights scaled by length, so trees favour short links)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

    n = len(idx)
    graph = _adjacency(cells, idx)
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
        yield from _subset_cuts(cells, idx, hh, leaves, budget[2])
    tried = False
    for cut in _tree_cuts(cells, idx, hh, leaves, rng, budget[1]):
        tried = True
        yield cut
    if subsets == "fallback" and not tried:
        yield from _subset_cuts(cells, idx, hh, leaves, budget[2])


def _graph_bisect(cells, idx, hh, leaves, rng, budget, subsets="none") -> list:
    """[cell indices] per leaf, or raise _NoCut (``subsets``: see :func:`_cell_cuts`)."""
    if len(leaves) == 1:
        return [idx]
    budget[0] -= 1
    if budget[0] < 0:
        raise _NoCut()
    for ia, ib, k1 in _cell_cuts(cells, idx, hh, leaves, rng, budget, subsets):
        try:
            return (_graph_bisect(cells, ia, hh, leaves[:k1], rng, budget, subsets)
                    + _graph_bisect(cells, ib, hh, leaves[k1:], rng, budget, subsets))
        except _NoCut:
            if budget[0] < 0:
                raise
    raise _NoCut()


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
# Plans whose household sums cannot fit the band whatever the geometry (:func:`_packable`) are not
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
        cand[h[i]:] = best[:hi + 1 - h[i]] + cost[i]
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
    from scipy.sparse.csgraph import connected_components, dijkstra

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


def _subset_cuts(cells, idx, hh, leaves, spare):
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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    n = len(idx)
    w = hh[idx]
    items = np.flatnonzero(w > 0)
    m = len(items)
    if m < 2 or m > SUBSET_ITEMS or spare[0] <= 0:
        return
    adjacency = _adjacency(cells, idx)
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


#: Empty cells added per entrance by the last fallback (see :func:`_by_cells`).
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


def _by_cells(region, xy, hh, leaves, seed, fillers=False, subsets="none") -> list:
    """The fallback partition: [(polygon, item indices)] per leaf, or raise _NoCut.

    With ``fillers``, empty cells between the entrances let a grid reach round another one, so any
    grouping of units the band allows can be drawn with both sides contiguous (at some cost in
    compactness, which the cut's score still weighs)."""
    pts, inverse = np.unique(xy, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    if len(pts) < len(leaves):
        raise _NoCut()
    if len(leaves) == 1:
        return [(region, np.arange(len(xy)))]
    rng = np.random.default_rng(seed)
    if fillers:
        pts = np.vstack([pts, _fillers(region, pts, rng)])
    cells = _Cells(region, pts)
    cell_hh = np.bincount(inverse, weights=hh, minlength=len(pts)).astype(np.int64)
    budget = [BUDGET + 4 * len(leaves), [SPARE_TREES], [SUBSET_BUDGET]]
    groups = _graph_bisect(cells, np.arange(len(pts)), cell_hh, leaves, rng, budget, subsets)
    out = []
    for g in groups:
        parts = _polygons(shapely.union_all([cells.geoms[i] for i in g]))
        if len(parts) != 1:
            raise _NoCut()
        out.append((parts[0], np.flatnonzero(np.isin(inverse, g))))
    return out


#: Steps the exact check of household sums (:func:`_packable`) may take before it gives up (and the
#: search runs anyway).
PACK_STEPS = 10000


def _packable(hh, leaves, steps=PACK_STEPS) -> bool:
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


def _search(region, xy, hh, leaves, angles, seed):
    """The usual search for one plan: straight cuts, then the cells, then the cells with fillers
    (subset cuts only in regions no tree cut fits); None when all fail."""
    try:
        return _bisect(region, xy, hh, np.arange(len(xy)), leaves, angles,
                       [STRAIGHT_BUDGET + 2 * len(leaves)])
    except _NoCut:
        pass
    for fillers, subsets in ((False, "none"), (True, "fallback")):
        try:
            return _by_cells(region, xy, hh, leaves, seed, fillers, subsets)
        except _NoCut:
            continue
    return None


def partition(courtyard: str, outline, buildings: list[BuildingIn], band: Band = Band(), *, seed: int = 0,
              visit: VisitModel = VisitModel()) -> Plan:
    """Propose micro-grids for one courtyard (storage lon/lat).  Bad input raises InputError; a
    courtyard that cannot be cut keeps a Plan with ``error`` set."""
    parts = _polygons(outline)
    if len(parts) != 1:
        raise InputError(f"courtyard {courtyard} is not one polygon ({len(parts)} parts): cannot tile it "
                         "with contiguous micro-grids")
    region = parts[0]
    items, split = items_of(courtyard, region, buildings, band)
    hh = np.array([it.households for it in items], dtype=np.int64)
    xy = np.array([[it.x, it.y] for it in items], dtype="float64")
    total = int(hh.sum())
    plan = Plan(courtyard, total, split_units=split)
    offset = (seed * 0.6180339887) % 1.0 * math.pi / DIRECTIONS
    angles = [offset + math.pi * i / DIRECTIONS for i in range(DIRECTIONS)]
    pieces, failed = None, []  # failed: the plans that keep every grid in the band, when they failed
    for leaves, policy, note in band.plans(total):
        if policy is not None and failed:
            # every grid count that keeps the band has failed the usual search: before giving a grid up,
            # search them again with the subset cuts first in every small region (see _subset_cuts)
            for kept in failed:
                try:
                    pieces = _by_cells(region, xy, hh, kept, seed, fillers=True, subsets="first")
                    plan.policy, plan.note = None, None
                    break
                except _NoCut:
                    continue
            failed = []
            if pieces is not None:
                break
        if policy is None and not _packable(hh, leaves):
            continue  # no grouping of the units fits these grids: nothing to search
        pieces = _search(region, xy, hh, leaves, angles, seed)
        if pieces is not None:
            plan.policy, plan.note = policy, note
            break
        if policy is None:
            failed.append(leaves)
    if pieces is None:
        plan.error = ("no straight-cut partition keeps the grids contiguous and at most one out of the band "
                      f"({len(items)} units, {total} households)")
        return plan
    # order grids along the courtyard (south-west first) so codes read naturally
    keyed = sorted(pieces, key=lambda p: (round(p[0].centroid.y, 6), round(p[0].centroid.x, 6)))
    pp = polsby_popper([p for p, _ in keyed])
    for n, ((geom, idx), ppv) in enumerate(zip(keyed, pp), 1):
        households = int(hh[idx].sum())
        entrances = np.unique(xy[idx], axis=0)
        metric = shapely.get_coordinates(geo.to_metric([shapely.multipoints(entrances)])[0])
        minutes = visit.minutes(metric, households)
        plan.grids.append({
            "code": f"{courtyard}{n:02d}", "households": households, "geometry": geom,
            "in_band": band.min <= households <= band.max, "polsby_popper": round(float(ppv), 3),
            "visit_minutes": round(minutes, 1), "over_time": minutes > visit.limit_min,
            "units": sorted(f"{items[i].building}/{items[i].unit}" + (f"@{items[i].floors}" if items[i].floors else "")
                            for i in idx),
        })
    return plan
