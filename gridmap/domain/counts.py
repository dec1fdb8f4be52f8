"""Population shared out by households, so the parts add up to the whole as households do."""

from __future__ import annotations

import numpy as np


def apportion(total: int, weights) -> list[int]:
    """Split ``total`` in proportion to ``weights`` into whole numbers that sum to ``total`` exactly
    (largest remainders; ties to the earlier part).  All-zero weights share it equally."""
    w = np.asarray(weights, dtype="float64")
    if not len(w):
        return []
    if w.sum() <= 0:
        w = np.ones(len(w))
    exact = total * w / w.sum()
    out = np.floor(exact).astype(np.int64)
    left = int(total - out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:left]] += 1
    return [int(v) for v in out]
