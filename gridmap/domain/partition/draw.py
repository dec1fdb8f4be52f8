"""Drawing a plan: the ground of each micro-grid from its units' cells (:mod:`.ground`).

A unit held by one grid gives it its whole cell.  A unit split at floors gives its footprint slice to
every grid holding floors of it (their ground overlaps exactly there: the one overlap integrity
allows), and its open ground to the grid that must reach its other units through it: one that does not
reach them all through the party walls of the slice (and from there cell to cell).  When two grids
need it the ground is halved by a line through the slice across the direction between their other
cells; three cannot share it, and the plan is refused.  Every grid must come out in one piece (per
courtyard part: a grid across parts is declared ``multipart``); the outline of each part is the stored
one, so the grids tile it.
"""

from __future__ import annotations

import numpy as np
import shapely

from ... import geo
from .ground import SNAP_M, polygons


def draw(courtyard, seq, blocks, run_of, units, grounds, memo=None):
    """Grid dicts for the assignment ``run_of`` (block -> grid), or None when a grid would not be one
    piece: each with its ground on the local plane (``local``; :func:`finish` makes it storage geometry
    for the plan kept) and its Polsby-Popper there (``pp_local``).  A unit split at floors gives its
    slice to every grid holding floors of it, and its open ground to the grid that must reach other
    units through it: a grid that does not reach them all through its party walls (two such grids: the
    ground is halved across the footprint; three: no plan).  ``memo`` (a dict kept across the plans of one
    courtyard) holds each grid's ground by what it is made of: the cheapest plans of a courtyard share
    some of their grids."""
    memo = {} if memo is None else memo
    stop_of = {s[0]: s for s in seq}
    span: dict[int, list[int]] = {}
    for i, b in enumerate(blocks):
        span.setdefault(b.unit, []).append(i)
    k = int(run_of.max()) + 1
    held = [set() for _ in range(k)]  # grid -> units it holds floors of
    for i, b in enumerate(blocks):
        held[run_of[i]].add(b.unit)
    pieces = [{} for _ in range(k)]  # grid -> part -> [local geometries]
    made_of = [{} for _ in range(k)]  # grid -> part -> [what each geometry is: the memo's key]
    shares = [[] for _ in range(k)]
    for u, idx in span.items():
        _, p, c = stop_of[u]
        g = grounds[p]
        runs = sorted(set(run_of[idx].tolist()), key=lambda r: min(i for i in idx if run_of[i] == r))
        entrance = tuple(shapely.get_coordinates(shapely.centroid(g.slices[c]))[0])
        for r in runs:
            # a unit's floors in floor order (a cycle opened inside the unit has its first floors last)
            mine = sorted((blocks[i] for i in idx if run_of[i] == r), key=lambda b: b.floor_from)
            if any(a.floor_to + 1 != b.floor_from for a, b in zip(mine, mine[1:])):
                return None  # not one range of floors: no share can say it
            shares[r].append((mine[0].floor_from, mine[-1].floor_to, sum(b.households for b in mine), u, entrance))
        if len(runs) == 1:
            pieces[runs[0]].setdefault(p, []).append(g.cells[c])
            made_of[runs[0]].setdefault(p, []).append(("cell", c))
            continue
        for r in runs:
            pieces[r].setdefault(p, []).append(g.slices[c])
            made_of[r].setdefault(p, []).append(("slice", c))
        if g.ground[c].is_empty:
            continue
        walls = {w for w in g.neighbours[c] if g.owner[w][0] == g.owner[c][0]}  # same building: party walls
        needers = []
        for r in runs:
            others = [stop_of[v] for v in held[r] if v != u]
            if others and not _reached_past(g, c, walls, {o[2] for o in others if o[1] == p}):
                needers.append((r, others))
        if len(needers) > 2:
            return None
        if len(needers) == 2 and set(needers[0][1]) == set(needers[1][1]):
            # both grids reach the same units through it (each holds floors of this tower and of that
            # one): the ground is halved along the way there, the lower-numbered grid on the left of
            # the way from the lower-numbered unit, so the halves of the two towers' ground meet side by side
            (ra, oa), (rb, _) = needers
            sign = 1.0 if u < min(o[0] for o in oa) else -1.0
            left, right = _halves_along(g.ground[c], g.slices[c], [grounds[o[1]].cells[o[2]] for o in oa], sign)
            key = frozenset(oa)
            for r, half, side in ((min(ra, rb), left, 0), (max(ra, rb), right, 1)):
                pieces[r][p].append(half)
                made_of[r][p].append(("along", c, side, key))
        elif len(needers) == 2:
            (ra, oa), (rb, ob) = needers
            towards = _halves(
                g.ground[c],
                g.slices[c],
                [grounds[o[1]].cells[o[2]] for o in oa],
                [grounds[o[1]].cells[o[2]] for o in ob],
            )
            pieces[ra][p].append(towards[0])
            pieces[rb][p].append(towards[1])
            reach = (
                frozenset(stop_of[v] for v in held[ra] if v != u),
                frozenset(stop_of[v] for v in held[rb] if v != u),
            )
            made_of[ra][p].append(("half", c, 0, reach))
            made_of[rb][p].append(("half", c, 1, reach))
        else:
            taker = needers[0][0] if needers else runs[0]
            pieces[taker][p].append(g.ground[c])
            made_of[taker][p].append(("ground", c))
    grids = []
    for r in range(k):
        local, area, length = {}, 0.0, 0.0
        for p, geom_list in pieces[r].items():
            key = (p, frozenset(made_of[r][p]))
            if key not in memo:
                merged = polygons(shapely.union_all(geom_list, grid_size=SNAP_M))
                memo[key] = merged[0] if len(merged) == 1 else None
            if memo[key] is None:
                return None
            local[p] = memo[key]
            area += memo[key].area
            length += memo[key].length
        grids.append(
            {
                "code": f"{courtyard}{r + 1:02d}",
                "local": local,
                "multipart": len(local) > 1,
                "pp_local": 4 * np.pi * area / max(length, 1e-9) ** 2,
                "raw_shares": shares[r],
            }
        )
    return grids


