"""The integrity proof of a version (``gridmap validate``) and its problems as GeoJSON."""

from __future__ import annotations

import json
from datetime import datetime

import shapely
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import integrity
from ..domain.levels import check_level
from ..store import buildings, grids


def validate(
    eng: Engine,
    *,
    level: str | None = None,
    tolerance: float = integrity.DEFAULT_TOLERANCE_M2,
    at: datetime | None = None,
) -> list[integrity.Problem]:
    """Run every integrity check on the version valid at ``at`` (default: current)."""
    if level is not None:
        check_level(level)
    frame = grids.frame(eng, at=at)
    return integrity.validate(
        frame, building_households=buildings.households_by_courtyard(eng, at), tolerance=tolerance, level=level
    )


def grid_count(eng: Engine, *, level: str | None = None, at: datetime | None = None) -> int:
    """How many grids (of ``level``) the version valid at ``at`` holds."""
    with eng.connect() as conn:
        return grids.count(conn, level=level, at=at)


def problems_geojson(problems) -> dict:
    """Problems as an RFC 7946 FeatureCollection (the offending area as geometry)."""
    features = []
    for p in problems:
        geom = None
        if p.geometry is not None:
            geom = json.loads(shapely.to_geojson(geo.rfc7946([p.geometry])[0]))
        features.append({"type": "Feature", "geometry": geom, "properties": p.to_dict()})
    return {"type": "FeatureCollection", "features": features}
