"""Citizen reports for the map: the ones in a box, drawn for a wgs84 or gcj02 base map."""

from __future__ import annotations

import numpy as np
from sqlalchemy.engine import Engine

from .. import geo
from ..store import points


def in_box(eng: Engine, bbox, *, crs: str, status: str | None = None, limit: int = 5000) -> dict:
    """Reports with a point in ``bbox`` (drawn on a ``crs`` base map) as a FeatureCollection in ``crs``,
    newest first, with the total matched."""
    with eng.connect() as conn:
        body = points.reports(conn, geo.bbox_between(bbox, crs, "wgs84"), status=status, limit=limit)
    if crs != "wgs84" and body["features"]:
        xy = np.array([f["geometry"]["coordinates"] for f in body["features"]])
        x, y = geo.transform_xy(xy[:, 0], xy[:, 1], f"EPSG:{geo.STORAGE_SRID}", crs)
        for f, a, b in zip(body["features"], x, y):
            f["geometry"]["coordinates"] = [round(float(a), 7), round(float(b), 7)]
    body["crs"] = crs
    return body
