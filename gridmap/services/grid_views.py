"""What the JSON API and the map page read about grids: one grid with its chain, a level's grids,
the info panel, search (grids and addresses), statistics and the households histogram."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import shapely
from sqlalchemy.engine import Engine

from .. import geo
from ..domain.levels import HOUSEHOLD_BAND
from ..domain.risk import Rules
from ..errors import InputError, NotFound
from ..store import grids, points, risk, shares
from .boundary_edits import etag
from .locator import Locator


def grid(eng: Engine, code: str, *, at: datetime | None = None, crs: str = "wgs84") -> dict:
    """One grid as a GeoJSON Feature with its parent chain and its version's ETag (``properties.version``),
    drawn for a ``crs`` base map; NotFound when no version of ``code`` is valid at ``at``."""
    with eng.connect() as conn:
        feature = grids.feature(conn, code, at)
        if feature is None:
            when = f" at {at.isoformat()}" if at else ""
            raise NotFound(f"no grid with code {code!r}{when}")
        feature["properties"]["chain"] = grids.chain(conn, code, at)
    feature["geometry"] = geo.onto_basemap(feature["geometry"], crs)
    feature["properties"]["version"] = etag(feature["properties"].pop("version_id"))
    return feature


def level(eng: Engine, level_name: str, *, simplify_m: float, bbox=None) -> dict:
    """Current grids of one level as a FeatureCollection."""
    with eng.connect() as conn:
        return grids.level_collection(conn, level_name, simplify_m=simplify_m, bbox=bbox)


def panel(eng: Engine, code: str, rules: Rules) -> dict:
    """Everything the map's info panel shows for one current grid: its chain, code, households,
    population, responsible people, risk elements by colour and overdue, and open reports."""
    with eng.connect() as conn:
        feature = grids.feature(conn, code)
        if feature is None:
            raise NotFound(f"no current grid with code {code!r}")
        props = feature["properties"]
        props["version"] = etag(props.pop("version_id"))
        props["chain"] = grids.chain(conn, code)
        props["risk"] = risk.grid_summary(conn, code, rules)
        props["reports"] = points.open_reports_below(conn, code, props["level"])
        if props["level"] == "micro":
            props["shares"] = _floors_held(conn, code)
    bbox = [round(v, 7) for v in shapely.geometry.shape(feature["geometry"]).bounds]
    return {"type": "Feature", "id": code, "bbox": bbox, "geometry": None, "properties": props}


def _floors_held(conn, code: str) -> list[dict]:
    """The buildings a micro-grid holds floors of: per building its units (whole, or a floor range) and
    the other micro-grids sharing the building."""
    held = shares.of_grids(conn, codes=[code])
    units = {(u[0], u[2]): u[4] for u in shares.units(conn, courtyards=sorted(set(held["parent_code"])))}
    out = []
    for building, group in held.groupby("building_code", sort=True):
        others = sorted({r[0] for r in shares.of_building(conn, building)} - {code})
        out.append(
            {
                "building": building,
                "units": [
                    {
                        "unit": int(u),
                        "floor_from": int(f0),
                        "floor_to": int(f1),
                        "households": int(h),
                        "whole": f0 == 1 and f1 == (units.get((building, u)) or f1),
                    }
                    for u, f0, f1, h in zip(group["unit"], group["floor_from"], group["floor_to"], group["households"])
                ],
                "shared_with": others,
            }
        )
    return out


def search(eng: Engine, locator: Locator, q: str, *, limit: int, crs: str) -> dict:
    """Grids by code or name, then the address gazetteer; each hit has a bbox (for ``crs``) to fly to.
    When nothing is found and ``q`` is no address the gazetteer can place, ``address_error`` says why."""
    with eng.connect() as conn:
        hits = [{**h, "type": "grid"} for h in grids.search(conn, q, limit)]
    address_error = None
    if len(hits) < limit:
        try:
            found = locator.lookup_address(q)
        except InputError as exc:  # not an address, or one the gazetteer cannot place: say why
            found, address_error = None, exc.message
        if found and found.get("chain"):
            addr = found["address"]
            micro = found["chain"][-1]
            d = 0.0008  # ~80 m around the building
            hits.append(
                {
                    "type": "address",
                    "code": micro["code"],
                    "name": q,
                    "level": micro["level"],
                    "building": addr["building"],
                    "point": [found["lon"], found["lat"]],
                    "bbox": [found["lon"] - d, found["lat"] - d, found["lon"] + d, found["lat"] + d],
                }
            )
    for h in hits:
        h["bbox"] = geo.bbox_between(h["bbox"], "wgs84", crs)
    body = {"query": q, "results": hits[:limit], "crs": crs}
    if not hits and address_error:
        body["address_error"] = address_error
    return body


def stats(eng: Engine) -> dict:
    """Counts, households and population per level of the current version."""
    with eng.connect() as conn:
        return grids.stats(conn)


def extent(eng: Engine) -> tuple[float, float, float, float] | None:
    """Bounds of the current grids (None when there are none)."""
    with eng.connect() as conn:
        return grids.extent(conn)


def micro_household_histogram(eng: Engine, width: int) -> dict:
    """Histogram of households per current micro-grid in bins of ``width``, with the share in the band."""
    with eng.connect() as conn:
        values = np.asarray(grids.micro_households(conn), dtype=int)
    lo_band, hi_band = HOUSEHOLD_BAND
    if len(values) == 0:
        return {"bin": width, "bins": [], "count": 0, "band": [lo_band, hi_band], "in_band": 0}
    lo = values.min() // width * width
    edges = np.arange(lo, values.max() + width + 1, width)
    counts, _ = np.histogram(values, bins=edges)
    return {
        "bin": width,
        "count": int(len(values)),
        "median": float(np.median(values)),
        "band": [lo_band, hi_band],
        "in_band": int(((values >= lo_band) & (values <= hi_band)).sum()),
        "bins": [{"from": int(a), "to": int(a + width - 1), "grids": int(c)} for a, c in zip(edges[:-1], counts)],
    }
