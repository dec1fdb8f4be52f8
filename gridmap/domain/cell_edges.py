"""Point-in-micro-grid tests for points in mixed cells, from each cell's own ring segments: no
polygon decoded, prepared or held.

Why not GEOS here.  A prepared polygon answers a point in well under a microsecond, but a process
that meets most of a city's micro-grids (a batch of points spread over the city, as every
``--engine dask`` worker gets) ends up holding all of them decoded and prepared: about 700 MB for
the Zhengzhou-scale city's 8 million ring vertices, in every worker (issue #18: ≤ 1 GB a worker).
The cell grid already knows which ring segments cross each mixed cell, so the test can be made from
those alone, in NumPy over arrays that are memory-mapped from the persisted index (pages shared by
every process of a machine, nothing decoded):

* for each candidate grid of a mixed cell, whether the cell's centre ``C`` lies in the grid
  (``centre_in``, one exact GEOS test per pair when the index is built) and the grid's segments that
  pass through or touch the cell (``edge``: the start vertex of each, grouped by pair);
* a point ``P`` of the cell is in the grid when ``C`` is and the segment ``CP`` crosses the grid's
  boundary an even number of times, or ``C`` is not and it crosses an odd number.  ``CP`` lies in the
  (convex) cell, so only the cell's own segments can cross it.

Exactness.  A crossing is counted only when all four orientations (``C``, ``P`` against the edge;
the edge's ends against ``CP``) have a sign that is certain in floating point (Shewchuk's error
bound for the 2x2 determinant, with a margin); then "the open segments cross" is decided exactly.
Anything else (``P`` on or within rounding of an edge, ``C`` on an edge, a vertex on ``CP``, ``P``
within a millionth of a cell of the cell's sides) is *uncertain*, and the caller answers those few
points with the exact GEOS test instead: covers semantics, lowest code first, exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from .cells import segment_cells

#: Shewchuk's ccwerrboundA ((3 + 16 eps) eps), doubled as a margin: an orientation whose magnitude
#: is above this times (|left term| + |right term|) has the sign it was computed with.
_ORIENT_BOUND = 2 * (3.0 + 16.0 * 2.0**-53) * 2.0**-53
#: A point this close (in cells) to a side of its cell is sent to the exact test (a segment on the
#: cell line may have been filed with the neighbouring cell by rounding).
_CELL_MARGIN = 1e-6
#: (point, segment) pairs tested at a time: bounds the temporaries whatever the batch.
PAIRS_AT_ONCE = 1 << 20

ARRAYS = ("vx", "vy", "edge", "edge_start", "centre_in")


@dataclass
class CellEdges:
    """The arrays of the module docstring: ring vertices ``vx``/``vy`` (segment ``i`` runs from vertex
    ``i`` to ``i + 1``), ``edge`` (segment numbers grouped by candidate pair, CSR by ``edge_start``
    over the index's ``cand``), ``centre_in`` (per pair)."""

    vx: np.ndarray
    vy: np.ndarray
    edge: np.ndarray
    edge_start: np.ndarray
    centre_in: np.ndarray

    def state(self) -> dict[str, np.ndarray]:
        return {f"edges_{name}": getattr(self, name) for name in ARRAYS}

    @classmethod
    def from_state(cls, arrays) -> CellEdges | None:
        if not all(f"edges_{name}" in arrays for name in ARRAYS):
            return None
        return cls(*(arrays[f"edges_{name}"] for name in ARRAYS))

    def covers(self, pair, px, py, cx, cy, fx, fy):
        """(inside, uncertain) for points ``px, py`` against the candidate pairs ``pair`` (one each);
        ``cx, cy`` the centres of their cells, ``fx, fy`` their positions within the cell (0..1).
        ``inside`` is meaningful only where ``uncertain`` is False."""
        n = len(pair)
        inside = np.asarray(self.centre_in)[pair].astype(bool)
        uncertain = (fx < _CELL_MARGIN) | (fx > 1 - _CELL_MARGIN) | (fy < _CELL_MARGIN) | (fy > 1 - _CELL_MARGIN)
        lo = np.asarray(self.edge_start[pair], dtype=np.int64)
        count = np.asarray(self.edge_start[pair + 1], dtype=np.int64) - lo
        # batches of points whose segments number at most PAIRS_AT_ONCE (one point may exceed it alone)
        ends = np.cumsum(count)
        start = 0
        while start < n:
            base = ends[start - 1] if start else 0
            stop = max(int(np.searchsorted(ends, base + PAIRS_AT_ONCE, side="right")), start + 1)
            self._batch(slice(start, stop), lo, count, px, py, cx, cy, inside, uncertain)
            start = stop
        return inside, uncertain

    def _batch(self, part, lo, count, px, py, cx, cy, inside, uncertain) -> None:
        cnt = count[part]
        total = int(cnt.sum())
        if not total:
            return
        who = np.repeat(np.arange(len(cnt)), cnt)
        first = np.cumsum(cnt) - cnt
        seg = np.asarray(self.edge)[np.repeat(lo[part] - first, cnt) + np.arange(total)].astype(np.int64)
        vx, vy = self.vx, self.vy
        ax, ay, bx, by = vx[seg], vy[seg], vx[seg + 1], vy[seg + 1]
        pxx, pyy, cxx, cyy = px[part][who], py[part][who], cx[part][who], cy[part][who]
        o1, u1 = _orient(cxx, cyy, pxx, pyy, ax, ay)  # A against CP
        o2, u2 = _orient(cxx, cyy, pxx, pyy, bx, by)  # B against CP
        o3, u3 = _orient(ax, ay, bx, by, cxx, cyy)  # C against AB
        o4, u4 = _orient(ax, ay, bx, by, pxx, pyy)  # P against AB
        bad = u1 | u2 | u3 | u4
        cross = ~bad & ((o1 > 0) != (o2 > 0)) & ((o3 > 0) != (o4 > 0))
        n = len(cnt)
        odd = np.bincount(who, weights=cross, minlength=n).astype(np.int64) % 2 == 1
        unsure = np.bincount(who, weights=bad, minlength=n) > 0
        inside[part] ^= odd
        uncertain[part] |= unsure


def _orient(ax, ay, bx, by, cx, cy):
    """The orientation determinant of (a, b, c) and whether its sign is uncertain (Shewchuk)."""
    left = (ax - cx) * (by - cy)
    right = (ay - cy) * (bx - cx)
    det = left - right
    return det, np.abs(det) <= _ORIENT_BOUND * (np.abs(left) + np.abs(right))


def build(geoms, x0, y0, dx, dy, shape, mixed_cells, cand_start, cand) -> CellEdges:
    """The arrays for micro-grids ``geoms`` (by micro number) on the cell grid (origin ``x0, y0``,
    cell ``dx, dy``, ``shape`` rows x cols) whose mixed cells and candidates are given."""
    ny, nx = shape
    if not len(geoms):
        none = np.zeros(0)
        return CellEdges(
            none, none, np.zeros(0, np.int32), np.zeros(len(cand) + 1, np.int64), np.zeros(len(cand), bool)
        )
    n = np.int64(len(geoms))
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_of_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    owner = part_of[ring_of_part[ring_of]]
    vx, vy = np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1])
    # segment i: vertex i -> i + 1 of one ring, not of zero length (it can cross nothing)
    seg = np.flatnonzero((ring_of[:-1] == ring_of[1:]) & ((vx[:-1] != vx[1:]) | (vy[:-1] != vy[1:])))
    gx, gy = (vx - x0) / dx, (vy - y0) / dy
    # most segments lie inside one cell, clear of its sides: that cell alone (segment_cells would
    # file them twice, and its walk is the slow part); the rest are walked
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = gx - ix, gy - iy
    clear = (fx > 1e-6) & (fx < 1 - 1e-6) & (fy > 1e-6) & (fy < 1 - 1e-6)
    within = (ix[seg] == ix[seg + 1]) & (iy[seg] == iy[seg + 1]) & clear[seg] & clear[seg + 1]
    walked = seg[~within]
    cell, s = segment_cells(gx[walked], gy[walked], gx[walked + 1], gy[walked + 1], walked, nx, ny)
    inner = seg[within]
    cell = np.concatenate([np.clip(iy[inner], 0, ny - 1) * nx + np.clip(ix[inner], 0, nx - 1), cell])
    # sorted by (cell, segment) = by (cell, owner, segment): owners ascend with the vertices
    key = np.concatenate([inner, s]) + cell * np.int64(len(vx))
    key.sort()
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    cell, s = np.divmod(key, np.int64(len(vx)))
    # one entry per (pair, segment): pair = the (cell, owner) candidate
    pair_cell = np.repeat(np.asarray(mixed_cells, dtype=np.int64), np.diff(cand_start))
    pair_key = pair_cell * n + np.asarray(cand, dtype=np.int64)
    want = cell * n + owner[s]
    pair = np.searchsorted(pair_key, want)
    found = pair < len(pair_key)
    found[found] = pair_key[pair[found]] == want[found]
    pair, s = pair[found], s[found]
    edge_start = np.searchsorted(pair, np.arange(len(pair_key) + 1)).astype(np.int64)
    # the centre of each pair's cell against its candidate: exact, covers semantics
    cy_, cx_ = np.divmod(pair_cell, nx)
    centre_in = np.zeros(len(pair_key), dtype=bool)
    grid = np.asarray(cand, dtype=np.int64)
    order = np.argsort(grid, kind="stable")
    bounds = np.searchsorted(grid[order], np.arange(len(geoms) + 1))
    held = shapely.is_prepared(geoms)  # prepared here only for this: let go again afterwards
    for g in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[g] : bounds[g + 1]]
        geom = geoms[g]
        shapely.prepare(geom)
        centre_in[rows] = shapely.intersects_xy(geom, x0 + (cx_[rows] + 0.5) * dx, y0 + (cy_[rows] + 0.5) * dy)
    shapely.destroy_prepared(geoms[~held])
    edge = s.astype(np.int32 if len(vx) < 2**31 else np.int64)
    return CellEdges(vx, vy, edge, edge_start, centre_in)
