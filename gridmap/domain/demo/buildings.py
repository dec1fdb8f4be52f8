"""Buildings of a demo courtyard as Zhengzhou builds them: slab estates, mid-rises, tower estates, villas.

Each courtyard gets one kind of estate (or a mix of towers and slabs), drawn so that about half of all
households live in towers, as in the city today:

=============  ===========  =====================  =====================  ===================
kind           floors       units a building       households a floor     footprint a unit
=============  ===========  =====================  =====================  ===================
``slab``       6-7          2-5                    2                      13 m x 11 m
``midrise``    11-18        1-3                    2-4                    16 m x 14 m
``tower``      26-33        2-3                    2-4                    18 m x 16 m
``villa``      2-3          1 (one household)      1 on the ground floor  11 m x 11 m
=============  ===========  =====================  =====================  ===================

Buildings stand in rows along the courtyard's long axis, spaced by a sunlight gap that grows with
height, inside the courtyard shrunk by ``MARGIN_M``; where the rows have no room left the rest are
placed at random free spots, shrinking as they must.  Buildings are whole: they are added while the total
stays nearer the courtyard's target, the rest in lower slabs, so a courtyard holds about its target.
Units are tuples of households per floor, ground floor first (:class:`..partition.floors.Unit`).
Everything is on the local metric plane (``geo.to_local``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from ... import geo
from ..stored_geometry import densify

#: Open ground kept along the courtyard's edge (metres).
MARGIN_M = 4.0


@dataclass(frozen=True)
class Kind:
    name: str
    floors: tuple[int, int]
    units: tuple[int, int]
    per_floor: tuple[int, int]
    unit_size: tuple[float, float]  # width along the building, depth (metres)


KINDS = {
    "slab": Kind("slab", (6, 7), (2, 5), (2, 2), (13.0, 11.0)),
    "midrise": Kind("midrise", (11, 18), (1, 3), (2, 4), (16.0, 14.0)),
    "tower": Kind("tower", (26, 33), (2, 3), (2, 4), (18.0, 16.0)),
    "villa": Kind("villa", (2, 3), (1, 1), (1, 1), (11.0, 11.0)),
}
#: Estate kinds by share of courtyards, from small to large totals (towers hold the big ones).
ESTATES = (("villa", 0.04), ("slab", 0.18), ("midrise", 0.12), ("mixed", 0.12), ("tower", 0.54))


def estate_kind(households: int, rng) -> str:
    """The kind of estate of a courtyard of ``households``: villas only when small, towers more likely
    the larger it is (towers hold about half the households of the city)."""
    names = [k for k, _ in ESTATES]
    w = np.array([p for _, p in ESTATES])
    if households > 150:
        w[0] = 0.0
    w[-1] *= 1.0 + min(households / 100.0, 4.0)
    return str(rng.choice(names, p=w / w.sum()))


def _building(kind: Kind, rng) -> tuple[list[tuple[int, ...]], int]:
    """One building of ``kind``: (its units' households per floor, floors)."""
    floors = int(rng.integers(kind.floors[0], kind.floors[1] + 1))
    if kind.name == "villa":
        return [(1,) + (0,) * (floors - 1)], floors
    n_units = int(rng.integers(kind.units[0], kind.units[1] + 1))
    per = int(rng.integers(kind.per_floor[0], kind.per_floor[1] + 1))  # one floor plan for the building
    return [(per,) * floors for _ in range(n_units)], floors


#: The next lower kind of estate, for a courtyard too small for one building of its kind.
LOWER = {"tower": "midrise", "mixed": "midrise", "midrise": "slab"}


def households_plan(target: int, estate: str, rng) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """Whole buildings (kind, units, floors) of an ``estate`` holding about ``target`` households: they
    are added while the total stays nearer the target than without them, the rest in lower blocks; a
    courtyard too small for even one building of its kind gets the next lower kind."""
    out, total = [], 0
    while True:
        if estate == "mixed":
            name = "tower" if target - total > 150 and rng.random() < 0.6 else "slab"
        else:
            name = estate
        units, floors = _building(KINDS[name], rng)
        size = sum(sum(u) for u in units)
        if not out and size > 1.45 * target and estate in LOWER:
            estate = LOWER[estate]
            continue
        if out and abs(target - total - size) >= abs(target - total):
            if estate in LOWER and target - total >= 24:  # the rest in lower blocks
                estate = "slab"
                continue
            return out
        out.append((name, units, floors))
        total += size


def _rect(cx, cy, w, h, angle):
    c, s = math.cos(angle), math.sin(angle)
    pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return shapely.Polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts])


