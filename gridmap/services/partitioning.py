"""Partition courtyards into micro-grids (the service behind `gridmap partition` and the API).

Reads courtyards, buildings and their units' floors from the store, plans each courtyard in three
dimensions (:mod:`gridmap.domain.partition.compound`: whole buildings, whole units, floors of tall
units) in worker processes when there are many (they die with this process), and either writes a
preview or replaces the courtyards' current micro-grids with a new dated version in one transaction:
the grids (``multipart`` where a grid spans a road), their shares of the buildings (``grid_share``),
and residents and reports reassigned.  A courtyard that cannot be planned (bad input, or no plan
draws) is reported as failed with its reason; the others go on and are written.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import lazy_loader
import numpy as np
import shapely
from sqlalchemy.engine import Engine

from .. import geo
from ..domain.counts import apportion
from ..domain.partition import Band, VisitModel
from ..domain.partition.compound import Building, plan
from ..domain.partition.floors import Unit, even_floors
from ..domain.risk import Rules
from ..domain.wording import count
from ..errors import InputError, NotFound
from ..store import audit, buildings, db, grids, points, risk, shares
from . import codes as code_issue
from .files import check_output

pd = lazy_loader.load("pandas")

#: Below this many courtyards the work stays in this process.
PARALLEL_FROM = 200
#: Seconds one courtyard's search may take before its best plan so far is kept.
BUDGET_S = 8.0
#: How the API names the three choices in its messages; the CLI passes its flags (``option_names``).
CHOICES = {"courtyard": '"courtyard": CODE', "community": '"community": CODE', "all": '"all": true'}


def _select(conn, courtyard, community, everything, option_names=None):
    chosen = [x for x in (courtyard, community, everything or None) if x]
    if len(chosen) != 1:
        names = {**CHOICES, **(option_names or {})}
        raise InputError(f"choose exactly one of {names['courtyard']}, {names['community']} or {names['all']}")
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
    return yards, buildings.with_floors(conn, [y[0] for y in yards])


def building_of(code: str, floors, wkb, units) -> Building:
    """A store row as the planner's building: units with their floors' households (spread evenly over
    the unit's or the building's floors when only totals are known)."""
    out = []
    for number, households, unit_floors, floor_households in units:
        if floor_households:
            per = tuple(int(h) for h in floor_households)
        else:
            height = unit_floors or floors or max(1, -(-int(households) // 2))
            per = even_floors(int(households), int(height))
        out.append(Unit(code, int(number), per))
    return Building(code, shapely.from_wkb(wkb), tuple(out))


def _die_with_parent() -> None:
    """Worker initializer: the kernel sends SIGTERM to the worker when the parent dies (Linux), so a
    killed ``gridmap partition --all`` leaves no orphans computing."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the pool's own shutdown still applies
        pass


