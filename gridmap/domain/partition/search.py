"""One courtyard's search: the plans of the band in order, each through straight cuts, then the
cells, then the cells with fillers and subset cuts."""

from __future__ import annotations

import math

import numpy as np
import shapely

from ... import geo
from ...errors import InputError
from .geometry import NoCut, polsby_popper, polygons
from .items import items_of
from .model import DIRECTIONS, Band, BuildingIn, Plan, VisitModel
from .straight import STRAIGHT_BUDGET, bisect
from .subsets import packable
from .trees import by_cells


def _search(region, xy, hh, leaves, angles, seed):
    """The usual search for one plan: straight cuts, then the cells, then the cells with fillers
    (subset cuts only in regions no tree cut fits); None when all fail."""
    try:
        return bisect(region, xy, hh, np.arange(len(xy)), leaves, angles, [STRAIGHT_BUDGET + 2 * len(leaves)])
    except NoCut:
        pass
    for fillers, subsets in ((False, "none"), (True, "fallback")):
        try:
            return by_cells(region, xy, hh, leaves, seed, fillers, subsets)
        except NoCut:
            continue
    return None


def partition(
    courtyard: str,
    outline,
    buildings: list[BuildingIn],
    band: Band = Band(),
    *,
    seed: int = 0,
    visit: VisitModel = VisitModel(),
) -> Plan:
    """Propose micro-grids for one courtyard (storage lon/lat).  Bad input raises InputError; a
    courtyard that cannot be cut keeps a Plan with ``error`` set."""
    parts = polygons(outline)
    if len(parts) != 1:
        raise InputError(
            f"courtyard {courtyard} is not one polygon ({len(parts)} parts): cannot tile it with contiguous micro-grids"
        )
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
            # search them again with the subset cuts first in every small region (see subset_cuts)
            for kept in failed:
                try:
                    pieces = by_cells(region, xy, hh, kept, seed, fillers=True, subsets="first")
                    plan.policy, plan.note = None, None
                    break
                except NoCut:
                    continue
            failed = []
            if pieces is not None:
                break
        if policy is None and not packable(hh, leaves):
            continue  # no grouping of the units fits these grids: nothing to search
        pieces = _search(region, xy, hh, leaves, angles, seed)
        if pieces is not None:
            plan.policy, plan.note = policy, note
            break
        if policy is None:
            failed.append(leaves)
    if pieces is None:
        plan.error = (
            "no straight-cut partition keeps the grids contiguous and at most one out of the band "
            f"({len(items)} units, {total} households)"
        )
        return plan
    # order grids along the courtyard (south-west first) so codes read naturally
    keyed = sorted(pieces, key=lambda p: (round(p[0].centroid.y, 6), round(p[0].centroid.x, 6)))
    pp = polsby_popper([p for p, _ in keyed])
    for n, ((geom, idx), ppv) in enumerate(zip(keyed, pp), 1):
        households = int(hh[idx].sum())
        entrances = np.unique(xy[idx], axis=0)
        metric = shapely.get_coordinates(geo.to_metric([shapely.multipoints(entrances)])[0])
        minutes = visit.minutes(metric, households)
        plan.grids.append(
            {
                "code": f"{courtyard}{n:02d}",
                "households": households,
                "geometry": geom,
                "in_band": band.min <= households <= band.max,
                "polsby_popper": round(float(ppv), 3),
                "visit_minutes": round(minutes, 1),
                "over_time": minutes > visit.limit_min,
                "units": sorted(
                    f"{items[i].building}/{items[i].unit}" + (f"@{items[i].floors}" if items[i].floors else "")
                    for i in idx
                ),
            }
        )
    return plan
