"""Mapbox vector tiles of every grid level and overlay: ``/tiles/{layer}/{z}/{x}/{y}.pbf``.

Tiles come straight from PostGIS (``ST_AsMVT``) through a per-worker cache that never goes stale
(:mod:`gridmap.services.tiles`).  Responses carry ``Cache-Control`` and an ``ETag``; a matching
``If-None-Match`` gets 304.  Without ``crs=`` a tile is drawn for the configured base map's frame
(``layers/basemap.toml``).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..domain import tiling
from ..errors import NotFound
from ..services import tiles
from ..services.layers import basemap, tile_layers
from . import params
from .context import read_engine, risk_rules, settings
from .privacy import sees_private

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

MVT = "application/vnd.mapbox-vector-tile"
MAX_AGE_S = 60
CACHE = "gridmap.tiles"


def _cache() -> tiles.TileCache:
    cache = current_app.extensions.get(CACHE)
    if cache is None:
        cache = current_app.extensions[CACHE] = tiles.TileCache()
    return cache


@bp.get("/<layer>/<z>/<x>/<y>.pbf")
def tile(layer: str, z: str, x: str, y: str):
    """A vector tile; ``crs=gcj02`` shifts it for a GCJ-02 base map (default: the configured base map);
    ``at=DATE`` draws the grid layers as they were on that date."""
    layers = tile_layers(settings().layers_dir)
    spec = layers.get(layer)
    if spec is None:
        raise NotFound(f"no tile layer {layer!r}; layers: {', '.join(layers)}")
    t = tiling.Tile.parse(z, x, y)
    crs = params.basemap_crs(default=basemap(settings())["crs"])
    at = params.at()  # grid layers: the boundaries valid on that date
    personal = sees_private()
    data, etag = tiles.tile(read_engine(), _cache(), spec, t, crs, risk_rules(), at, personal)
    response = Response(data, mimetype=MVT)
    response.set_etag(etag)
    # a tile drawn for a token holder must not be kept by shared caches for others
    response.cache_control.public = not personal
    response.cache_control.private = personal or None
    response.cache_control.max_age = MAX_AGE_S
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)
