"""Micro-grids of a compound in three dimensions: whole buildings, whole units, or floors of a unit.

A micro-grid is its ground *and* its share of the buildings on it.  :func:`plan`:

1. cuts the courtyard into one cell per unit (:mod:`.ground`: footprints sliced at party walls, the
   open ground to the nearest slice), per part of a courtyard cut by a road;
2. walks the units in two orders (a closed tour and a Hilbert curve, :mod:`.route`), each opened at up
   to ``ROTATIONS`` places, and cuts every walk into runs at least cost (:mod:`.floors`: households
   outside the band first, then grids across parts, floor cuts, party-wall cuts, balance; units of at
   most ``max`` households whole, taller ones at any floor);
3. moves units across grid borders where the walk could not reach a grouping (:mod:`.repair`);
4. draws the ``DRAWN`` cheapest distinct plans (:mod:`.draw`: every grid one piece, several only across
   parts, then declared ``multipart``; a ground drawn before is not unioned again) and keeps the
   cheapest with compactness counted, cut from the stored outline (:func:`.draw.finish`);
5. when that plan leaves households out of the band and the total is feasible
   (:func:`..levels.band_holds`), does 2-4 again with every unit by floors (a unit of 45 households over
   15 floors may give floors 1-8 to one grid and 9-15 to the next), and keeps that plan only if it leaves
   fewer households out of the band: a small unit is split when, and only when, the band takes it.

The search stops after ``budget_s`` seconds with the best plan drawn so far.  A courtyard whose total
can be split is never left as one grid: the cut always yields the plan nearest the band.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import shapely

from ... import geo
from ...errors import InputError
from ..levels import HOUSEHOLD_BAND, band_holds
from . import route
from .draw import draw, finish
from .floors import DEFAULT_WEIGHTS, JUMP, Unit, Weights, blocks_of, cut, even_floors, out_of_band, rejoin
from .geometry import polsby_popper
from .ground import Ground
from .repair import repair

#: Places to open each walk at (each a full cut of the sequence) ...
ROTATIONS = 8
#: ... and distinct plans drawn of the cheapest cuts, the best kept with compactness counted.
DRAWN = 8
#: When whole units and floors cut at unit boundaries leave households out of the band, the pass by
#: floors opens the cycle inside units too, on a walk of at most this many floors ...
OPEN_AT_EVERY_FLOOR = 160
#: ... at most this many places inside units, spread evenly along it.
FLOOR_OPENINGS = 24
#: Cost of a grid's shape: this many times (1 / Polsby-Popper - 1), so a grid of PP 0.5 costs as much
#: as one floor cut, or 100 households of distance from the band's middle (see floors.Weights).
COMPACTNESS = 100


@dataclass(frozen=True)
class Building:
    """A building of the courtyard: code, footprint (storage lon/lat) and its units, unit 1 first."""

    code: str
    footprint: object
    units: tuple[Unit, ...]

    @classmethod
    def from_totals(cls, code: str, footprint, households: list[int], floors: int | None):
        """A building known only by its units' households and its height (floors spread evenly)."""
        height = floors or max(1, -(-max(households) // 2))  # unknown height: two flats a floor
        return cls(code, footprint, tuple(Unit(code, n, even_floors(h, height)) for n, h in enumerate(households, 1)))


@dataclass(frozen=True)
class Share:
    """Floors ``floor_from..floor_to`` of one unit, held by one micro-grid."""

    building: str
    unit: int
    floor_from: int
    floor_to: int
    households: int


@dataclass(frozen=True)
class Stairs:
    """Minutes of the visit model that come from height: a floor climbed (and come down) costs
    ``per_floor_min`` for every unit share, up to its top floor."""

    per_floor_min: float = 0.3

    def minutes(self, shares) -> float:
        return self.per_floor_min * sum(s.floor_to - 1 for s in shares)


DEFAULT_STAIRS = Stairs()


@dataclass
class CompoundPlan:
    courtyard: str
    households: int
    grids: list = field(default_factory=list)  # dicts: code, households, geometry, shares, multipart, ...
    cost: float = 0.0
    rotations_tried: int = 0  # cuts of the walks computed
    seconds: float = 0.0  # wall time
    cpu_seconds: float = 0.0  # this process's CPU time: what the plan costs on a machine others share
    error: str | None = None

    def figures(self, band_min: int, band_max: int) -> dict:
        """What a street office reads: grids and households in band, households out of band, units split
        by floor, buildings shared, the largest grid."""
        sizes = [g["households"] for g in self.grids]
        holders: dict = {}
        for g in self.grids:
            for s in g["shares"]:
                holders.setdefault((s.building, s.unit), set()).add(g["code"])
                holders.setdefault((s.building,), set()).add(g["code"])
        in_band = [band_min <= h <= band_max for h in sizes]
        return {
            "grids": len(sizes),
            "grids_in_band": int(sum(in_band)),
            "households_in_band": int(sum(h for h, ok in zip(sizes, in_band) if ok)),
            "households_out_of_band": int(sum(h for h, ok in zip(sizes, in_band) if not ok)),
            "distance_from_band": out_of_band(sizes, band_min, band_max),
            "units_split_by_floor": sum(1 for k, v in holders.items() if len(k) == 2 and len(v) > 1),
            "buildings_shared": sum(1 for k, v in holders.items() if len(k) == 1 and len(v) > 1),
            "largest_grid": max(sizes) if sizes else 0,
            "multipart": sum(1 for g in self.grids if g["multipart"]),
        }


def _check(courtyard, parts_ll, buildings) -> None:
    if not buildings:
        raise InputError(f"courtyard {courtyard} has no buildings: nothing to partition")
    whole = shapely.union_all(parts_ll)
    for b in buildings:
        if b.footprint is None or b.footprint.is_empty or b.footprint.area <= 0:
            raise InputError(f"building {b.code} of courtyard {courtyard} has an empty footprint")
        if not b.units:
            raise InputError(f"building {b.code} of courtyard {courtyard} has no units")
        for u in b.units:
            if u.households <= 0 or min(u.floor_households) < 0:
                raise InputError(
                    f"unit {u.number} of building {b.code} has {u.households} households "
                    f"({list(u.floor_households)} by floor)"
                )
        if not shapely.intersects(whole, b.footprint.representative_point()):
            raise InputError(f"building {b.code} lies outside its courtyard {courtyard}")


def plan(
    courtyard: str,
    outline,
    buildings: list[Building],
    band_min: int = HOUSEHOLD_BAND[0],
    band_max: int = HOUSEHOLD_BAND[1],
    policy: str = "keep",
    *,
    budget_s: float = 8.0,
    weights: Weights = DEFAULT_WEIGHTS,
    visit=None,
    stairs: Stairs = DEFAULT_STAIRS,
    rotations: int = ROTATIONS,
    drawn: int = DRAWN,
    small_by_floors: bool = True,
) -> CompoundPlan:
    """Propose micro-grids for one courtyard (storage lon/lat).  Bad input raises InputError naming the
    building or unit; a courtyard whose grids cannot be drawn comes back with ``error`` set.
    ``rotations`` and ``drawn`` trade search for speed (the demo generator takes fewer);
    ``small_by_floors=False`` never splits a unit of at most ``band_max`` households (step 5 off)."""
    t0, c0 = time.perf_counter(), time.process_time()
    parts_ll = [p for p in shapely.get_parts(outline) if p.geom_type == "Polygon" and p.area > 0]
    _check(courtyard, parts_ll, buildings)
    units = [u for b in buildings for u in b.units]
    first_unit = np.cumsum([0] + [len(b.units) for b in buildings])
    total = int(sum(u.households for u in units))
    out = CompoundPlan(courtyard, total)
    # the local plane, moved to the courtyard: small coordinates keep the snapping of cell unions exact
    origin = shapely.get_coordinates(shapely.centroid(geo.to_local([parts_ll[0]])[0]))[0]
    parts_local = shapely.transform(geo.to_local(parts_ll), lambda c: c - origin)
    feet_local = shapely.transform(geo.to_local([b.footprint for b in buildings]), lambda c: c - origin)
    home = [int(np.argmax(shapely.area(shapely.intersection(parts_local, f)))) for f in feet_local]
    grounds, part_u, empty_parts = [], [], []
    for p, part in enumerate(parts_local):
        mine = [i for i, h in enumerate(home) if h == p]
        if not mine:
            empty_parts.append(p)
            continue
        grounds.append(Ground(part, [feet_local[i] for i in mine], [len(buildings[i].units) for i in mine]))
        part_u.append([u for i in mine for u in range(first_unit[i], first_unit[i + 1])])
    part_ids = [p for p in range(len(parts_local)) if p not in empty_parts]
    # every cell of every part under one number, for the cut's one-piece test across jumps
    offset = np.cumsum([0] + [len(g.cells) for g in grounds])
    neighbours = [{int(offset[p] + m) for m in nb} for p, g in enumerate(grounds) for nb in g.neighbours]
    walks = [route.tour(grounds, part_u), route.hilbert(grounds, part_u)]
    cell_of = {u: int(offset[p] + c) for u, p, c in walks[0]}
    space = _Space(courtyard, units, grounds, part_ids, parts_ll, empty_parts, origin, walks, cell_of, neighbours, {})
    args = (band_min, band_max, policy, weights, rotations, drawn)
    best, tried = _search(space, *args, whole_max=band_max, t0=t0, budget_s=budget_s)
    out.rotations_tried = tried
    if small_by_floors and (best is None or best[2] > 0) and band_holds(total, band_min, band_max):
        # whole units of at most ``max`` households cannot bring every grid into the band: cut again with
        # every unit by floors, and keep that plan only when it leaves fewer households out of the band
        # (so a small unit is split by floors when, and only when, that is what the band takes)
        split, tried = _search(space, *args, whole_max=0, t0=t0, budget_s=budget_s, started=time.perf_counter())
        out.rotations_tried += tried
        if split is not None and (best is None or split[2] < best[2]):
            best = split
    if best is not None:
        out.grids = finish(best[1], part_ids, parts_ll, empty_parts, origin)
        out.cost = best[0]
    if not out.grids:
        out.error = (
            f"no plan of its {len(units)} units ({total} households) keeps every grid in one piece "
            f"({out.rotations_tried} cuts tried in {time.perf_counter() - t0:.1f} s)"
        )
    else:
        _measure(out, units, visit, stairs, band_min, band_max, origin)
    out.seconds = round(time.perf_counter() - t0, 3)
    out.cpu_seconds = round(time.process_time() - c0, 3)
    return out


@dataclass(frozen=True)
class _Space:
    """What every cut of one courtyard shares: its units, ground cells, walks and adjacency."""

    courtyard: str
    units: list
    grounds: list
    part_ids: list
    parts_ll: list
    empty_parts: list
    origin: object
    walks: list
    cell_of: dict
    neighbours: list
    drawn: dict  # the grounds drawn so far (draw's memo)


def _search(sp, band_min, band_max, policy, weights, rotations, drawn, *, whole_max, t0, budget_s, started=None):
    """Cut every walk of ``sp`` at up to ``rotations`` places, repair and draw the cheapest distinct cuts;
    units of at most ``whole_max`` households are whole blocks (0: every unit by floors, units the cut
    keeps whole made whole again; when the best plan drawn so still leaves households out of the band,
    the walks are opened inside units too, at most FLOOR_OPENINGS places each, and their cuts drawn
    the same way).  Returns ((score, grids, households out of band) of the best drawn
    plan or None, cuts computed).  Cutting stops halfway from ``started`` (default ``t0``) to the
    deadline ``t0 + budget_s``; drawing at the deadline, but never before one plan is drawn."""
    started = t0 if started is None else started
    halfway = started + max(t0 + budget_s - started, 0.0) / 2
    units = sp.units
    candidates = []
    n_blocks = sum(1 if u.households <= whole_max else u.floors for u in units)
    rotations = max(min(3, rotations), min(rotations, rotations * 120 // max(n_blocks, 1)))  # fewer: long walk
    walks = []  # (stops, cycle of blocks, kinds between them, openings) of each walk
    for stops in sp.walks:
        steps = route.steps_of(stops, sp.grounds)
        cycle, kinds = blocks_of(units, [s[0] for s in stops], band_max, steps[:-1], whole_max)
        kinds.append(steps[-1] if steps[-1] is not None else JUMP)  # the step closing the cycle
        first = np.cumsum([0] + [1 if units[s[0]].households <= whole_max else units[s[0]].floors for s in stops])
        walks.append((stops, cycle, kinds, [int(first[r]) for r in route.rotations(steps, rotations)]))

    order = itertools.count()  # ties in cost go to the cut made first

    def open_at(stops, cycle, kinds, openings, into: list) -> bool:
        """Cut the cycle opened at each of ``openings`` into ``into``; False once halfway is past."""
        for q in openings:
            blocks = cycle[q:] + cycle[:q]
            hh = [b.households for b in blocks]
            cells = [sp.cell_of[b.unit] for b in blocks]
            starts, cost = cut(
                hh, (kinds[q:] + kinds[:q])[:-1], band_min, band_max, policy, weights, cells, sp.neighbours
            )
            into.append((cost, next(order), stops, blocks, starts))
            if time.perf_counter() > halfway:
                return False
        return True

    attempted: set = set()

    def draw_cheapest(cuts: list, best):
        """Repair and draw the cheapest of ``cuts`` (up to DRAWN distinct plans, the budget allowing,
        never none when one draws); the better of ``best`` and the best drawn."""
        seen = set()
        for _cost, _, seq, blocks, starts in sorted(cuts, key=lambda c: c[:2]):
            # stop at the budget or after DRAWN plans drawn, but never before one is drawn: a courtyard
            # always gets a plan when one of the cuts draws
            if best is not None and (time.perf_counter() - t0 > budget_s or len(seen) >= drawn):
                break
            run_of = np.cumsum(np.isin(np.arange(len(blocks)), starts[1:]))
            if whole_max < band_max:
                blocks, run_of = rejoin(blocks, run_of, units, band_max)
            run_of = repair(blocks, run_of, [sp.cell_of[b.unit] for b in blocks], sp.neighbours, band_min, band_max)
            key = frozenset(
                frozenset((b.unit, b.floor_from) for b, r in zip(blocks, run_of) if r == k)
                for k in range(int(run_of.max()) + 1)
            )
            if key in attempted:
                continue
            attempted.add(key)
            grids = draw(sp.courtyard, seq, blocks, run_of, units, sp.grounds, sp.drawn)
            if grids is not None:
                seen.add(key)
                score = _score(grids, blocks, run_of, units, band_min, band_max, weights)
                if best is None or score < best[0]:
                    size = np.bincount(run_of, weights=[b.households for b in blocks])
                    best = (score, grids, out_of_band(size, band_min, band_max))
        return best

    on_time = all([open_at(*walk, candidates) for walk in walks])
    best = draw_cheapest(candidates, None)
    if on_time and whole_max == 0 and (best is None or best[2] > 0):
        # the pass by floors, and still households out of the band: each cycle opened inside its units
        # too, so that a run can end with a unit's first floors and the next begin with its last (101
        # households in units of 45, 3 a floor, and 56, 4 a floor, are 50 + 51 only as floors 2-15
        # and 1-2, then 3-14 and 1).  Only here: on every courtyard of the pass it took 45 % more CPU
        inner_cuts: list = []
        for stops, cycle, kinds, openings in walks:
            if len(cycle) > OPEN_AT_EVERY_FLOOR:
                continue
            opened = set(openings)
            inner = [q for q in range(len(cycle)) if q not in opened]
            if len(inner) > FLOOR_OPENINGS:
                spread = np.linspace(0, len(inner) - 1, FLOOR_OPENINGS).round().astype(int)
                inner = [inner[i] for i in np.unique(spread)]
            if not open_at(stops, cycle, kinds, inner, inner_cuts):
                break
        best = draw_cheapest(inner_cuts, best)
        candidates += inner_cuts
    return best, len(candidates)


def _score(grids, blocks, run_of, units, band_min, band_max, weights) -> float:
    """The cost of a drawn plan: the cut's terms recounted after repair (households out of band, grids
    across parts, floor cuts, party-wall cuts, balance) plus COMPACTNESS per grid for its shape."""
    size = np.bincount(run_of, weights=[b.households for b in blocks]).astype(np.int64)
    grids_of_unit: dict = {}
    grids_of_building: dict = {}
    for b, r in zip(blocks, run_of):
        grids_of_unit.setdefault(b.unit, set()).add(int(r))
        grids_of_building.setdefault(units[b.unit].building, set()).add(int(r))
    floor_cuts = sum(len(v) - 1 for v in grids_of_unit.values())
    wall_cuts = max(sum(len(v) - 1 for v in grids_of_building.values()) - floor_cuts, 0)
    pp = np.array([g["pp_local"] for g in grids])
    return float(
        weights.out_of_band * out_of_band(size, band_min, band_max)
        + weights.part_crossing * sum(g["multipart"] for g in grids)
        + weights.floor_cut * floor_cuts
        + weights.unit_cut * wall_cuts
        + weights.balance * np.abs(size - (band_min + band_max) / 2).sum()
        + COMPACTNESS * (1 / np.maximum(pp, 1e-3) - 1).sum()
    )


def _measure(out: CompoundPlan, units, visit, stairs, band_min, band_max, origin):
    """Shares, households, Polsby-Popper and visit minutes of every grid of ``out``."""

    pp = polsby_popper([g["geometry"] for g in out.grids])
    for g, ppv in zip(out.grids, pp):
        raw = sorted(g.pop("raw_shares"), key=lambda s: (s[3], s[0]))
        g["shares"] = [Share(units[u].building, units[u].number, f0, f1, h) for f0, f1, h, u, _ in raw]
        g["households"] = int(sum(s.households for s in g["shares"]))
        g["in_band"] = band_min <= g["households"] <= band_max
        g["polsby_popper"] = round(float(ppv), 3)
        g["units"] = [
            f"{s.building}/{s.unit}"
            + ("" if (s.floor_from, s.floor_to) == (1, units[u].floors) else f"@{s.floor_from}-{s.floor_to}")
            for s, (*_, u, _) in zip(g["shares"], raw)
        ]
        entrances = np.array([e for *_, e in raw])
        metric = shapely.get_coordinates(geo.to_metric(geo.from_local([shapely.multipoints(entrances + origin)]))[0])
        minutes = visit.minutes(np.unique(metric, axis=0), g["households"]) if visit is not None else 0.0
        minutes += stairs.minutes(g["shares"])
        g["visit_minutes"] = round(float(minutes), 1)
        g["over_time"] = bool(visit is not None and minutes > visit.limit_min)


__all__ = ["Building", "CompoundPlan", "Share", "Stairs", "plan"]
