"""Nearest micro-grid for points outside every grid, exact in metres (EPSG:4547), on a grid of blocks.

For a point outside every micro-grid, the nearest grid owns the nearest point of the grids' union,
and that point lies on a ring segment no other grid shares: a shared segment is inside the union, so
the straight line to it crosses an unshared one first.  Only those *outer* segments (the city's
outline and the edges of gaps; a segment is shared when another ring has the same two vertices) are
kept, in EPSG:4547, bucketed into square blocks of ``block_m`` metres (every block a segment passes
through).  For each point, vectorised over all points:

1. an upper bound ``U``: the exact distance to the segments of the nearest non-empty block (a
   distance transform of the block grid names that block for every block);
2. the candidate blocks: those whose segments' box (clipped to the block) is nearer than ``U``,
   found top-down through a pyramid of such boxes (each level merges 2 x 2 nodes), dropping every
   node whose box is farther than ``U``, and lowering ``U`` to the nearest farthest-corner of a kept
   box (a segment passes through every box);
3. the exact point-to-segment distance (GEOS's formula) to the candidates' segments: the smallest
   wins, ties to the lowest code.

No tree query per point and no reprojection of the grids per call: only the outside points are
projected, once.  Sharing is decided on exact storage coordinates, so grids that do not share
vertices only make more segments outer: more candidates, the same answer.
"""

from __future__ import annotations

import numpy as np
import shapely

from .. import geo
from .cells import segment_cells

#: Block size in metres: small enough that few segments share a block, large enough that the
#: pyramid stays shallow.
BLOCK_M = 200.0
#: Point-to-segment distances computed at once (whole points at a time, so a chunk may hold more).
SEGMENTS_AT_ONCE = 262_144