def _rects(cx: np.ndarray, cy: np.ndarray, w, h, angle) -> np.ndarray:
    """:func:`_rect` of one size at many centres, made at once (the same coordinates, to the bit)."""
    c, s = math.cos(angle), math.sin(angle)
    x = np.array([-w / 2, w / 2, w / 2, -w / 2])
    y = np.array([-h / 2, -h / 2, h / 2, h / 2])
    ring = np.stack([cx[:, None] + x * c - y * s, cy[:, None] + x * s + y * c], axis=-1)
    return shapely.polygons(ring)


def _gap(floors: int) -> float:
    """Open ground between rows: a sunlight gap growing with height, kept modest (metres)."""
    return 8.0 + 0.8 * floors


def place(courtyard, plan: list, rng) -> list:
    """Footprints (local plane) for the buildings of ``plan`` inside ``courtyard``, spread over it as an
    estate is: slots in rows along its long axis (row spacing by the tallest building's sunlight gap),
    an evenly spaced choice of them when there are more than buildings, random free spots for the rest
    (shrinking when nothing fits)."""
    room = courtyard.buffer(-MARGIN_M)
    if room.is_empty:
        room = courtyard.buffer(-0.5)
    shapely.prepare(room)
    rect = shapely.minimum_rotated_rectangle(room)
    angle = 0.0
    if rect.geom_type == "Polygon":
        corners = np.asarray(rect.exterior.coords)[:4]
        e1, e2 = corners[1] - corners[0], corners[2] - corners[1]
        long = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
        angle = math.atan2(long[1], long[0])
    sizes = [(KINDS[name].unit_size[0] * len(units), KINDS[name].unit_size[1]) for name, units, _ in plan]
    w_max, d_max = max(w for w, _ in sizes), max(d for _, d in sizes)
    tallest = max(f for *_, f in plan)
    c, s = math.cos(angle), math.sin(angle)
    x0, y0, x1, y1 = shapely.bounds(shapely.affinity.rotate(room, -angle, origin=(0, 0), use_radians=True))
    vs = np.arange(y0 + d_max / 2, y1, d_max + _gap(tallest))
    us = np.arange(x0 + w_max / 2, x1, w_max + 8.0)
    # rows walked alternately (neighbours stay near); every slot tried at once (one by one, the
    # containment tests were a sixth of the demo city's generation)
    u = np.concatenate([us if row % 2 == 0 else us[::-1] for row in range(len(vs))]) if len(vs) else us[:0]
    v = np.repeat(vs, len(us))
    cx, cy = u * c - v * s, u * s + v * c
    fits = shapely.contains(room, _rects(cx, cy, w_max, d_max, angle))
    slots = list(zip(cx[fits], cy[fits]))
    feet = [None] * len(plan)
    if slots:
        chosen = np.unique(np.linspace(0, len(slots) - 1, min(len(slots), len(plan))).round().astype(int))
        for k, slot in zip(range(len(plan)), chosen):
            feet[k] = _rect(*slots[slot], *sizes[k], angle)
    placed = [f for f in feet if f is not None]
    for k in range(len(plan)):
        if feet[k] is None:
            feet[k] = _random_spot(room, *sizes[k], angle, placed, rng)
            placed.append(feet[k])
    return feet


