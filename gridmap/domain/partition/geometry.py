"""Geometry shared by every cut strategy: half-planes in metres, compactness, visit tours."""

from __future__ import annotations

import math

import numpy as np
import shapely

from ... import geo

# --- geometry helpers ------------------------------------------------------------------


def metric_normal(angle: float) -> np.ndarray:
    """A direction given in metres, as a normal in storage lon/lat: projections onto it order
    points exactly as the metric direction does (the local plane is affine to lon/lat)."""
    kx, ky = geo.local_scale()
    return np.array([math.cos(angle) * kx, math.sin(angle) * ky])


def halfplane(region, normal, c):
    """The part of the plane where ``p . normal < c``, as a polygon covering ``region``."""
    x0, y0, x1, y1 = region.bounds
    reach = 4 * ((x1 - x0) + (y1 - y0)) + 1e-6
    u = normal / np.hypot(*normal)
    v = np.array([-u[1], u[0]])
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    on_line = centre + (c - centre @ normal) / (normal @ normal) * normal  # the line's point nearest the centre
    a, b = on_line + v * reach, on_line - v * reach
    return shapely.Polygon([a, b, b - u * reach, a - u * reach])


def polygons(geom) -> list:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]


def polsby_popper(geoms) -> np.ndarray:
    """4 pi A / P^2 of storage geometries, measured in EPSG:4547 (1 = a circle)."""
    metric = geo.to_metric(np.asarray(geoms, dtype=object))
    p = shapely.length(metric)
    return np.where(p > 0, 4 * math.pi * shapely.area(metric) / np.maximum(p, 1e-12) ** 2, 0.0)


def pp_local(geom) -> float:
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
                    order[i : j + 1] = order[i : j + 1][::-1]
                    improved = True
    return float(sum(d[order[i], order[(i + 1) % n]] for i in range(n)))


class NoCut(Exception):
    pass


#: Cuts tried per region before giving up on it (each tried cut recurses into both sides).
TRIES_PER_REGION = 8

#: Regions a single bisection attempt may cut (plus four per grid) before it gives up: backtracking
#: is exponential in the worst case, and a plan that needs this many tries is better served by the
#: next plan.
BUDGET = 200
