"""Mapbox vector tiles of every grid level and overlay: ``/tiles/{layer}/{z}/{x}/{y}.pbf``.

Tiles come straight from PostGIS (``ST_AsMVT``).  Each worker keeps the tiles it has made in an
LRU cache (cachetools) keyed by the grid and layer epochs, which every write moves, so a cached
tile is never stale; risk tiles are also keyed by the minute, since "overdue" moves with the clock.
Responses carry ``Cache-Control`` and an ``ETag``; a matching ``If-None-Match`` gets 304.
"""
from __future__ import annotations

import hashlib
import threading
import time

from cachetools import LRUCache
from flask import Blueprint, Response, current_app, request

from .. import ops
from ..domain import tiling
from ..errors import InputError, NotFound
from ..store import tiles as store
from .api import engine, risk_rules
from .layers import tile_layers

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT = "application/vnd.mapbox-vector-tile"
#: Bytes of tiles kept per worker.
CACHE_BYTES = 128 * 1024 * 1024
MAX_AGE_S = 60


class TileCache:
    def __init__(self, max_bytes: int = CACHE_BYTES):
        self._cache = LRUCache(maxsize=max_bytes, getsizeof=lambda v: len(v[0]) + 100)
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            return self._cache.get(key)

    def put(self, key, value):
        with self._lock:
            self._cache[key] = value


def _cache() -> TileCache:
    cache = current_app.extensions.get("gridmap.tiles")
    if cache is None:
        cache = current_app.extensions["gridmap.tiles"] = TileCache()
    return cache


def _overdue_sql() -> str:
    from ..store.risk import overdue_sql

    return overdue_sql(risk_rules(), alias="e", at_param="now()")


def render(conn, spec: dict, tile: tiling.Tile, crs: str, at=None) -> bytes:
    """One layer's tile (empty outside the layer's zooms); grid layers as of ``at`` when given."""
    if not spec["min_zoom"] <= tile.z <= spec["max_zoom"]:
        return b""
    frame = tiling.frame(tile, crs)
    if spec["source"] == "grid":
        return store.grid_tile(conn, tile, frame, spec["name"], level=spec["level"], risk_only=spec["risk_only"],
                               at=at)
    if spec["source"] == "building":
        return store.building_tile(conn, tile, frame, spec["name"])
    return store.risk_tile(conn, tile, frame, spec["name"], overdue_sql=_overdue_sql(),
                           colour=spec.get("colour_filter"), kind=spec.get("kind_filter"))


@bp.get("/<layer>/<z>/<x>/<y>.pbf")
def tile(layer: str, z: str, x: str, y: str):
    """A vector tile; ``crs=gcj02`` shifts it for a GCJ-02 base map (default: the configured base map);
    ``at=DATE`` draws the grid layers as they were on that date."""
    spec = tile_layers().get(layer)
    if spec is None:
        raise NotFound(f"no tile layer {layer!r}; layers: {', '.join(tile_layers())}")
    t = tiling.Tile.parse(z, x, y)
    crs = request.args.get("crs") or current_app.config.get("BASEMAP_CRS") or "wgs84"
    if crs not in ("wgs84", "gcj02"):
        raise InputError(f"crs must be wgs84 or gcj02 (the base map's frame), got {crs!r}")
    at = ops.parse_at(request.args.get("at"))  # grid layers: the boundaries valid on that date
    with engine().connect() as conn:
        epochs = store.data_epochs(conn)
        minute = int(time.time() // 60) if spec["source"] == "risk" else 0
        key = (layer, t, crs, epochs, minute, at)
        cache = _cache()
        hit = cache.get(key)
        if hit is None:
            data = render(conn, spec, t, crs, at)
            hit = (data, hashlib.blake2b(data, digest_size=12).hexdigest())
            cache.put(key, hit)
    data, etag = hit
    response = Response(data, mimetype=MVT)
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE_S
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)