def _random_spot(room, w, d, angle, placed, rng):
    """A w x d footprint at a random free spot of ``room``, shrinking by a fifth every 20 tries."""
    x0, y0, x1, y1 = room.bounds
    union = shapely.union_all(placed) if placed else shapely.Polygon()
    shapely.prepare(union)
    for attempt in range(200):
        scale = 0.8 ** (attempt // 20)
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        fp = _rect(x, y, w * scale, d * scale, angle)
        if room.contains(fp) and not union.intersects(fp.buffer(2.0)):
            return fp
    p = room.representative_point()  # nothing fits: a 3 m square at a free interior point
    free = shapely.difference(room, union.buffer(1.0))
    if not free.is_empty:
        p = free.representative_point()
    return _rect(p.x, p.y, 3.0, 3.0, angle).intersection(room)


#: Land per household (m²) by estate kind, for courtyards drawn around their buildings.
LAND_M2 = {"villa": 300.0, "slab": 45.0, "midrise": 35.0, "tower": 22.0, "mixed": 30.0}


def bench_compounds(n: int, seed: int, *, smallest: int = 30, largest: int = 2500):
    """``n`` stand-alone courtyards for benchmarking partitioners, with Zhengzhou's mix of buildings:
    target households log-uniform in ``smallest..largest``, the estate kind as :func:`estate_kind`
    draws it, outlines a rectangle, an L, a U or an irregular Voronoi cell sized by the kind's land per
    household, buildings placed by :func:`place`.  Yields dicts with ``code``, ``shape``, ``kind``,
    ``outline`` (storage lon/lat, densified as stored data must be), ``households`` and ``buildings``
    (code, footprint lon/lat, units as households per floor, floors)."""

    rng = np.random.default_rng([seed, 14])
    for i in range(n):
        target = round(math.exp(rng.uniform(math.log(smallest), math.log(largest))))
        kind = estate_kind(target, rng)
        plan = households_plan(target, kind, rng)
        total = sum(sum(sum(u) for u in units) for _, units, _ in plan)
        side = math.sqrt(total * LAND_M2[kind] + 3000.0 * len(plan) ** 0.5)
        shape = ("rectangle", "L", "U", "irregular")[i % 4]
        aspect = rng.uniform(1.0, 2.2)
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        if shape == "rectangle":
            outline = shapely.box(0, 0, w, h)
        elif shape == "L":
            w, h = w * 1.25, h * 1.25
            outline = shapely.difference(shapely.box(0, 0, w, h), shapely.box(w * 0.5, h * 0.5, w, h))
        elif shape == "U":
            w, h = w * 1.3, h * 1.3
            outline = shapely.difference(shapely.box(0, 0, w, h), shapely.box(w / 3, h * 0.4, 2 * w / 3, h))
        else:  # a few oblique sides, as a Voronoi cell of a block
            k = int(rng.integers(5, 9))
            t = np.sort(rng.uniform(0, 2 * math.pi, k))
            r = rng.uniform(0.75, 1.0, k)
            outline = shapely.convex_hull(shapely.multipoints(np.column_stack([r * np.cos(t), r * np.sin(t)])))
            outline = shapely.affinity.scale(outline, *(2 * [math.sqrt(w * h / outline.area)]))
        outline = shapely.affinity.rotate(outline, rng.uniform(0, 90))
        x0, y0 = (i % 40) * 4000.0, (i // 40) * 4000.0  # 4 km apart: none overlap
        outline = shapely.affinity.translate(outline, x0 - outline.centroid.x, y0 - outline.centroid.y)
        feet = place(outline, plan, rng)
        code = f"9{i:08d}"
        buildings = [
            {"code": f"{code}B{b:03d}", "footprint": f, "units": units, "floors": floors, "kind": name}
            for b, ((name, units, floors), f) in enumerate(zip(plan, feet), 1)
        ]
        for b, f in zip(buildings, geo.from_local(np.array(feet, dtype=object))):
            b["footprint"] = f
        yield {
            "code": code,
            "shape": shape,
            "kind": kind,
            "outline": densify([geo.from_local([outline])[0]])[0],
            "households": total,
            "buildings": buildings,
        }
