"""Citizen reports for the map: ``GET /api/v1/reports``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..services import reports as report_views
from . import params
from .context import engine
from .grids import REPORT_PRIVATE
from .privacy import private_each

bp = Blueprint("reports", __name__, url_prefix="/api/v1")


@bp.get("/reports")
def reports():
    """Reports with a point as GeoJSON: ``bbox=`` (minlon,minlat,maxlon,maxlat), ``status=``, ``limit=``."""
    status = params.choice("status", ("open", "closed"))
    crs = params.basemap_crs()
    body = report_views.in_box(
        engine(), params.bbox(), crs=crs, status=status, limit=params.integer("limit", 5000, 1, 50000)
    )
    private_each(body["features"], *REPORT_PRIVATE, within="properties")
    return jsonify(body)
