"""Grids over the JSON API (``/api/v1``): one grid, a level's grids, the map's info panel, search,
statistics.  Handlers parse (:mod:`.params`), call a service, and write JSON."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..domain.levels import check_level
from ..errors import InputError
from ..services import grid_views
from ..services.layers import layer_for
from . import params
from .context import engine, locator, read_engine, risk_rules, settings
from .privacy import private, private_each

#: Personal fields of the reports a panel lists (see :mod:`.privacy`).
REPORT_PRIVATE = ("text", "address")

bp = Blueprint("grids", __name__, url_prefix="/api/v1")


@bp.get("/grids/<code>")
def grid(code: str):
    """One grid as a GeoJSON Feature with its parent chain (``at=`` for a past date; ``crs=gcj02``
    to draw it on a GCJ-02 base map)."""
    feature = grid_views.grid(engine(), code, at=params.at(), crs=params.basemap_crs())
    private(feature["properties"], "people")
    response = jsonify(feature)
    response.headers["ETag"] = feature["properties"]["version"]  # the If-Match of an edit based on it
    return response


@bp.get("/grids")
def grids_of_level():
    """Current grids of one level as a FeatureCollection (``level=`` required, ``bbox=`` optional)."""
    level = request.args.get("level")
    if not level:
        raise InputError("level is required: /api/v1/grids?level=street")
    check_level(level)
    simplify_m = params.number("simplify_m", None, 0, 100_000)
    if simplify_m is None:
        simplify_m = float(layer_for(settings().layers_dir, level)["simplify_m"])
    response = jsonify(grid_views.level(engine(), level, simplify_m=simplify_m, bbox=params.bbox()))
    response.cache_control.max_age = 60
    return response


@bp.get("/stats")
def stats():
    """Counts, households and population per level of the current version (``at=``: of a past date)."""
    return jsonify(grid_views.stats(engine(), params.at()))


@bp.get("/stats/micro-households")
def micro_household_histogram():
    """Histogram of households per current micro-grid (``bin=`` width, default 5), against the settings'
    household band."""
    width = params.integer("bin", 5, 1, 1000)
    band = settings().household_band
    return jsonify(grid_views.micro_household_histogram(engine(), width, band, params.at()))


@bp.get("/labels")
def labels():
    """Names to write on the map: ``level=`` and ``bbox=`` required, ``at=`` a past date, ``crs=`` the base map."""
    level = request.args.get("level")
    box = params.bbox()
    if not level or box is None:
        raise InputError("level and bbox are required: /api/v1/labels?level=street&bbox=113.6,34.7,113.7,34.8")
    check_level(level)
    return jsonify(grid_views.labels(engine(), level, box, at=params.at(), crs=params.basemap_crs()))


@bp.get("/grids/<code>/panel")
def grid_panel(code: str):
    """Everything the map's info panel shows for one current grid: its chain, code, households,
    population, responsible people, risk elements by colour and overdue, and open reports."""
    body = grid_views.panel(read_engine(), code, risk_rules())
    private(body["properties"], "people")
    private_each(body["properties"]["reports"]["latest"], *REPORT_PRIVATE)
    return jsonify(body)


@bp.get("/search")
def search():
    """Grids by code or name, and addresses through the gazetteer: ``q=``; each hit has a bbox to fly to."""
    q = params.text("q", 200)
    if not q:
        raise InputError("q is required: /api/v1/search?q=410102 or a grid name or an address")
    limit = params.integer("limit", 10, 1, 100)
    return jsonify(grid_views.search(engine(), locator(), q, limit=limit, crs=params.basemap_crs()))
