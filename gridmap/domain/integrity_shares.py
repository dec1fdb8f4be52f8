"""Integrity of micro-grids in three dimensions: floors, shares, shared footprints, one piece.

A micro-grid is its ground and its share of the buildings on it (``grid_share`` rows: floors
``floor_from..floor_to`` of one unit, with their households).  On top of the plane rules of
:mod:`.integrity` these hold for the version valid now:

``floor_unassigned``   floors of a unit in no micro-grid
``floor_twice``        floors of a unit in more than one micro-grid
``share_households``   a share whose households differ from its floors' (``unit.floor_households``)
``share_unknown``      a share naming a unit or floors that do not exist
``share_off_ground``   a share of a building whose footprint the grid's ground does not reach, or in a
                       courtyard other than the grid's
``grid_households``    a micro-grid whose households differ from the sum of its shares
``disconnected``       a grid in several pieces that is not declared ``multipart`` (a courtyard cut by
                       a public road may hold a grid of two parts: ``grid.multipart = true``, set by
                       the partitioner across parts or on import with a ``multipart`` column)

and siblings may overlap only on the footprint of a building they share (:func:`allowed_overlap`).
Households add up floors -> shares -> micro-grids here, micro-grids -> courtyards in :mod:`.integrity`.
Pieces smaller than the tolerance (m², EPSG:4547) are not pieces: a grid whose second part is 0.3 m²
of overlay noise is one piece.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import shapely

from .. import geo
from .integrity import DEFAULT_TOLERANCE_M2, Problem


@dataclass(frozen=True)
class UnitFloors:
    building: str
    courtyard: str
    number: int
    floor_households: tuple[int, ...]

    @property
    def floors_count(self) -> int:
        return len(self.floor_households)


def _ranges(floors: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out, start = [], None
    for i, f in enumerate(floors):
        if start is None:
            start = f
        if i + 1 == len(floors) or floors[i + 1] != f + 1:
            out.append(f"{start}" if start == f else f"{start}-{f}")
            start = None
    return ", ".join(out)


def check_shares(
    units: list[UnitFloors], shares: list[tuple], grids: dict[str, dict], footprints: dict[str, object] | None = None
) -> list[Problem]:
    """Problems of the shares of micro-grids.

    Parameters
    ----------
    units : every current unit with its floors' households.
    shares : (grid code, building, unit, floor_from, floor_to, households) rows of current micro-grids.
    grids : current micro-grids by code: ``households``, ``parent_code``, ``geometry`` (lon/lat).
    footprints : current building footprints by code (lon/lat), to check shares stand on their grid.
    """
    problems: list[Problem] = []
    by_unit = {(u.building, u.number): u for u in units}
    holders: dict = defaultdict(lambda: defaultdict(list))  # unit -> floor -> grids
    sums: dict = defaultdict(int)
    for code, building, number, f0, f1, hh in shares:
        u = by_unit.get((building, number))
        where = f"share of {code} in unit {number} of building {building}"
        if u is None or not (1 <= f0 <= f1 <= u.floors_count):
            known = f"floors 1-{u.floors_count}" if u else "no such unit"
            problems.append(Problem("share_unknown", [code, building], f"{where}, floors {f0}-{f1}: {known}"))
            continue
        for f in range(f0, f1 + 1):
            holders[(building, number)][f].append(code)
        want = int(sum(u.floor_households[f0 - 1 : f1]))
        if want != hh:
            problems.append(
                Problem(
                    "share_households",
                    [code, building],
                    f"{where}, floors {f0}-{f1}: {hh} households, its floors hold {want}",
                )
            )
        sums[code] += hh
        g = grids.get(code)
        if g is not None and g.get("parent_code") != u.courtyard:
            problems.append(
                Problem(
                    "share_off_ground",
                    [code, building],
                    f"{where}: the building is in courtyard {u.courtyard}, the grid in {g.get('parent_code')}",
                )
            )
        elif (
            g is not None
            and footprints
            and building in footprints
            and not shapely.intersects(g["geometry"], footprints[building])
        ):
            problems.append(
                Problem("share_off_ground", [code, building], f"{where}: the grid's ground does not reach the building")
            )
    for key, u in by_unit.items():
        floors = holders.get(key, {})
        missing = [f for f in range(1, u.floors_count + 1) if not floors.get(f) and u.floor_households[f - 1] > 0]
        twice = defaultdict(list)
        for f, codes in floors.items():
            if len(codes) > 1:
                twice[tuple(sorted(codes))].append(f)
        if missing:
            problems.append(
                Problem(
                    "floor_unassigned",
                    [u.building],
                    f"floors {_ranges(missing)} of unit {u.number} of building {u.building} "
                    f"({sum(u.floor_households[f - 1] for f in missing)} households) are in no "
                    "micro-grid",
                )
            )
        for codes, fl in twice.items():
            problems.append(
                Problem(
                    "floor_twice",
                    [u.building, *codes],
                    f"floors {_ranges(sorted(fl))} of unit {u.number} of building {u.building} are "
                    f"in {len(codes)} micro-grids: {', '.join(codes)}",
                )
            )
    for code, g in grids.items():
        if code in sums and sums[code] != g["households"]:
            problems.append(
                Problem(
                    "grid_households",
                    [code],
                    f"micro-grid {code} has {g['households']} households, its shares {sums[code]}",
                )
            )
    return problems


def check_connected(codes, geoms, multipart, tolerance: float = DEFAULT_TOLERANCE_M2) -> list[Problem]:
    """Grids in more than one piece (pieces over ``tolerance`` m²) that are not declared multipart."""
    geoms = np.asarray(geoms, dtype=object)
    counts = shapely.get_num_geometries(geoms)
    out = []
    for i in np.flatnonzero((counts > 1) & ~np.asarray(multipart, dtype=bool)):
        parts = shapely.get_parts(geoms[i])
        areas = geo.area_m2(parts)
        real = parts[areas > tolerance]
        if len(real) > 1:
            small = real[np.argsort(-areas[areas > tolerance])][1:]
            point = shapely.point_on_surface(small[0])
            out.append(
                Problem(
                    "disconnected",
                    [codes[i]],
                    f"grid {codes[i]} is in {len(real)} separate pieces (the smaller ones "
                    f"{', '.join(f'{a:.1f}' for a in sorted(geo.area_m2(small), reverse=True))} m²) and is "
                    "not declared multipart",
                    float(geo.area_m2(small).sum()),
                    (point.x, point.y),
                    shapely.multipolygons(list(small)),
                )
            )
    return out


def allowed_overlap(shares_a: set[str], shares_b: set[str], footprints: dict[str, object]):
    """Where two sibling micro-grids may overlap: the footprints of the buildings both hold floors of
    (lon/lat), or an empty polygon."""
    both = sorted(shares_a & shares_b)
    feet = [footprints[b] for b in both if b in footprints]
    return shapely.union_all(feet) if feet else shapely.Polygon()


def shared_footprints(held, footprints: dict) -> dict:
    """{(code_a, code_b) sorted: the footprints of the buildings both micro-grids hold floors of}, from
    ``held``: (grid code, building code) pairs, one per share or more; ``footprints``: lon/lat by
    building code.  The overlaps siblings may have (:func:`gridmap.domain.integrity.validate`)."""
    by_building: dict[str, set[str]] = {}
    for code, building in held:
        by_building.setdefault(building, set()).add(code)
    out: dict = {}
    for building, codes in by_building.items():
        if len(codes) < 2 or building not in footprints:
            continue
        codes = sorted(codes)
        for i, a in enumerate(codes):
            for b in codes[i + 1 :]:
                feet = footprints[building]
                out[(a, b)] = shapely.union(out[(a, b)], feet) if (a, b) in out else feet
    return out
