"""What the JSON API and the map page read about grids: one grid with its chain, a level's grids,
the info panel, search (grids and addresses), statistics and the households histogram."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import shapely
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import risk as risk_domain
from ..domain.levels import HOUSEHOLD_BAND
from ..domain.people import LABELS as ROLE_LABELS
from ..domain.risk import Rules
from ..errors import Gone, InputError, NotFound
from ..store import audit, db, grids, people, points, risk, shares
from .boundary_edits import etag
from .locator import Locator


def grid(eng: Engine, code: str, *, at: datetime | None = None, crs: str = "wgs84") -> dict:
    """One grid as a GeoJSON Feature with its parent chain and its version's ETag (``properties.version``),
    drawn for a ``crs`` base map; NotFound when no version of ``code`` is valid at ``at``."""
    with eng.connect() as conn:
        feature = grids.feature(conn, code, at)
        if feature is None:
            if at is None:
                _raise_if_retired(conn, code)
            when = f" at {db.iso(conn, at)}" if at else ""
            raise NotFound(f"no grid with code {code!r}{when}")
        feature["properties"]["chain"] = grids.chain(conn, code, at)
        feature["properties"]["people"] = _people(conn, code, at)
    feature["geometry"] = geo.onto_basemap(feature["geometry"], crs)
    feature["properties"]["version"] = etag(feature["properties"].pop("version_id"))
    return feature


def _people(conn, code: str, at: datetime | None = None) -> list[dict]:
    """The people holding posts on grid ``code`` at ``at`` (now when None): name, role, phone as stored
    (personal data: the web layer shows them as the caller's role may see them)."""
    return [
        {"name": p["name"], "role": p["role"], "role_label": ROLE_LABELS[p["role"]], "phone": p["phone"]}
        for p in people.posts(conn, grids=[code], at=at)
    ]


def _raise_if_retired(conn, code: str) -> None:
    """Raise Gone (410) when ``code`` was retired: its last version, when and by which edit it was
    retired, and the current grids that hold its area now."""
    issued = grids.issued(conn, [code]).get(code)
    if issued is None or issued[1] is None:
        return
    last = grids.feature(conn, code, last=True)
    last["properties"]["version"] = etag(last["properties"].pop("version_id"))
    logged = audit.entries_for(conn, code)
    by = logged[-1] if logged else None  # nothing touches a code after it is retired
    retired_by = None if by is None else {**by, "at": db.iso(conn, by["at"])}
    now_in = grids.successors(conn, code)
    # who made the edit and why are personal (the web layer shows ``retired_by``'s actor and reason to
    # a role that may read them, as it does the edit log's); the message says which edit
    how = f" by edit {by['id']} ({by['action']})" if by else ""
    where = f"; its area is now in {', '.join(s['code'] for s in now_in)}" if now_in else ""
    raise Gone(
        f"grid {code} was retired on {db.iso(conn, issued[1])}{how}{where}",
        {
            "code": code,
            "retired_at": db.iso(conn, issued[1]),
            "retired_by": retired_by,
            "successors": now_in,
            "last_version": last,
        },
    )


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
            _raise_if_retired(conn, code)
            raise NotFound(f"no current grid with code {code!r}")
        props = feature["properties"]
        props["version"] = etag(props.pop("version_id"))
        props["chain"] = grids.chain(conn, code)
        props["people"] = _people(conn, code)
        props["risk"] = risk.grid_summary(conn, code, rules)
        summary = props["risk"]
        props["risk"]["rule"] = risk_domain.explain_colour(
            summary["red"], summary["yellow"], summary["blue"], props["level"], rules
        )
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
        for h in grids.search_retired(conn, q, limit - len(hits)) if len(hits) < limit else []:
            now_in = [s["code"] for s in grids.successors(conn, h["code"])]
            where = f"; its area is now in {', '.join(now_in)}" if now_in else ""
            message = f"{h['code']} {h['name']} was retired on {h['retired_at']}{where}"
            hits.append({**h, "type": "retired", "successors": now_in, "message": message})
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


def stats(eng: Engine, at: datetime | None = None) -> dict:
    """Counts, households and population per level of the current version (or the one valid at ``at``),
    and when the oldest version begins (``first_valid_from``: nothing exists before it)."""
    with eng.connect() as conn:
        body = grids.stats(conn, at)
        first = grids.first_valid_from(conn)
    body["at"] = db.iso(eng, at)
    body["first_valid_from"] = db.iso(eng, first)
    return body


def labels(eng: Engine, level_name: str, bbox, *, at: datetime | None = None, crs: str = "wgs84") -> dict:
    """Where the map writes the names of ``level``'s grids in ``bbox`` (``crs`` base map frame)."""
    box = geo.bbox_between(bbox, crs, "wgs84")
    with eng.connect() as conn:
        rows = grids.labels(conn, level_name, box, at)
    if rows and crs != "wgs84":
        xs, ys = geo.transform_xy([r["lon"] for r in rows], [r["lat"] for r in rows], "EPSG:4326", crs)
        for r, x, y in zip(rows, xs, ys):
            r["lon"], r["lat"] = float(x), float(y)
    return {"level": level_name, "labels": [{**r, "lon": round(r["lon"], 7), "lat": round(r["lat"], 7)} for r in rows]}


def first_valid_from(eng: Engine) -> datetime | None:
    """When the oldest grid version begins (None without grids)."""
    with eng.connect() as conn:
        return grids.first_valid_from(conn)


def extent(eng: Engine) -> tuple[float, float, float, float] | None:
    """Bounds of the current grids (None when there are none)."""
    with eng.connect() as conn:
        return grids.extent(conn)


def micro_household_histogram(
    eng: Engine, width: int, band: tuple[int, int] = HOUSEHOLD_BAND, at: datetime | None = None
) -> dict:
    """Histogram of households per current micro-grid (or valid at ``at``) in bins of ``width``, with the
    share in ``band`` (the settings' household band)."""
    with eng.connect() as conn:
        values = np.asarray(grids.micro_households(conn, at), dtype=int)
    lo_band, hi_band = band
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


def inside_point(eng: Engine) -> tuple[float, float] | None:
    """A point inside some current micro-grid (a server warms its request threads with its lookup);
    None when there is none or the database cannot be reached (the threads then warm on their first
    requests)."""
    try:
        with eng.connect() as conn:
            return grids.inside_point(conn)
    except sa_exc.OperationalError:
        return None
