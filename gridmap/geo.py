"""Geometry rules in one place: coordinate systems, transforms and output order.

* Storage: EPSG:4326, (lon, lat). CGCS2000 (EPSG:4490) differs from WGS84 by
  centimetres, so it is stored as is.
* Measuring: EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E), metres.
* GeoJSON out: RFC 7946 (lon, lat; exterior rings counter-clockwise).
* GCJ-02 and BD-09 are not in PROJ: they are obfuscations, not datums.  They are
  implemented here, vectorised with NumPy, and tested against the reference
  implementation ``prcoords`` (which is scalar and GPL-licensed, hence not a
  run-time dependency).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from .errors import InputError

STORAGE_SRID = 4326
METRIC_SRID = 4547

#: Rough box used by every GCJ-02 implementation: outside it no offset applies.
_GCJ_BOX = (72.004, 0.8293, 137.8347, 55.8271)
#: Mainland China, Hainan and Taiwan with a margin: grids must lie inside it.
CHINA_BOUNDS = (73.4, 3.8, 135.1, 53.6)

_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_BD_DLON = 0.0065
_BD_DLAT = 0.0060

#: Names accepted for ``--crs`` besides any ``EPSG:n``.
CRS_ALIASES = {
    "wgs84": "EPSG:4326",
    "cgcs2000": "EPSG:4490",
    "gcj02": "gcj02",
    "bd09": "bd09",
}


@lru_cache(maxsize=64)
def parse_crs(value: str | int | None) -> str:
    """Normalise a user CRS to ``'gcj02'``, ``'bd09'`` or ``'EPSG:n'``.

    Raises InputError naming the value and the accepted forms.
    """
    if value is None or value == "":
        return "EPSG:4326"
    if not isinstance(value, (str, int)) or isinstance(value, bool):  # from a JSON body
        raise InputError(f"unknown CRS {value!r}: use wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>")
    text = str(value).strip().lower()
    if text in CRS_ALIASES:
        return CRS_ALIASES[text]
    match = re.fullmatch(r"(?:epsg:)?(\d{4,6})", text)
    if match:
        code = f"EPSG:{match.group(1)}"
        try:
            CRS.from_user_input(code)
        except CRSError:
            raise InputError(f"unknown CRS {value!r}: EPSG:{match.group(1)} is not in PROJ") from None
        return code
    raise InputError(f"unknown CRS {value!r}: use wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>")


@lru_cache(maxsize=64)
def is_geographic(crs: str) -> bool:
    """True when coordinates of ``crs`` are (lon, lat) degrees."""
    if crs in ("gcj02", "bd09"):
        return True
    return CRS.from_user_input(crs).is_geographic


# --- GCJ-02 / BD-09 -----------------------------------------------------------


def _in_gcj_box(lon, lat):
    return (lon >= _GCJ_BOX[0]) & (lon <= _GCJ_BOX[2]) & (lat >= _GCJ_BOX[1]) & (lat <= _GCJ_BOX[3])


def _gcj_delta(lon, lat):
    """Offset (dlon, dlat) in degrees that GCJ-02 adds to a WGS84 point."""
    x = lon - 105.0
    y = lat - 35.0
    common = 2 * np.sin(x * 6 * np.pi) + 2 * np.sin(x * 2 * np.pi)
    dlat_m = (
        -100
        + 2 * x
        + 3 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + (
            common
            + 2 * np.sin(y * np.pi)
            + 4 * np.sin(y / 3 * np.pi)
            + 16 * np.sin(y / 12 * np.pi)
            + 32 * np.sin(y / 30 * np.pi)
        )
        * 20
        / 3
    )
    dlon_m = (
        300
        + x
        + 2 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + (
            common
            + 2 * np.sin(x * np.pi)
            + 4 * np.sin(x / 3 * np.pi)
            + 15 * np.sin(x / 12 * np.pi)
            + 30 * np.sin(x / 30 * np.pi)
        )
        * 20
        / 3
    )
    rad = np.radians(lat)
    magic = 1 - _GCJ_EE * np.sin(rad) ** 2
    lat_arc = np.radians(_GCJ_A * (1 - _GCJ_EE) / magic**1.5)
    lon_arc = np.radians(_GCJ_A * np.cos(rad) / np.sqrt(magic))
    inside = _in_gcj_box(lon, lat)
    return np.where(inside, dlon_m / lon_arc, 0.0), np.where(inside, dlat_m / lat_arc, 0.0)


def wgs84_to_gcj02(lon, lat):
    """WGS84 -> GCJ-02, arrays in, arrays out."""
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def _invert(forward, lon, lat, iterations=12, eps=1e-12):
    """Invert a smooth near-identity offset by fixed-point iteration."""
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    x, y = lon.copy(), lat.copy()
    for _ in range(iterations):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        if np.all(np.abs(ex) < eps) and np.all(np.abs(ey) < eps):
            break
    return x, y


def gcj02_to_wgs84(lon, lat):
    """GCJ-02 -> WGS84 to about 1e-10 degree (iterative)."""
    return _invert(wgs84_to_gcj02, lon, lat)


def gcj02_to_bd09(lon, lat):
    """GCJ-02 -> BD-09."""
    x = np.asarray(lon, dtype="float64")
    y = np.asarray(lat, dtype="float64")
    r = np.hypot(x, y) + 0.00002 * np.sin(np.radians(y) * 3000)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(np.radians(x) * 3000)
    return r * np.cos(theta) + _BD_DLON, r * np.sin(theta) + _BD_DLAT


def bd09_to_gcj02(lon, lat):
    """BD-09 -> GCJ-02 (iterative, exact to about 1e-10 degree)."""
    return _invert(gcj02_to_bd09, lon, lat)


def wgs84_to_bd09(lon, lat):
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


# --- generic transforms --------------------------------------------------------


@lru_cache(maxsize=32)
@lru_cache(maxsize=32)
def _transformer(src: str, dst: str) -> Transformer:
    # cached: building a Transformer costs milliseconds, more than transforming a batch of points
    return Transformer.from_crs(src, dst, always_xy=True)


def to_metric_xy(x, y):
    """Storage lon/lat arrays in EPSG:4547 metres."""
    return transform_xy(x, y, f"EPSG:{STORAGE_SRID}", f"EPSG:{METRIC_SRID}")


def transform_xy(x, y, src: str, dst: str = f"EPSG:{STORAGE_SRID}"):
    """Transform coordinate arrays between any two CRS understood by parse_crs."""
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if src == dst:
        return x, y
    if src == "gcj02":
        x, y = gcj02_to_wgs84(x, y)
        src = "EPSG:4326"
    elif src == "bd09":
        x, y = bd09_to_wgs84(x, y)
        src = "EPSG:4326"
    if dst in ("gcj02", "bd09"):
        if src != "EPSG:4326":
            x, y = _transformer(src, "EPSG:4326").transform(x, y)
        return wgs84_to_gcj02(x, y) if dst == "gcj02" else wgs84_to_bd09(x, y)
    if src == dst:
        return x, y
    return _transformer(src, dst).transform(x, y)


def transform_geoms(geoms, src: str, dst: str = f"EPSG:{STORAGE_SRID}"):
    """Transform an array of shapely geometries (vectorised over all coordinates)."""
    geoms = np.asarray(geoms, dtype=object)
    if src == dst:
        return geoms

    def _apply(coords):
        x, y = transform_xy(coords[:, 0], coords[:, 1], src, dst)
        return np.column_stack([x, y])

    return shapely.transform(geoms, _apply)


def to_metric(geoms, src: str = f"EPSG:{STORAGE_SRID}"):
    """Geometries in EPSG:4547 metres, for areas and distances."""
    return transform_geoms(geoms, src, f"EPSG:{METRIC_SRID}")


#: Lon/lat segments are cut to this length (degrees, about 10 m) before areas are measured: a straight
#: lon/lat edge bends in EPSG:4547, so a sliver along a 1 km edge whose vertices are collinear in
#: storage would otherwise measure about 0.5 m² there instead of nothing.
AREA_SEGMENT_DEG = 1e-4


def area_m2(geoms) -> np.ndarray:
    """Areas of storage (lon/lat) geometries in m², measured in EPSG:4547 on densified edges."""
    dense = shapely.segmentize(np.asarray(geoms, dtype=object), AREA_SEGMENT_DEG)
    return shapely.area(to_metric(dense))


def from_metric(geoms):
    """EPSG:4547 geometries back to storage lon/lat."""
    return transform_geoms(geoms, f"EPSG:{METRIC_SRID}", f"EPSG:{STORAGE_SRID}")


def rfc7946(geoms):
    """Orient polygons as RFC 7946 wants: exterior rings counter-clockwise."""
    return shapely.orient_polygons(np.asarray(geoms, dtype=object), exterior_cw=False)


def bounds_problem(minx, miny, maxx, maxy) -> str | None:
    """Say why lon/lat bounds cannot be a place in China, or None when they can."""
    lo_x, lo_y, hi_x, hi_y = CHINA_BOUNDS
    if lo_x <= minx and maxx <= hi_x and lo_y <= miny and maxy <= hi_y:
        return None
    if lo_y <= minx and maxx <= hi_y and lo_x <= miny and maxy <= hi_x:
        return f"coordinates look like swapped lat/lon (x={minx:.6g}, y={miny:.6g}): x must be the longitude"
    return f"coordinates outside China (bounds {minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}); check --crs"


# --- a local plane affine to lon/lat --------------------------------------------------

#: Origin of the local plane (Zhengzhou) and its metres per degree.
LOCAL_ORIGIN = (113.65, 34.75)
_LOCAL_KX = 111_320.0 * np.cos(np.radians(LOCAL_ORIGIN[1]))
_LOCAL_KY = 110_574.0


def local_scale() -> tuple[float, float]:
    """Metres per degree of longitude and latitude on the local plane."""
    return _LOCAL_KX, _LOCAL_KY


def to_local(geoms):
    """Lon/lat -> a plane in approximate metres that is *affine* to lon/lat.

    For building geometry that must tile in storage: a straight edge here is a
    straight edge in EPSG:4326, so a vertex cut on a parent's edge stays on it
    (EPSG:4547 is not affine to lon/lat, and would move it by metres on long
    edges).  Distances are off by about 1% across Zhengzhou; measure in 4547.
    """
    scale = np.array([_LOCAL_KX, _LOCAL_KY])
    origin = np.array(LOCAL_ORIGIN)
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: (c - origin) * scale)


def from_local(geoms):
    """The inverse of :func:`to_local`."""
    scale = np.array([_LOCAL_KX, _LOCAL_KY])
    origin = np.array(LOCAL_ORIGIN)
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: c / scale + origin)


# --- responses drawn on a base map (wgs84 or gcj02) ------------------------------------


def onto_basemap(geometry: dict | None, crs: str) -> dict | None:
    """A GeoJSON geometry (storage lon/lat) moved onto a ``crs`` base map (unchanged for wgs84)."""
    if crs == "wgs84" or geometry is None:
        return geometry
    g = transform_geoms([shapely.geometry.shape(geometry)], f"EPSG:{STORAGE_SRID}", crs)[0]
    return shapely.geometry.mapping(g)


def bbox_between(bbox, src: str, dst: str):
    """A (minx, miny, maxx, maxy) box from one frame to another ("wgs84" is storage lon/lat)."""
    if src == dst or bbox is None:
        return bbox
    src = f"EPSG:{STORAGE_SRID}" if src == "wgs84" else src
    dst = f"EPSG:{STORAGE_SRID}" if dst == "wgs84" else dst
    x, y = transform_xy([bbox[0], bbox[2]], [bbox[1], bbox[3]], src, dst)
    return [float(x[0]), float(y[0]), float(x[1]), float(y[1])]