def _reached_past(g, c, walls, cells: set) -> bool:
    """Whether a grid holding floors of cell ``c``'s unit, and the units of ``cells`` (of the same
    part), reaches all of them without ``c``'s open ground: through the party walls of ``c``'s slice
    (``walls``) and from there cell to neighbouring cell.  Whole cells stand for what the grid holds
    of each, so a False is sure (the grid is in pieces unless it takes or shares that ground) and a
    True is checked when the grid's ground is unioned."""
    reached = cells & walls
    todo = list(reached)
    while todo:
        for n in g.neighbours[todo.pop()] & cells:
            if n not in reached:
                reached.add(n)
                todo.append(n)
    return bool(reached) and reached == cells


def finish(grids, part_ids, parts_ll, empty_parts, origin=(0.0, 0.0)) -> list:
    """The storage geometry of the drawn plan ``grids`` kept: each grid's ground, back on lon/lat and
    clipped to the stored outline of its part (so the grids tile it exactly); a part without buildings
    (a park across the road) joins the nearest grid."""
    for gr in grids:
        parts = []
        for p, what in gr.pop("local").items():
            ll = shapely.intersection(
                geo.from_local([shapely.transform(what, lambda c: c + origin)])[0], parts_ll[part_ids[p]]
            )
            parts += [q for q in shapely.get_parts(ll) if q.geom_type == "Polygon" and q.area > 0]
        gr["parts"] = parts
    for p in empty_parts:
        near = int(np.argmin([shapely.distance(shapely.union_all(gr["parts"]), parts_ll[p]) for gr in grids]))
        grids[near]["parts"].append(parts_ll[p])
        grids[near]["multipart"] = True
    for gr in grids:
        parts = gr.pop("parts")
        gr["geometry"] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return grids


def _halves_along(ground, slice_, towards: list, sign: float):
    """The open ground of a unit split between two grids that both reach cells ``towards``: cut by the
    line through the slice's centre towards them (``sign`` -1 reverses it); (left, right) of it."""
    c = shapely.get_coordinates(shapely.centroid(slice_))[0]
    d = sign * (shapely.get_coordinates(shapely.centroid(shapely.union_all(towards)))[0] - c)
    return _cut_through(ground, slice_, c, d, along=True)


def _halves(ground, slice_, before: list, after: list):
    """The open ground of a unit split between a grid reaching cells ``before`` and one reaching cells
    ``after``: cut by the line through the slice's centre across the direction between them."""
    c = shapely.get_coordinates(shapely.centroid(slice_))[0]
    d = (
        shapely.get_coordinates(shapely.centroid(shapely.union_all(after)))[0]
        - shapely.get_coordinates(shapely.centroid(shapely.union_all(before)))[0]
    )
    return _cut_through(ground, slice_, c, d, along=False)


def _cut_through(ground, slice_, c, d, *, along: bool):
    """``ground`` cut by a line through ``c``: along direction ``d`` (the part on its left first) or
    across it (the part behind ``c`` first); all to the first when ``d`` is no direction."""
    if np.hypot(*d) < 1e-9:
        return ground, shapely.Polygon()
    d = d / np.hypot(*d)
    v = np.array([-d[1], d[0]])
    x0, y0, x1, y1 = shapely.bounds(shapely.union(ground, slice_))
    reach = 2 * ((x1 - x0) + (y1 - y0)) + 1.0
    if along:
        first = shapely.Polygon([c - d * reach, c + d * reach, c + d * reach + v * reach, c - d * reach + v * reach])
    else:
        first = shapely.Polygon([c + v * reach, c - v * reach, c - v * reach - d * reach, c + v * reach - d * reach])
    return shapely.intersection(ground, first), shapely.difference(ground, first)