class Nearest:
    """Outer segments of a set of micro-grids, ready for nearest-grid queries (see module docstring)."""

    def __init__(self, geoms, *, block_m: float = BLOCK_M):
        self.block_m = block_m
        ax, ay, bx, by, owner = outer_segments(geoms)
        self.ax, self.ay = geo.to_metric_xy(ax, ay)
        self.bx, self.by = geo.to_metric_xy(bx, by)
        self.owner = owner
        if not len(owner):
            self.levels = []
            return
        lo_x = min(self.ax.min(), self.bx.min()) - block_m
        lo_y = min(self.ay.min(), self.by.min()) - block_m
        hi_x = max(self.ax.max(), self.bx.max()) + block_m
        hi_y = max(self.ay.max(), self.by.max()) + block_m
        self.x0, self.y0 = lo_x, lo_y
        nx = int(np.ceil((hi_x - lo_x) / block_m)) + 1
        ny = int(np.ceil((hi_y - lo_y) / block_m)) + 1
        blocks = self._bucket(nx, ny)
        # edges shared with T-junctions (a neighbour's edge split by extra vertices) did not match
        # vertex for vertex: drop every segment that other grids' collinear segments cover whole
        # (tested on storage coordinates: a lon/lat-straight edge bends slightly in EPSG:4547)
        covered = _covered(ax, ay, bx, by, self.owner, self.seg, self._starts(blocks, nx, ny))
        if covered.any():
            keep = ~covered
            self.ax, self.ay, self.bx, self.by = self.ax[keep], self.ay[keep], self.bx[keep], self.by[keep]
            self.owner = self.owner[keep]
            blocks = self._bucket(nx, ny)
        self._index_blocks(blocks, nx, ny)

    def _index_blocks(self, blocks, nx, ny, base=None, touched=None, start=None) -> None:
        """Block starts, each block's nearest occupied block, and the pyramid of segment boxes.
        ``base``, ``touched``: an earlier index over the same blocks, and the blocks whose segments
        changed since (sorted): only what those blocks reach is computed again.  ``start``: the
        block starts when the caller knows them."""
        self.start = self._starts(blocks, nx, ny) if start is None else start
        occupied = (self.start[1:] > self.start[:-1]).reshape(ny, nx)
        self.near_y, self.near_x = _nearest_blocks(occupied, base, touched)
        if base is None:
            self.levels = [self._block_boxes(blocks, nx, ny)]
            while self.levels[-1].shape[1:] != (1, 1):
                self.levels.append(_pool(self.levels[-1]))
            return
        self.levels = [self._block_boxes(blocks, nx, ny, before=base.levels[0], only=touched)]
        ty, tx = np.divmod(np.asarray(touched, dtype=np.int64), nx)
        for above in base.levels[1:]:  # each level: the nodes over a touched block, merged again
            node = np.unique((ty // 2) * above.shape[2] + tx // 2)
            ty, tx = np.divmod(node, above.shape[2])
            self.levels.append(_pool_nodes(self.levels[-1], np.array(above), ty, tx))

    def updated(self, owner_map, geoms, numbers) -> Nearest | None:
        """This index after an edit, without finding outer segments again (that takes tens of seconds
        at city scale): the kept grids' segments renumbered by ``owner_map`` (old owner -> new, -1
        for a changed or retired grid), plus every ring segment of ``geoms`` (new owner ``numbers``:
        the changed grids' new outlines and every grid near them).  Shared segments among those are
        harmless: the distance to any segment of a grid is at least the distance to the grid, so the
        smallest over a superset of the outer segments is still exact (and ties still go to the lowest
        code).  None when a segment falls outside this block grid (a rebuild makes a larger one)."""
        if not self.levels:
            return None
        owner = np.asarray(owner_map)[self.owner]
        # the grids whose every segment comes again lose their old ones: no segment piles up over edits
        keep = (owner >= 0) & ~np.isin(owner, np.asarray(numbers, dtype=np.int64))
        ax, ay, bx, by, extra = ring_segments(geoms, numbers)
        ax, ay = geo.to_metric_xy(ax, ay)
        bx, by = geo.to_metric_xy(bx, by)
        ny, nx = self.levels[0].shape[1:]
        x_hi, y_hi = self.x0 + (nx - 1) * self.block_m, self.y0 + (ny - 1) * self.block_m
        xs, ys = np.concatenate([ax, bx]), np.concatenate([ay, by])
        if len(xs) and (xs.min() < self.x0 or ys.min() < self.y0 or xs.max() >= x_hi or ys.max() >= y_hi):
            return None
        new = Nearest.__new__(Nearest)
        new.block_m, new.x0, new.y0 = self.block_m, self.x0, self.y0
        new.ax = np.concatenate([self.ax[keep], ax])
        new.ay = np.concatenate([self.ay[keep], ay])
        new.bx = np.concatenate([self.bx[keep], bx])
        new.by = np.concatenate([self.by[keep], by])
        new.owner = np.concatenate([owner[keep], extra]).astype(np.int64)
        # the blocks: the kept segments' entries stand (renumbered: still sorted by block, segment),
        # the new segments' are walked and merged in; only the blocks that lost or gained a segment
        # get their box again (walking every segment again took most of an update at city scale)
        block_of = np.repeat(np.arange(nx * ny), np.diff(self.start))
        stay = keep[self.seg]
        renumber = np.cumsum(keep) - 1
        n = np.int64(len(new.owner))
        kept_keys = block_of[stay] * n + renumber[self.seg[stay]]
        gx, gy = (ax - self.x0) / self.block_m, (ay - self.y0) / self.block_m
        hx, hy = (bx - self.x0) / self.block_m, (by - self.y0) / self.block_m
        added, segs = segment_cells(gx, gy, hx, hy, np.arange(len(ax)) + int(keep.sum()), nx, ny)
        new_keys = np.unique(added * n + segs)
        keys = np.insert(kept_keys, np.searchsorted(kept_keys, new_keys), new_keys)
        blocks, new.seg = np.divmod(keys, n)
        gone = block_of[~stay]
        touched = np.unique(np.concatenate([gone, added]))
        # the block starts from the old counts, less what left and plus what came (searching every
        # block's start in the entries again cost more than the rest of this)
        count = np.diff(self.start) - np.bincount(gone, minlength=nx * ny)
        count += np.bincount(new_keys // n, minlength=nx * ny)
        start = np.concatenate(([0], np.cumsum(count)))
        new._index_blocks(blocks, nx, ny, base=self, touched=touched, start=start)
        return new

    STATE = ("ax", "ay", "bx", "by", "owner", "seg", "start", "near_x", "near_y")

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(metadata, arrays) for :meth:`from_state` (the pyramid above the blocks is rebuilt)."""
        if not self.levels:
            return {"block_m": self.block_m, "empty": True}, {}
        arrays = {name: getattr(self, name) for name in self.STATE}
        arrays["boxes"] = self.levels[0]
        return {"block_m": self.block_m, "origin": [self.x0, self.y0]}, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays) -> Nearest:
        self = cls.__new__(cls)
        self.block_m = meta["block_m"]
        if meta.get("empty"):
            self.levels, self.owner = [], np.zeros(0, dtype=np.int64)
            return self
        self.x0, self.y0 = meta["origin"]
        for name in cls.STATE:
            setattr(self, name, arrays[name])
        self.levels = [np.asarray(arrays["boxes"])]
        while self.levels[-1].shape[1:] != (1, 1):
            self.levels.append(_pool(self.levels[-1]))
        return self

    def _bucket(self, nx, ny):
        """Set ``seg`` to the segments of each block, by block (sorted, unique); returns their blocks."""
        gx = lambda v: (v - self.x0) / self.block_m  # noqa: E731
        gy = lambda v: (v - self.y0) / self.block_m  # noqa: E731
        seg = np.arange(len(self.owner))
        blocks, segs = segment_cells(gx(self.ax), gy(self.ay), gx(self.bx), gy(self.by), seg, nx, ny)
        order = np.lexsort((segs, blocks))
        blocks, segs = blocks[order], segs[order]
        keep = np.concatenate(([True], (blocks[1:] != blocks[:-1]) | (segs[1:] != segs[:-1])))
        blocks, self.seg = blocks[keep], segs[keep]
        return blocks

    @staticmethod
    def _starts(blocks, nx, ny):
        return np.searchsorted(blocks, np.arange(nx * ny + 1)).astype(np.int64)

    def _block_boxes(self, blocks, nx, ny, before=None, only=None):
        """Per block, the box of its segments' parts inside it (min x, min y, max x, max y; an empty
        block's box is inverted): a much tighter lower bound than the block itself.  ``before``,
        ``only``: boxes to start from, and the blocks (sorted) to compute again."""
        if before is None:
            boxes = np.empty((4, ny * nx))
            boxes[:2], boxes[2:] = np.inf, -np.inf
            s = self.seg
        else:
            boxes = np.array(before, dtype=float).reshape(4, ny * nx)
            boxes[:2, only], boxes[2:, only] = np.inf, -np.inf
            lo, hi = self.start[only], self.start[np.asarray(only) + 1]
            count = hi - lo
            at = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())
            blocks, s = blocks[at], self.seg[at]
        bx0 = self.x0 + (blocks % nx) * self.block_m
        by0 = self.y0 + (blocks // nx) * self.block_m
        lo_x = np.clip(np.minimum(self.ax[s], self.bx[s]), bx0, bx0 + self.block_m)
        lo_y = np.clip(np.minimum(self.ay[s], self.by[s]), by0, by0 + self.block_m)
        hi_x = np.clip(np.maximum(self.ax[s], self.bx[s]), bx0, bx0 + self.block_m)
        hi_y = np.clip(np.maximum(self.ay[s], self.by[s]), by0, by0 + self.block_m)
        np.minimum.at(boxes[0], blocks, lo_x)
        np.minimum.at(boxes[1], blocks, lo_y)
        np.maximum.at(boxes[2], blocks, hi_x)
        np.maximum.at(boxes[3], blocks, hi_y)
        return boxes.reshape(4, ny, nx)

    def query(self, x, y):
        """(owner number, distance in metres) for storage lon/lat arrays; owner -1 when there are no grids."""
        n = len(x)
        if not n or not self.levels:
            return np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
        px, py = geo.to_metric_xy(x, y)
        ny, nx = self.levels[0].shape[1:]
        bx = np.clip(np.floor((px - self.x0) / self.block_m), 0, nx - 1).astype(np.int64)
        by = np.clip(np.floor((py - self.y0) / self.block_m), 0, ny - 1).astype(np.int64)
        # the bound: the exact distance to the segments of the nearest non-empty block
        bound = np.full(n, np.inf)
        self._segment_pairs(np.arange(n), self.near_y[by, bx] * nx + self.near_x[by, bx], px, py, bound)
        bound += 1e-6  # rounding
        # top-down through the pyramid: (point, node) pairs, kept in point order, a node dropped
        # when its box is farther than the bound
        pt = np.arange(n)
        ix = np.zeros(n, dtype=np.int64)
        iy = np.zeros(n, dtype=np.int64)
        for level in range(len(self.levels) - 2, -1, -1):
            boxes = self.levels[level]
            pt = np.repeat(pt, 4)
            ix = (np.repeat(ix, 4) * 2) + np.tile([0, 1, 0, 1], len(ix))
            iy = (np.repeat(iy, 4) * 2) + np.tile([0, 0, 1, 1], len(iy))
            ok = (ix < boxes.shape[2]) & (iy < boxes.shape[1])
            pt, ix, iy = pt[ok], ix[ok], iy[ok]
            box = boxes[:, iy, ix]
            qx, qy = px[pt], py[pt]
            gap_x = np.maximum(np.maximum(box[0] - qx, qx - box[2]), 0)
            gap_y = np.maximum(np.maximum(box[1] - qy, qy - box[3]), 0)
            ok = (box[0] <= box[2]) & (gap_x * gap_x + gap_y * gap_y <= bound[pt] ** 2)
            pt, ix, iy, qx, qy, box = pt[ok], ix[ok], iy[ok], qx[ok], qy[ok], box[:, ok]
            # a segment passes through every kept box: its farthest corner bounds the distance too
            far_x = np.maximum(np.abs(qx - box[0]), np.abs(qx - box[2]))
            far_y = np.maximum(np.abs(qy - box[1]), np.abs(qy - box[3]))
            if len(pt):
                starts = np.flatnonzero(np.concatenate(([True], pt[1:] != pt[:-1])))
                far = np.minimum.reduceat(far_x * far_x + far_y * far_y, starts)
                bound[pt[starts]] = np.minimum(bound[pt[starts]], np.sqrt(far) * (1 + 1e-12) + 1e-6)
        winner = np.full(n, np.iinfo(np.int64).max)
        best = np.full(n, np.inf)
        self._segment_pairs(pt, iy * nx + ix, px, py, best, winner)
        return winner, best

    def _segment_pairs(self, pt, block, px, py, best, winner=None):
        """Lower ``best`` (per point) to the distance to every segment of each pair's block, and
        set ``winner`` to the owner at that distance, lowest first."""
        count = self.start[block + 1] - self.start[block]
        total = np.cumsum(count)
        # a few thousand points at a time: the temporaries stay small and are reused (all 50,000
        # outside points of a million at once made ~1 GB of them, paid in page faults on first use)
        lo = 0
        while lo < len(pt):
            hi = int(np.searchsorted(total, (total[lo - 1] if lo else 0) + SEGMENTS_AT_ONCE, side="right"))
            if hi < len(pt):  # whole points only (pairs come in point order): a point's winner is final
                hi = int(np.searchsorted(pt, pt[max(hi, lo + 1) - 1], side="right"))
            hi = max(hi, lo + 1)
            self._pairs_of(pt[lo:hi], block[lo:hi], count[lo:hi], px, py, best, winner)
            lo = hi

    def _pairs_of(self, pt, block, count, px, py, best, winner):
        first = np.repeat(self.start[block] - np.cumsum(count) + count, count)
        seg = self.seg[first + np.arange(count.sum())]
        pt = np.repeat(pt, count)
        dist = _point_segment(px[pt], py[pt], self.ax[seg], self.ay[seg], self.bx[seg], self.by[seg])
        np.minimum.at(best, pt, dist)
        if winner is not None:
            at_best = dist == best[pt]
            np.minimum.at(winner, pt[at_best], self.owner[seg[at_best]])


def _nearest_blocks(occupied, base=None, touched=None):
    """(row, column) of each block's nearest occupied block, by centre distance: where a query's
    first bound comes from.  All the query needs of it is an occupied block (the exact distance to
    any segment is a bound; the nearest gives the tightest), so after an edit (``base``, the
    ``touched`` blocks) a block keeps its old one while that is occupied still, and only blocks
    whose one emptied look again, in a window around them.  (The transform over the city's 281,000
    blocks was the largest part of an update: 10 of its ~60 ms.)"""
    from scipy import ndimage  # deferred: a loaded index needs it only after an edit

    ny, nx = occupied.shape
    if base is not None:
        was = np.asarray(base.start[1:] > base.start[:-1])[touched]
        emptied = np.asarray(touched)[was & ~occupied.ravel()[touched]]
        if not len(emptied):
            return base.near_y, base.near_x
        lost = np.isin(base.near_y.astype(np.int64) * nx + base.near_x, emptied)
        rows, cols = np.nonzero(lost)
        if not len(rows):  # no block's nearest emptied
            return base.near_y, base.near_x
        r0, c0 = max(int(rows.min()) - NEAR_MARGIN, 0), max(int(cols.min()) - NEAR_MARGIN, 0)
        r1, c1 = min(int(rows.max()) + NEAR_MARGIN + 1, ny), min(int(cols.max()) + NEAR_MARGIN + 1, nx)
        window = occupied[r0:r1, c0:c1]
        if window.any():  # the window's own nearest: occupied, if not always the city's nearest
            iy, ix = ndimage.distance_transform_edt(~window, return_distances=False, return_indices=True)
            near_y, near_x = base.near_y.copy(), base.near_x.copy()
            near_y[rows, cols] = iy[rows - r0, cols - c0] + r0
            near_x[rows, cols] = ix[rows - r0, cols - c0] + c0
            return near_y, near_x
    near = ndimage.distance_transform_edt(~occupied, return_distances=False, return_indices=True)
    return near[0].astype(np.int32), near[1].astype(np.int32)


#: Blocks around those whose nearest occupied block emptied, searched for another (an edit's
#: window: a few grids' width).
NEAR_MARGIN = 16


#: Degrees (about 1 mm, the overlays' snap) within which a neighbour's segment lies on a segment.
COLLINEAR_DEG = 1e-8


#: Segment pairs examined at once by :func:`_covered`: every pair sharing a block is compared, and a
#: block of densified outlines holds thousands of segments, so the blocks are taken a few at a time
#: (all at once, the Zhengzhou-scale city's pairs took 18 GB and a fresh lookup was killed for it).
PAIRS_AT_ONCE = 2_000_000


def _covered(ax, ay, bx, by, owner, seg, start):
    """Per segment: whether collinear segments of other grids in the same blocks cover all of it."""
    count = np.diff(start)
    done = np.concatenate(([0], np.cumsum(count.astype(np.int64) ** 2)))  # pairs of the blocks before each
    parts = []
    first_block = 0
    while first_block < len(count):
        # blocks first_block .. end-1: at least one, then as many as keep the pairs under the bound
        end = int(np.searchsorted(done, done[first_block] + PAIRS_AT_ONCE, side="right")) - 1
        end = min(len(count), max(first_block + 1, end))
        parts.append(_collinear(ax, ay, bx, by, owner, seg, start, count, first_block, end))
        first_block = end
    s, lo, hi, tol = (np.concatenate(x) for x in zip(*parts, strict=True)) if parts else ([], [], [], [])
    return _covered_whole(owner, np.asarray(s, dtype=np.int64), np.asarray(lo), np.asarray(hi), np.asarray(tol))


def _collinear(ax, ay, bx, by, owner, seg, start, count_all, b0, b1):
    """(segment, lo, hi, tol) of each stretch of a segment that a collinear segment of another grid
    in one of the blocks ``b0`` .. ``b1 - 1`` lies on (positions along the segment, 0 to 1)."""
    count = np.diff(start[b0 : b1 + 1])
    block_of = np.repeat(np.arange(b0, b1), count)
    # every ordered pair of segments sharing a block
    c = count_all[block_of]
    e = start[b0] + np.repeat(np.arange(len(block_of)), c)
    partner = start[block_of][e - start[b0]] + (np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c))
    s, o = seg[e], seg[partner]
    ok = owner[s] != owner[o]
    s, o = s[ok], o[ok]
    vx, vy = bx[s] - ax[s], by[s] - ay[s]
    length = np.hypot(vx, vy)
    safe = np.where(length > 0, length, 1.0)
    # the other segment's endpoints: distance off this segment's line, and position along it
    off_p = np.abs(vx * (ay[o] - ay[s]) - vy * (ax[o] - ax[s])) / safe
    off_q = np.abs(vx * (by[o] - ay[s]) - vy * (bx[o] - ax[s])) / safe
    t_p = ((ax[o] - ax[s]) * vx + (ay[o] - ay[s]) * vy) / (safe * safe)
    t_q = ((bx[o] - ax[s]) * vx + (by[o] - ay[s]) * vy) / (safe * safe)
    lo = np.clip(np.minimum(t_p, t_q), 0, 1)
    hi = np.clip(np.maximum(t_p, t_q), 0, 1)
    on = (off_p <= COLLINEAR_DEG) & (off_q <= COLLINEAR_DEG) & (hi > lo) & (length > 0)
    return s[on], lo[on], hi[on], (COLLINEAR_DEG / safe)[on]


def _covered_whole(owner, s, lo, hi, tol):
    """Per segment: whether its collinear stretches (``s``, ``lo``, ``hi``, ``tol``) cover all of it."""
    covered = np.zeros(len(owner), dtype=bool)
    if not len(s):
        return covered
    order = np.lexsort((lo, s))
    s, lo, hi, tol = s[order], lo[order], hi[order], tol[order]
    # the running end of the covered stretch, per segment (offset by 2 per segment so maxima do not leak)
    reach = np.maximum.accumulate(hi + 2.0 * s) - 2.0 * s
    first = np.concatenate(([True], s[1:] != s[:-1]))
    last = np.concatenate((s[1:] != s[:-1], [True]))
    gap = np.where(first, lo > tol, lo > np.concatenate(([0.0], reach[:-1])) + tol)
    gap_before = np.zeros(len(owner), dtype=bool)
    np.logical_or.at(gap_before, s, gap)
    covered[s[last]] = reach[last] >= 1 - tol[last]
    return covered & ~gap_before


def _pool(boxes):
    """The next pyramid level: boxes of 2 x 2 nodes merged."""
    _, ny, nx = boxes.shape
    h, w = (ny + 1) // 2, (nx + 1) // 2
    padded = np.empty((4, 2 * h, 2 * w))
    padded[:2], padded[2:] = np.inf, -np.inf
    padded[:, :ny, :nx] = boxes
    blocks = padded.reshape(4, h, 2, w, 2)
    return np.concatenate([blocks[:2].min(axis=(2, 4)), blocks[2:].max(axis=(2, 4))])


def _pool_nodes(below, above, ty, tx):
    """``above`` (a copy of the next pyramid level) with nodes ``ty, tx`` merged again from ``below``."""
    _, h, w = below.shape
    lo = np.full((2, len(ty)), np.inf)
    hi = np.full((2, len(ty)), -np.inf)
    for dy in (0, 1):
        for dx in (0, 1):
            cy, cx = 2 * ty + dy, 2 * tx + dx
            ok = (cy < h) & (cx < w)
            child = below[:, cy[ok], cx[ok]]
            lo[:, ok] = np.minimum(lo[:, ok], child[:2])
            hi[:, ok] = np.maximum(hi[:, ok], child[2:])
    above[:2, ty, tx], above[2:, ty, tx] = lo, hi
    return above


def ring_segments(geoms, owners):
    """(ax, ay, bx, by, owner) of every ring segment of ``geoms`` (storage lon/lat), owner from
    ``owners`` (one per geometry)."""
    geoms, owners = np.asarray(geoms, dtype=object), np.asarray(owners, dtype=np.int64)
    present = np.flatnonzero(~shapely.is_missing(geoms) & ~shapely.is_empty(geoms))
    if not len(present):
        empty = np.zeros(0)
        return empty, empty, empty, empty, np.zeros(0, dtype=np.int64)
    parts, part_of = shapely.get_parts(geoms[present], return_index=True)
    rings, ring_of_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    owner = owners[present[part_of[ring_of_part[ring_of]]]]
    same = ring_of[:-1] == ring_of[1:]
    a, b = coords[:-1][same], coords[1:][same]
    return a[:, 0], a[:, 1], b[:, 0], b[:, 1], owner[:-1][same]


def outer_segments(geoms):
    """(ax, ay, bx, by, owner) of the ring segments of ``geoms`` (storage lon/lat) that no other
    ring shares; owner = position in ``geoms``."""
    ax, ay, bx, by, owner = ring_segments(geoms, np.arange(len(geoms)))
    a, b = np.column_stack([ax, ay]), np.column_stack([bx, by])
    # a segment's key is its two vertices in a fixed order, so a neighbour's reverse copy matches
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    order = np.lexsort((hi[:, 1], hi[:, 0], lo[:, 1], lo[:, 0]))
    key = np.column_stack([lo, hi])[order]
    same_as_next = np.all(key[1:] == key[:-1], axis=1)
    shared = np.zeros(len(key), dtype=bool)
    shared[:-1] |= same_as_next
    shared[1:] |= same_as_next
    keep = order[~shared]
    keep.sort()
    return a[keep, 0], a[keep, 1], b[keep, 0], b[keep, 1], owner[keep].astype(np.int64)


def _point_segment(px, py, ax, ay, bx, by):
    """Distance from points to segments, as GEOS computes it (``Distance::pointToSegment``)."""
    vx, vy = bx - ax, by - ay
    len2 = vx * vx + vy * vy
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ((px - ax) * vx + (py - ay) * vy) / len2
        s = ((ay - py) * vx - (ax - px) * vy) / len2
    to_a = np.hypot(px - ax, py - ay)
    to_b = np.hypot(px - bx, py - by)
    mid = np.abs(s) * np.sqrt(len2)
    return np.where((len2 == 0) | (r <= 0), to_a, np.where(r >= 1, to_b, mid))
