"""Stairwell units as items at their entrances (units over the band split by floors)."""

from __future__ import annotations

import math

import numpy as np
import shapely

from ... import geo
from ...errors import InputError
from .model import Band, BuildingIn, Item

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
                raise InputError(f"building {b.code} lies outside its courtyard {courtyard} ({outside:.0f} m² outside)")
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
    pts = [
        (origin.x + (j - (parts - 1) / 2) * step[0], origin.y + (j - (parts - 1) / 2) * step[1]) for j in range(parts)
    ]
    out = shapely.get_coordinates(geo.from_local([shapely.multipoints(pts)])[0])
    if not shapely.intersects_xy(outline, out[:, 0], out[:, 1]).all():
        return [(x, y)] * parts
    return [tuple(p) for p in out]
