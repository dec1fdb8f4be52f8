"""Partition courtyards into micro-grids (the service behind `gridmap partition` and the API).

Reads courtyards, buildings and units from the store, runs :mod:`gridmap.domain.partition` on
each courtyard (in worker processes when there are many), and either writes a preview or
replaces the courtyards' current micro-grids with a new dated version in one transaction
(residents and reports of the touched grids are reassigned in the same transaction).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy.engine import Engine

from .. import geo
from ..domain.partition import Band, BuildingIn, VisitModel, partition
from ..domain.risk import Rules
from ..errors import InputError, NotFound
from ..store import audit, buildings, grids, points, risk
from .files import check_output

#: Below this many courtyards the work stays in this process.
PARALLEL_FROM = 200


def _select(conn, courtyard, community, everything):
    chosen = [x for x in (courtyard, community, everything or None) if x]
    if len(chosen) != 1:
        raise InputError("choose exactly one of --courtyard CODE, --community CODE or --all")
    if courtyard:
        yards = grids.courtyards(conn, codes=[courtyard])
        if not yards:
            raise NotFound(f"no current courtyard with code {courtyard!r}")
    elif community:
        yards = grids.courtyards(conn, community=community)
        if not yards:
            raise NotFound(f"no current courtyards in community {community!r}")
    else:
        yards = grids.courtyards(conn)
        if not yards:
            raise NotFound("there are no courtyards to partition: import or load some first")
    return yards, buildings.in_courtyards(conn, [y[0] for y in yards])


def _work(args):
    """Partition a batch of courtyards (runs in a worker process). Geometry travels as WKB."""
    batch, band, seed, visit = args
    out = []
    for code, outline_wkb, rows in batch:
        blds = [BuildingIn(b[0], shapely.from_wkb(b[2]), list(b[3]), b[1]) for b in rows]
        try:
            plan = partition(code, shapely.from_wkb(outline_wkb), blds, band, seed=seed, visit=visit)
        except InputError as exc:
            out.append((code, None, str(exc)))
            continue
        for g in plan.grids:
            g["geometry"] = shapely.to_wkb(g["geometry"])
        out.append((code, plan, None))
    return out


def run(
    eng: Engine,
    *,
    rules: Rules,
    courtyard: str | None = None,
    community: str | None = None,
    everything: bool = False,
    band: Band = Band(),
    seed: int = 0,
    visit: VisitModel = VisitModel(),
    dry_run: bool = False,
    out=None,
    actor: str = "cli",
    reason: str | None = None,
    at: datetime | None = None,
    progress=None,
    workers: int | None = None,
    with_preview: bool = False,
) -> dict:
    """Propose micro-grids for the chosen courtyards; commit them unless ``dry_run`` (refreshing the risk
    roll-up with ``rules``, the rules in force). Returns the report (with the proposals as GeoJSON under
    ``preview_geojson`` when ``with_preview``)."""
    t0 = time.perf_counter()
    if out is not None:
        out = check_output(out, (".geojson", ".json"))
    with eng.connect() as conn:
        yards, inputs = _select(conn, courtyard, community, everything)
    by_yard = defaultdict(list)
    for code, yard, floors, wkb, units in inputs:
        by_yard[yard].append((code, floors, wkb, units))
    names = {y[0]: y[1] for y in yards}
    # people per household in each courtyard, to estimate the new grids' population
    ratio = {y[0]: (y[5] / y[4] if y[4] else 0.0) for y in yards}
    jobs = [(y[0], y[3], by_yard.get(y[0], [])) for y in yards]
    workers = workers or (min(os.cpu_count() or 1, 4) if len(jobs) >= PARALLEL_FROM else 1)
    size = max(1, min(50, len(jobs) // (workers * 8) or 1))
    batches = [(jobs[i : i + size], band, seed, visit) for i in range(0, len(jobs), size)]
    results = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for done in pool.map(_work, batches):
                results += done
                progress and progress(len(done))
    else:
        for batch in batches:
            done = _work(batch)
            results += done
            progress and progress(len(done))
    bad = [(code, err) for code, _, err in results if err]
    if bad:
        more = f" (and {len(bad) - 1} more courtyards)" if len(bad) > 1 else ""
        raise InputError(bad[0][1] + more)
    plans = [plan for _, plan, _ in results]
    report = _report(plans, band, visit)
    report["seconds_partition"] = round(time.perf_counter() - t0, 2)
    if out is not None or with_preview:
        collection = preview_collection(plans, names, ratio)
        if out is not None:
            _write_preview(collection, out)
            report["preview"] = str(out)
        if with_preview:
            report["preview_geojson"] = collection
    if not dry_run:
        t1 = time.perf_counter()
        report["written"] = _commit(
            eng, plans, names, ratio, rules=rules, actor=actor, reason=reason, at=at, report=report
        )
        report["seconds_write"] = round(time.perf_counter() - t1, 2)
    report["dry_run"] = dry_run
    return report


def _report(plans, band: Band, visit: VisitModel) -> dict:
    ok = [p for p in plans if p.error is None]
    feasible = [p for p in ok if band.feasible(p.households)]  # totals that fit the band
    grids = [g for p in ok for g in p.grids]
    feasible_grids = [g for p in feasible for g in p.grids]
    pp = [g["polsby_popper"] for g in grids]
    minutes = [g["visit_minutes"] for g in grids]
    return {
        "band": [band.min, band.max],
        "policy": band.policy,
        "visit_model": {
            "walk_m_per_min": visit.walk_m_per_min,
            "per_entrance_min": visit.per_entrance_min,
            "per_household_min": visit.per_household_min,
            "limit_min": visit.limit_min,
        },
        "summary": {
            "courtyards": len(plans),
            "households": int(sum(p.households for p in plans)),
            "micro_grids": len(grids),
            "in_band": sum(g["in_band"] for g in grids),
            "in_band_share": round(sum(g["in_band"] for g in grids) / len(grids), 4) if grids else None,
            "in_band_share_feasible": (
                round(sum(g["in_band"] for g in feasible_grids) / len(feasible_grids), 4) if feasible_grids else None
            ),
            "infeasible_totals": sum(1 for p in ok if p.note == "infeasible total"),
            "units_too_coarse": sum(1 for p in ok if p.note == "units too coarse for the band"),
            "failed": sum(1 for p in plans if p.error is not None),
            "split_units": sum(len(p.split_units) for p in ok),
            "polsby_popper_median": round(float(np.median(pp)), 3) if pp else None,
            "visit_minutes_median": round(float(np.median(minutes)), 1) if minutes else None,
            "over_time": sum(g["over_time"] for g in grids),
        },
        "courtyards": [p.summary() for p in plans],
    }


def _frame(plans, names, ratio) -> pd.DataFrame:
    rows = []
    for p in plans:
        if p.error is not None:
            continue
        for n, g in enumerate(p.grids, 1):
            geom = shapely.from_wkb(g["geometry"]) if isinstance(g["geometry"], bytes) else g["geometry"]
            rows.append(
                {
                    "code": g["code"],
                    "name": f"{names.get(p.courtyard, p.courtyard)}第{n}网格",
                    "level": "micro",
                    "kind": None,
                    "parent_code": p.courtyard,
                    "households": g["households"],
                    "population": int(round(g["households"] * ratio.get(p.courtyard, 0.0))),
                    "geometry": shapely.multipolygons([geom]) if geom.geom_type == "Polygon" else geom,
                    "in_band": g["in_band"],
                    "polsby_popper": g["polsby_popper"],
                    "visit_minutes": g["visit_minutes"],
                    "over_time": g["over_time"],
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "code",
            "name",
            "level",
            "kind",
            "parent_code",
            "households",
            "population",
            "geometry",
            "in_band",
            "polsby_popper",
            "visit_minutes",
            "over_time",
        ],
    )


def preview_collection(plans, names, ratio) -> dict:
    """The proposed micro-grids as an RFC 7946 FeatureCollection."""
    frame = _frame(plans, names, ratio)
    geoms = geo.rfc7946(frame.pop("geometry").to_numpy())
    features = [
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(g),
            "properties": {
                k: (None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v))
                for k, v in row.items()
            },
        }
        for g, row in zip(geoms, frame.to_dict("records"))
    ]
    return {"type": "FeatureCollection", "features": features}


def _write_preview(collection: dict, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(collection, ensure_ascii=False))
    tmp.replace(out)


def _commit(eng: Engine, plans, names, ratio, *, rules: Rules, actor, reason, at, report) -> dict:
    """Close the courtyards' current micro-grids and open the proposed ones, in one transaction."""
    at = at or datetime.now(UTC)
    frame = _frame(plans, names, ratio)
    yards = sorted({p.courtyard for p in plans if p.error is None})
    with eng.begin() as conn:
        old = grids.current_children(conn, yards)
        closed = grids.close(conn, old, at)
        grids.insert(conn, frame, at)
        touched = sorted(set(old) | set(frame["code"]))
        moved = points.reassign(conn, touched)
        risk.refresh_rollup(conn, rules)  # elements may have moved to the new micro-grids
        audit.log(
            conn,
            actor,
            "partition",
            reason,
            {
                "courtyards": len(yards),
                "closed": closed,
                "opened": len(frame),
                "reassigned": moved,
                "summary": report["summary"],
                "band": report["band"],
                "policy": report["policy"],
            },
            touched,
        )
    return {"closed": closed, "opened": len(frame), "reassigned": moved, "valid_from": at.isoformat()}
