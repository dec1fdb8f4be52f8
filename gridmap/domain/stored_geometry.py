"""Geometry as stored: the check that agrees with PostGIS, and the densification that makes data pass it.

Stored grids are lon/lat polygons (EPSG:4326).  Their edges have two readings: straight in lon/lat
(PostGIS ``geometry``, gridmap's lookups) or geodesic (PostGIS ``geography``, and very nearly any
projected CRS such as EPSG:4547).  On a short edge the two agree to micrometres; on a kilometre-long
one they part by centimetres (about L² tan(lat) / 8R: 7 cm for 3 km at Zhengzhou's latitude).  So when
a courtyard's edge A-B is one long segment and its micro-grids' edges run A-C-B with C on the lon/lat
line, the tiling is exact in the first reading and leaves slivers of hundreds of m² in the second:
``ST_Difference`` of the courtyard and its micro-grids' union, measured with ``::geography``, finds
them, and a point in one is in a courtyard and in no micro-grid for any GIS that reprojects.

:func:`pieces` is that check: the overlay runs in the stored coordinates as they are (no snap-rounding,
which would close such slivers before they are measured), each connected piece is measured on the
ellipsoid with geodesic edges (pyproj's ``Geod``, what ``::geography`` does), and gaps and overhangs are
reported separately, so they never cancel in any sum.  :func:`densify` makes data that passes it: no
stored edge longer than ``MAX_SEGMENT_DEG`` (about 10 m), where the two readings differ by under a
micrometre.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import Geod

#: Longest stored segment, in degrees (1e-4: about 11 m north-south, 9 m east-west at 35°N).
MAX_SEGMENT_DEG = 1e-4


def densify(geoms, max_segment_deg: float = MAX_SEGMENT_DEG):
    """Add vertices along the lon/lat straight line so no segment is longer than ``max_segment_deg``.

    Nothing moves: the lon/lat reading is unchanged, and the geodesic reading comes to agree with it."""
    return shapely.segmentize(np.asarray(geoms, dtype=object), max_segment_deg)


@lru_cache(maxsize=1)
def _geod():
    return Geod(ellps="WGS84")


def geodesic_area_m2(geoms) -> np.ndarray:
    """Areas of lon/lat polygons on the WGS84 ellipsoid with geodesic edges (as PostGIS ``::geography``)."""
    geod = _geod()
    out = np.zeros(len(geoms))
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        out[i] = abs(geod.geometry_area_perimeter(g)[0])
    return out


def _parts(geom) -> np.ndarray:
    parts = shapely.get_parts(geom)
    return parts[shapely.get_type_id(parts) == 3] if len(parts) else parts


#: Metres per degree (latitude; longitude at the equator), and the Earth's radius: for bounds only.
_M_PER_DEG = 111_320.0
_R_M = 6_371_000.0


def area_bound_m2(parts) -> np.ndarray:
    """An upper bound of each lon/lat polygon's geodesic area, from planar figures alone: its lon/lat
    area in m² plus its perimeter times how far a geodesic can stray from its longest segment
    (L² tan(lat) / 8R, doubled for the ellipsoid and the scale).  Pieces under the tolerance by this
    bound need no geodesic measurement: the overlay noise of densified data is all of that kind."""
    if not len(parts):
        return np.zeros(0)
    b = shapely.bounds(parts)
    lat = np.abs(np.nan_to_num((b[:, 1] + b[:, 3]) / 2))
    m2 = shapely.area(parts) * _M_PER_DEG**2 * np.cos(np.radians(lat))
    perimeter = shapely.length(parts) * _M_PER_DEG
    return 1.01 * m2 + readings_differ_m2(perimeter, longest_segment_deg(parts), lat)


def pieces(parent, children, tolerance_m2: float = 1.0):
    """Gaps (pieces of ``parent`` covered by no child) and overhangs (pieces of children outside it),
    each a list of (polygon, geodesic m²) larger than ``tolerance_m2``.  Overlay in stored coordinates."""
    union = shapely.union_all(np.asarray(children, dtype=object)) if len(children) else shapely.Polygon()
    out = []
    for geom in (shapely.difference(parent, union), shapely.difference(union, parent)):
        parts = _parts(geom)
        parts = parts[area_bound_m2(parts) > tolerance_m2]
        areas = geodesic_area_m2(parts)
        out.append([(p, float(a)) for p, a in zip(parts, areas) if a > tolerance_m2])
    return out[0], out[1]


def longest_segment_deg(geoms) -> np.ndarray:
    """The longest ring segment of each geometry, in degrees."""
    geoms = np.asarray(geoms, dtype=object)
    rings, owner = shapely.get_rings(geoms, return_index=True)
    xy, which = shapely.get_coordinates(rings, return_index=True)
    step = np.hypot(*np.diff(xy, axis=0).T)
    same = which[1:] == which[:-1]
    per_ring = np.zeros(len(rings))
    np.maximum.at(per_ring, which[1:][same], step[same])
    out = np.zeros(len(geoms))
    np.maximum.at(out, owner, per_ring)
    return out


def readings_differ_m2(perimeter_m, longest_deg, lat) -> np.ndarray:
    """An upper bound (m²) of the area between the lon/lat and the geodesic reading of a boundary of
    ``perimeter_m`` whose segments are at most ``longest_deg`` long: where this is under the tolerance,
    the planar overlay (fast, snap-rounded) proves the stored tiling for both readings."""
    longest_m = np.asarray(longest_deg) * _M_PER_DEG
    return np.asarray(perimeter_m) * (2.0 * longest_m**2 * np.tan(np.radians(np.abs(lat))) / (8 * _R_M) + 1e-6)