def _work(args):
    """Plan a batch of courtyards (runs in a worker process). Geometry travels as WKB; a courtyard that
    fails comes back with its reason instead of stopping the batch."""
    batch, band, visit = args
    out = []
    for code, outline_wkb, rows in batch:
        try:
            blds = [building_of(b[0], b[2], b[3], b[4]) for b in rows]
            result = plan(
                code,
                shapely.from_wkb(outline_wkb),
                blds,
                band.min,
                band.max,
                band.policy,
                budget_s=BUDGET_S,
                visit=visit,
            )
        except InputError as exc:
            out.append((code, None, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - one courtyard's geometry must not stop --all
            out.append((code, None, f"could not be planned: {type(exc).__name__}: {exc}"))
            continue
        if result.error:
            out.append((code, None, result.error))
            continue
        for g in result.grids:
            g["geometry"] = shapely.to_wkb(g["geometry"])
        out.append((code, result, None))
    return out


def run(
    eng: Engine,
    *,
    rules: Rules,
    courtyard: str | None = None,
    community: str | None = None,
    everything: bool = False,
    band: Band = Band(),
    seed: int = 0,  # kept for callers: the plan depends on the data alone, so every seed gives it
    visit: VisitModel = VisitModel(),
    dry_run: bool = False,
    out=None,
    actor: str = "cli",
    reason: str | None = None,
    at: datetime | None = None,
    progress=None,
    workers: int | None = None,
    with_preview: bool = False,
    option_names: dict[str, str] | None = None,
) -> dict:
    """Propose micro-grids for the chosen courtyards; commit them unless ``dry_run`` (refreshing the risk
    roll-up with ``rules``, the rules in force). Returns the report (with the proposals as GeoJSON under
    ``preview_geojson`` when ``with_preview``).  ``option_names``: how the caller names the choices
    ``courtyard``, ``community`` and ``all`` in its messages (the CLI's ``--courtyard CODE``)."""
    t0 = time.perf_counter()
    if out is not None:
        out = check_output(out, (".geojson", ".json"))
    with eng.connect() as conn:
        yards, inputs = _select(conn, courtyard, community, everything, option_names)
    by_yard = defaultdict(list)
    for code, yard, floors, wkb, units in inputs:
        by_yard[yard].append((code, yard, floors, wkb, units))
    names = {y[0]: y[1] for y in yards}
    # each courtyard's population, shared out over its new grids by households (they add up to it)
    population = {y[0]: int(y[5]) for y in yards}
    jobs = [(y[0], y[3], by_yard.get(y[0], [])) for y in yards]
    # the biggest courtyards first, so no worker is left with a long one at the end
    jobs.sort(key=lambda j: -sum(len(b[4]) for b in j[2]))
    workers = workers or (min(os.cpu_count() or 1, 4) if len(jobs) >= PARALLEL_FROM else 1)
    size = max(1, min(50, len(jobs) // (workers * 8) or 1))
    batches = [(jobs[i : i + size], band, visit) for i in range(0, len(jobs), size)]
    results = []
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_die_with_parent) as pool:
            for done in pool.map(_work, batches):
                results += done
                progress and progress(len(done))
    else:
        for batch in batches:
            done = _work(batch)
            results += done
            progress and progress(len(done))
    results.sort(key=lambda r: r[0])
    plans = [p for _, p, _ in results if p is not None]
    failed = [{"courtyard": code, "reason": err} for code, _, err in results if err]
    if failed and not plans:  # nothing to propose: the reason is the answer
        more = f" (and {count(len(failed) - 1, 'more courtyard')})" if len(failed) > 1 else ""
        first = failed[0]
        where = "" if first["courtyard"] in first["reason"] else f"courtyard {first['courtyard']}: "
        raise InputError(f"{where}{first['reason']}{more}")
    with eng.connect() as conn:
        _number(conn, plans)
    households = {y[0]: int(y[4]) for y in yards}
    report = _report(plans, failed, households, band, visit)
    report["seconds_partition"] = round(time.perf_counter() - t0, 2)
    if out is not None or with_preview:
        collection = preview_collection(plans, names, population)
        if out is not None:
            _write_preview(collection, out)
            report["preview"] = str(out)
        if with_preview:
            report["preview_geojson"] = collection
    if not dry_run and plans:
        t1 = time.perf_counter()
        report["written"] = _commit(
            eng, plans, names, population, rules=rules, actor=actor, reason=reason, at=at, report=report
        )
        report["seconds_write"] = round(time.perf_counter() - t1, 2)
    report["dry_run"] = dry_run
    return report


def _number(conn, plans) -> None:
    """Give the proposed micro-grids codes beyond every code ever issued in their courtyard (the
    dry run shows the codes the commit will issue; a retired code is never issued again)."""
    wanted = {p.courtyard: len(p.grids) for p in plans if p.grids}
    fresh = code_issue.issue_many(conn, wanted, "micro")
    for p in plans:
        renamed = dict(zip([g["code"] for g in p.grids], fresh.get(p.courtyard, [])))
        for g in p.grids:
            g["code"] = renamed[g["code"]]


def _courtyard(p, band: Band) -> dict:
    """One courtyard's lines of the report."""
    figures = p.figures(band.min, band.max)
    return {
        "courtyard": p.courtyard,
        "households": p.households,
        **figures,
        "in_band": figures["grids_in_band"],
        "feasible": band.feasible(p.households),
        "error": None,
        "seconds": p.seconds,
        "cpu_seconds": p.cpu_seconds,
        "polsby_popper_median": float(np.median([g["polsby_popper"] for g in p.grids])),
        "visit_minutes_max": float(max(g["visit_minutes"] for g in p.grids)),
        "over_time": [g["code"] for g in p.grids if g["over_time"]],
        "micro_grids": [
            {
                **{k: g[k] for k in ("code", "households", "in_band", "polsby_popper", "visit_minutes", "over_time")},
                "multipart": g["multipart"],
                "units": g["units"],
            }
            for g in p.grids
        ],
    }


def _report(plans, failed: list[dict], households: dict, band: Band, visit: VisitModel) -> dict:
    """The street office's figures: grids and households in band (all courtyards, and those whose
    total the band can hold), households in grids out of band, units split by floor, buildings shared,
    the largest grid, multi-part grids, shape and visit time (stairs included), failures with reasons."""
    lines = [_courtyard(p, band) for p in plans]
    grids_all = [g for p in plans for g in p.grids]
    feasible = [p for p in plans if band.feasible(p.households)]
    hh = sum(p.households for p in plans)
    hh_in = sum(c["households_in_band"] for c in lines)
    f_hh = sum(p.households for p in feasible)
    f_in = sum(c["households_in_band"] for c, p in zip(lines, plans) if band.feasible(p.households))
    f_grids = [g for p in feasible for g in p.grids]
    pp = [g["polsby_popper"] for g in grids_all]
    minutes = [g["visit_minutes"] for g in grids_all]
    largest = max(grids_all, key=lambda g: g["households"]) if grids_all else None

    def share(a, b):
        return round(a / b, 4) if b else None

    return {
        "band": [band.min, band.max],
        "policy": band.policy,
        "visit_model": {
            "walk_m_per_min": visit.walk_m_per_min,
            "per_entrance_min": visit.per_entrance_min,
            "per_household_min": visit.per_household_min,
            "per_floor_climbed_min": 0.3,
            "limit_min": visit.limit_min,
        },
        "summary": {
            "courtyards": len(plans) + len(failed),
            "households": int(hh + sum(households.get(f["courtyard"], 0) for f in failed)),
            "micro_grids": len(grids_all),
            "in_band": sum(g["in_band"] for g in grids_all),
            "in_band_share": share(sum(g["in_band"] for g in grids_all), len(grids_all)),
            "households_in_band_share": share(hh_in, hh),
            "in_band_share_feasible": share(sum(g["in_band"] for g in f_grids), len(f_grids)),
            "households_in_band_share_feasible": share(f_in, f_hh),
            "households_out_of_band": int(hh - hh_in),
            "infeasible_totals": len(plans) - len(feasible),
            "units_split_by_floor": sum(c["units_split_by_floor"] for c in lines),
            "buildings_shared": sum(c["buildings_shared"] for c in lines),
            "multipart": sum(c["multipart"] for c in lines),
            "largest_grid": {"code": largest["code"], "households": largest["households"]} if largest else None,
            "failed": len(failed),
            "polsby_popper_median": round(float(np.median(pp)), 3) if pp else None,
            "visit_minutes_median": round(float(np.median(minutes)), 1) if minutes else None,
            "over_time": sum(g["over_time"] for g in grids_all),
            "slowest_courtyard_s": max((p.seconds for p in plans), default=None),
            # CPU seconds of the planner (worker processes' own time): on a machine others share, the wall
            # times above stretch with the load; these do not, and their sum over the cores is the idle run
            "slowest_courtyard_cpu_s": max((p.cpu_seconds for p in plans), default=None),
            "cpu_seconds": round(sum(p.cpu_seconds for p in plans), 2),
        },
        "failed": failed,
        "courtyards": lines,
    }


def _frame(plans, names, population) -> pd.DataFrame:
    rows = []
    for p in plans:
        pops = apportion(population.get(p.courtyard, 0), [g["households"] for g in p.grids])
        for n, (g, share) in enumerate(zip(p.grids, pops), 1):
            geom = shapely.from_wkb(g["geometry"]) if isinstance(g["geometry"], bytes) else g["geometry"]
            rows.append(
                {
                    "code": g["code"],
                    "name": f"{names.get(p.courtyard, p.courtyard)}第{n}网格",
                    "level": "micro",
                    "kind": None,
                    "parent_code": p.courtyard,
                    "households": g["households"],
                    "population": share,
                    "geometry": shapely.multipolygons([geom]) if geom.geom_type == "Polygon" else geom,
                    "multipart": g["multipart"],
                    "in_band": g["in_band"],
                    "polsby_popper": g["polsby_popper"],
                    "visit_minutes": g["visit_minutes"],
                    "over_time": g["over_time"],
                    "floors": "; ".join(g["units"]),
                }
            )
    columns = [
        "code",
        "name",
        "level",
        "kind",
        "parent_code",
        "households",
        "population",
        "geometry",
        "multipart",
        "in_band",
        "polsby_popper",
        "visit_minutes",
        "over_time",
        "floors",
    ]
    return pd.DataFrame(rows, columns=columns)


def _share_frame(plans) -> pd.DataFrame:
    rows = [
        (g["code"], s.building, s.unit, s.floor_from, s.floor_to, s.households)
        for p in plans
        for g in p.grids
        for s in g["shares"]
    ]
    return pd.DataFrame(rows, columns=shares.COLUMNS)


def preview_collection(plans, names, population) -> dict:
    """The proposed micro-grids as an RFC 7946 FeatureCollection."""
    frame = _frame(plans, names, population)
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


def _commit(eng: Engine, plans, names, population, *, rules: Rules, actor, reason, at, report) -> dict:
    """Close the courtyards' current micro-grids and open the proposed ones with their shares, in one
    transaction.  Raises Busy when another write holds the grids past the lock timeout, WorkLimit when a
    statement runs past the statement timeout (nothing is written either way)."""
    yards = sorted({p.courtyard for p in plans})
    with db.translated(), eng.begin() as conn:
        # bounded like an edit's (settings' statement_timeout_ms, lock_timeout_ms): a partition waiting
        # on grids an edit holds gives up with Busy (503 / exit 2) instead of queueing every write behind it
        db.limit_time(conn)
        at = at or db.now(conn)
        frame = _frame(plans, names, population)
        old = grids.current_children(conn, yards)
        closed = grids.close(conn, old, at)
        grids.insert(conn, frame, at)
        grids.set_multipart(conn, frame.loc[frame["multipart"], "code"])
        n_shares = shares.insert(conn, _share_frame(plans))
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
                "shares": n_shares,
                "reassigned": moved,
                "summary": report["summary"],
                "band": report["band"],
                "policy": report["policy"],
            },
            touched,
        )
    return {
        "closed": closed,
        "opened": len(frame),
        "shares": n_shares,
        "reassigned": moved,
        "valid_from": db.iso(eng, at),
    }
