"""Which cells of a regular grid a set of segments passes through: the exact crossing walk shared by
the lookup index (cells of micro-grid rings) and the nearest-grid blocks (blocks of outer segments)."""

from __future__ import annotations

import numpy as np


def segment_cells(ax, ay, bx, by, owner, nx, ny):
    """Flat cell numbers of every cell a segment (in cell units) passes through or touches, with the
    segment's owner per cell: its endpoints' cells, and the cells on both sides of every crossing of a
    cell line (both rows, or columns, when the crossing falls on a cell corner)."""
    eps = 1e-9
    cells, owners = [], []

    def add(ix, iy, who):
        cells.append(np.clip(iy, 0, ny - 1) * nx + np.clip(ix, 0, nx - 1))
        owners.append(who)

    add(np.floor(ax).astype(np.int64), np.floor(ay).astype(np.int64), owner)
    add(np.floor(bx).astype(np.int64), np.floor(by).astype(np.int64), owner)
    for p0, q0, p1, q1, vertical in ((ax, ay, bx, by, True), (ay, ax, by, bx, False)):
        k0 = np.ceil(np.minimum(p0, p1)).astype(np.int64)
        k1 = np.floor(np.maximum(p0, p1)).astype(np.int64)
        n = np.maximum(k1 - k0 + 1, 0)
        seg = np.repeat(np.arange(len(p0)), n)
        if not len(seg):
            continue
        k = k0[seg] + (np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n))
        dp = p1[seg] - p0[seg]
        t = (k - p0[seg]) / np.where(dp != 0, dp, 1.0)
        q = q0[seg] + t * (q1[seg] - q0[seg])
        for qq in (np.floor(q - eps).astype(np.int64), np.floor(q + eps).astype(np.int64)):
            for kk in (k - 1, k):
                add(kk, qq, owner[seg]) if vertical else add(qq, kk, owner[seg])
    return np.concatenate(cells), np.concatenate(owners).astype(np.int64)
