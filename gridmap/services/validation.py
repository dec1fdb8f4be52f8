"""The integrity proof of a version (``gridmap validate``) and its problems as GeoJSON."""

from __future__ import annotations

import json
from datetime import datetime

import shapely
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import integrity, integrity_shares
from ..domain.levels import check_level
from ..domain.partition.floors import even_floors
from ..store import buildings, grids, shares


def validate(
    eng: Engine,
    *,
    level: str | None = None,
    tolerance: float = integrity.DEFAULT_TOLERANCE_M2,
    at: datetime | None = None,
) -> list[integrity.Problem]:
    """Run every integrity check on the version valid at ``at`` (default: current): the plane rules of
    :mod:`..domain.integrity` (tiling in the stored coordinates; siblings may overlap only on the
    footprint of a tower both hold floors of), one connected piece per grid unless ``multipart``, and
    the shares of micro-grids (:mod:`..domain.integrity_shares`)."""
    if level is not None:
        check_level(level)
    frame = grids.frame(eng, at=at)
    with eng.connect() as conn:
        held = shares.of_grids(conn, at=at)
        units = shares.units(conn, at=at)
        feet = buildings.footprints(conn, at=at)
    problems = integrity.validate(
        frame,
        building_households=buildings.households_by_courtyard(eng, at),
        tolerance=tolerance,
        level=level,
        allowed_overlaps=integrity_shares.shared_footprints(zip(held["code"], held["building_code"]), feet),
    )
    checked = frame if level is None else frame[frame["level"] == level]
    problems += integrity_shares.check_connected(
        checked["code"].tolist(), checked["geometry"].to_numpy(), checked["multipart"].to_numpy(dtype=bool), tolerance
    )
    if level in (None, "micro"):
        micro = frame[frame["level"] == "micro"]
        partitioned = set(micro["parent_code"])  # a courtyard before it is partitioned holds no floors yet
        problems += integrity_shares.check_shares(
            [_unit(u) for u in units if u[1] in partitioned],
            list(
                held[["code", "building_code", "unit", "floor_from", "floor_to", "households"]].itertuples(
                    index=False, name=None
                )
            ),
            {
                c: {"households": int(h), "parent_code": p, "geometry": g}
                for c, h, p, g in zip(micro["code"], micro["households"], micro["parent_code"], micro["geometry"])
            },
            feet,
        )
    problems.sort(key=lambda p: (integrity.KINDS.index(p.kind), p.codes))
    return problems


def _unit(row) -> integrity_shares.UnitFloors:
    building, courtyard, number, households, floors, per_floor = row
    if per_floor:
        per = tuple(int(h) for h in per_floor)
    else:  # only the total is known: spread evenly, as the partitioner does
        per = even_floors(int(households), int(floors or max(1, -(-int(households) // 2))))
    return integrity_shares.UnitFloors(building, courtyard, int(number), per)


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
