"""Vector tiles of every grid level and overlay, from PostGIS, through a cache that never goes stale.

Each worker keeps the tiles it has made in an LRU cache (cachetools) keyed by the grid and layer
epochs, which every write moves, so a cached tile is never stale; risk tiles are also keyed by the
minute, since "overdue" moves with the clock.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime

from cachetools import LRUCache
from sqlalchemy.engine import Engine

from ..domain import tiling
from ..domain.risk import Rules
from ..store import risk, tiles

#: Bytes of tiles kept per worker.
CACHE_BYTES = 128 * 1024 * 1024


class TileCache:
    """Made tiles by key, at most ``max_bytes`` of them (least recently used go first); thread-safe."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self._cache = LRUCache(maxsize=max_bytes, getsizeof=lambda v: len(v[0]) + 100)
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            return self._cache.get(key)

    def put(self, key, value):
        with self._lock:
            self._cache[key] = value


def render(conn, spec: dict, tile: tiling.Tile, crs: str, rules: Rules, at=None, personal: bool = True) -> bytes:
    """One layer's tile (empty outside the layer's zooms); grid layers as of ``at`` when given; risk
    layers without personal data unless ``personal``."""
    if not spec["min_zoom"] <= tile.z <= spec["max_zoom"]:
        return b""
    frame = tiling.frame(tile, crs)
    if spec["source"] == "grid":
        return tiles.grid_tile(conn, tile, frame, spec["name"], level=spec["level"], risk_only=spec["risk_only"], at=at)
    if spec["source"] == "building":
        return tiles.building_tile(conn, tile, frame, spec["name"])
    return tiles.risk_tile(
        conn,
        tile,
        frame,
        spec["name"],
        overdue_sql=risk.overdue_sql(rules, alias="e", at_param="now()"),
        colour=spec.get("colour_filter"),
        kind=spec.get("kind_filter"),
        personal=personal,
    )


def tile(
    eng: Engine,
    cache: TileCache,
    spec: dict,
    t: tiling.Tile,
    crs: str,
    rules: Rules,
    at: datetime | None = None,
    personal: bool = True,
) -> tuple[bytes, str]:
    """(tile bytes, ETag) of layer ``spec`` at ``t`` for a ``crs`` base map, from ``cache`` when fresh
    (``personal``: see :func:`render`)."""
    with eng.connect() as conn:
        epochs = tiles.data_epochs(conn)
        minute = int(time.time() // 60) if spec["source"] == "risk" else 0
        personal = personal or spec["source"] != "risk"  # one cache entry where nothing personal is drawn
        key = (spec["name"], t, crs, epochs, minute, at, personal)
        hit = cache.get(key)
        if hit is None:
            data = render(conn, spec, t, crs, rules, at, personal)
            hit = (data, hashlib.blake2b(data, digest_size=12).hexdigest())
            cache.put(key, hit)
    return hit
