"""Web Mercator tile arithmetic and the GCJ-02 overlay shift (pure; the SQL is in ``store.tiles``).

Tiles are the XYZ scheme of Leaflet and OpenStreetMap: EPSG:3857, ``y`` counted from the north.
mercantile (Mapbox) does the tile arithmetic.  When the base map is drawn in GCJ-02 (Amap, Tencent),
overlays must be shifted by the GCJ-02 offset (~500-700 m in Zhengzhou) or they sit beside their
streets.  PostGIS has no GCJ-02, so each tile's geometries get one affine map in EPSG:3857, fitted
to the exact GCJ-02 shift (``geo.wgs84_to_gcj02``) at three corners of the tile: the offset varies
so smoothly that this stays within 0.35 screen pixel of the exact shift at every zoom (0.2 px from
z12; tested against the exact transform).
"""

from __future__ import annotations

from dataclasses import dataclass

import mercantile
import numpy as np
from pyproj import Transformer

from .. import geo
from ..errors import InputError

#: Tile extent in MVT units and the buffer around it (both Mapbox's usual values).
EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
_TO_MERC = Transformer.from_crs(4326, 3857, always_xy=True)


@dataclass(frozen=True)
class Tile:
    z: int
    x: int
    y: int

    @classmethod
    def parse(cls, z, x, y) -> Tile:
        """A tile from URL parts; InputError naming the bad part."""
        try:
            z, x, y = int(z), int(x), int(y)
        except (TypeError, ValueError):
            raise InputError(f"tile coordinates must be integers, got {z}/{x}/{y}") from None
        if not 0 <= z <= MAX_ZOOM:
            raise InputError(f"zoom {z} is outside 0..{MAX_ZOOM}")
        n = 1 << z
        if not (0 <= x < n and 0 <= y < n):
            raise InputError(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{n - 1} at zoom {z}")
        return cls(z, x, y)

    def merc_bounds(self) -> tuple[float, float, float, float]:
        b = mercantile.xy_bounds(self.x, self.y, self.z)
        return b.left, b.bottom, b.right, b.top

    def buffered_lonlat(self) -> tuple[float, float, float, float]:
        """The tile with its MVT buffer, in lon/lat (the storage index's frame)."""
        x0, y0, x1, y1 = self.merc_bounds()
        pad = (x1 - x0) * BUFFER / EXTENT
        lon, lat = _TO_MERC.transform([x0 - pad, x1 + pad], [y0 - pad, y1 + pad], direction="INVERSE")
        return lon[0], lat[0], lon[1], lat[1]


@dataclass(frozen=True)
class Frame:
    """Where overlays are drawn for a base map: ``shift`` is the affine (a, b, d, e, xoff, yoff) of
    ST_Affine in EPSG:3857, None when the base map is in WGS84 (nothing to shift); ``query`` the
    storage-frame box whose features can land in the tile."""

    query: tuple[float, float, float, float]
    shift: tuple[float, float, float, float, float, float] | None


def frame(tile: Tile, basemap_crs: str = "wgs84") -> Frame:
    """The query box and the overlay shift of ``tile`` for a base map in ``basemap_crs`` (wgs84 or gcj02)."""
    if basemap_crs in ("wgs84", "EPSG:4326", "cgcs2000", "EPSG:4490"):
        return Frame(tile.buffered_lonlat(), None)
    if basemap_crs != "gcj02":
        raise InputError(f"overlays can be drawn for a wgs84 or gcj02 base map, not {basemap_crs!r}")
    x0, y0, x1, y1 = tile.merc_bounds()
    # the storage points that land on the tile's corners: the query box (plus the buffer)
    cx, cy = np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1])
    lon, lat = _TO_MERC.transform(cx, cy, direction="INVERSE")
    wl, wt = geo.gcj02_to_wgs84(np.asarray(lon), np.asarray(lat))
    pad_lon = (wl.max() - wl.min()) * BUFFER / EXTENT
    pad_lat = (wt.max() - wt.min()) * BUFFER / EXTENT
    query = (float(wl.min() - pad_lon), float(wt.min() - pad_lat), float(wl.max() + pad_lon), float(wt.max() + pad_lat))
    return Frame(query, gcj_affine(tile))


def gcj_affine(tile: Tile) -> tuple[float, float, float, float, float, float]:
    """The affine map (ST_Affine's a, b, d, e, xoff, yoff in EPSG:3857) through the exact GCJ-02
    shift of the tile's bottom-left, bottom-right and top-left corners."""
    x0, y0, x1, y1 = tile.merc_bounds()
    px = np.array([x0, x1, x0])
    py = np.array([y0, y0, y1])
    qx, qy = shift_merc(px, py)
    a = np.column_stack([px, py, np.ones(3)])
    mx = np.linalg.solve(a, qx)  # x' = a*x + b*y + xoff
    my = np.linalg.solve(a, qy)  # y' = d*x + e*y + yoff
    return float(mx[0]), float(mx[1]), float(my[0]), float(my[1]), float(mx[2]), float(my[2])


def shift_merc(x, y):
    """Exact GCJ-02 shift of EPSG:3857 points (the reference the affine approximates)."""
    lon, lat = _TO_MERC.transform(np.asarray(x, float), np.asarray(y, float), direction="INVERSE")
    glon, glat = geo.wgs84_to_gcj02(np.asarray(lon), np.asarray(lat))
    qx, qy = _TO_MERC.transform(glon, glat)
    return np.asarray(qx), np.asarray(qy)


def pixel_m(tile: Tile) -> float:
    """One screen pixel (256 per tile) in EPSG:3857 metres at the tile's zoom."""
    x0, _, x1, _ = tile.merc_bounds()
    return (x1 - x0) / 256
