"""Duplicate suggestions: open cases of the same matter within the matter's radius and window.

Pure and vectorised; coordinates are metric (EPSG:4547), so a radius is plain Euclidean metres.
The store narrows candidates with an index first; this ranks them: nearest first, then newest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Suggestion:
    """A possible duplicate: the case, how far (m) and how many hours apart it was reported."""

    case_id: int
    distance_m: float
    hours_apart: float


def suggest(
    x: float,
    y: float,
    at: datetime,
    ids,
    xs,
    ys,
    reported_at,
    *,
    radius_m: float,
    window_h: float,
    limit: int = 5,
) -> list[Suggestion]:
    """Candidates (parallel sequences) within ``radius_m`` and ``window_h`` of (x, y, at), best first."""
    ids = np.asarray(ids, dtype="int64")
    if not len(ids):
        return []
    dist = np.hypot(np.asarray(xs, dtype=float) - x, np.asarray(ys, dtype=float) - y)
    hours = np.array([abs((at - t).total_seconds()) / 3600.0 for t in reported_at])
    keep = (dist <= radius_m) & (hours <= window_h)
    order = np.lexsort((hours[keep], dist[keep]))
    return [
        Suggestion(int(i), round(float(d), 1), round(float(h), 2))
        for i, d, h in zip(ids[keep][order], dist[keep][order], hours[keep][order], strict=True)
    ][:limit]
