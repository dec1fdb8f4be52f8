#!/usr/bin/env python
"""Benchmark: courtyards -> micro-grids of 50-70 households, gridmap against spopt and GerryChain.

    python scripts/bench_partition.py [--courtyards 60] [--seed 1] [--repeat 3] [--spopt-limit 20] [--city]
                                      [--workers 2]

Courtyards come from the demo generator (``gridmap.domain.demo.city.bench_courtyards``): 30-2,000 households
(log-uniform), rectangles, Ls, Us and irregular Voronoi cells, a quarter of those over 250 households
holding a 200-household tower.  Every method partitions the same atoms: gridmap's stairwell units at
their entrances (a unit over 70 households already split by floors, as gridmap does), each given its
Voronoi cell clipped to the courtyard, so the competitors' regions tile the courtyard too.

  gridmap      ``partition()`` per courtyard (band 50-70, policy keep), one process
  spopt        ``MaxPHeuristic`` with a 50-household floor (rook contiguity of the cells, attributes the
               entrance coordinates, its default iterations), one child process, each courtyard cut
               off after --spopt-limit seconds (20): it then counts as failed and at the limit, so
               spopt's time is a lower bound
  GerryChain   ``recursive_tree_part`` into as many parts as gridmap's first plan, target H/k and the
               widest epsilon that keeps [50, 70] (10/60 when the total is infeasible), one process

Printed per method: share of micro-grids in [50, 70] (all courtyards, and courtyards whose total can
be split into the band), courtyards that failed, gap and overlap area (m², EPSG:4547), grids that are not
one polygon, split stairwell units, median Polsby-Popper, and time (median of --repeat for gridmap;
spopt and GerryChain once).  Goals (issue 4): 100 % in band on feasible courtyards, no gap or
overlap, >= 10x faster than spopt.  ``--city`` then times ``gridmap partition --all --dry-run`` on the
Zhengzhou-scale demo city in the database ``gridmap_bench`` (loaded when missing): goal <= 10 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridmap import geo  # noqa: E402
from gridmap.domain import partition as P  # noqa: E402
from gridmap.domain.demo.city import bench_courtyards  # noqa: E402
from gridmap.domain.partition.cells import Cells  # noqa: E402
from gridmap.domain.partition.geometry import polygons  # noqa: E402

BAND = P.Band(50, 70)


def prepare(courtyards):
    """Atoms per courtyard: cells, households, entrance coordinates, and the unit of each atom."""
    out = []
    for y in courtyards:
        buildings = [P.BuildingIn(b["code"], b["footprint"], b["units"], b["floors"]) for b in y["buildings"]]
        items, _ = P.items_of(y["code"], y["outline"], buildings, BAND)
        xy = np.array([[i.x, i.y] for i in items])
        pts, inverse = np.unique(xy, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        cells = Cells(y["outline"], pts) if len(pts) > 1 else None
        hh = np.bincount(inverse, weights=[i.households for i in items], minlength=len(pts)).astype(np.int64)
        units = [set() for _ in pts]
        for item, atom in zip(items, inverse):
            if item.floors is None:
                units[atom].add(f"{item.building}/{item.unit}")
        local = shapely.get_coordinates(geo.to_local([shapely.multipoints(pts)])[0])
        out.append(
            {
                **y,
                "buildings_in": buildings,
                "atoms": cells.geoms if cells else [y["outline"]],
                "atom_hh": hh,
                "atom_xy": local,
                "atom_units": units,
            }
        )
    return out


def run_gridmap(yards, seed):
    results = []
    t0 = time.perf_counter()
    for y in yards:
        plan = P.partition(y["code"], y["outline"], y["buildings_in"], BAND, seed=seed)
        results.append(
            [
                (g["geometry"], g["households"], {u.split("@")[0] for u in g["units"] if "@" not in u})
                for g in plan.grids
            ]
        )
    return time.perf_counter() - t0, results


def _grids_from_labels(y, labels):
    grids = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        geom = shapely.union_all([y["atoms"][i] for i in members])
        grids.append((geom, int(y["atom_hh"][members].sum()), set().union(*[y["atom_units"][i] for i in members])))
    return grids


def _spopt_one(y):
    """spopt's labels for one courtyard and the seconds its solve took (in a worker process)."""
    import geopandas as gpd
    import libpysal
    from spopt.region import MaxPHeuristic

    t = time.perf_counter()
    gdf = gpd.GeoDataFrame(
        {"households": y["atom_hh"], "x": y["atom_xy"][:, 0], "y": y["atom_xy"][:, 1]},
        geometry=list(y["atoms"]),
        crs=4326,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = libpysal.weights.Rook.from_dataframe(gdf, use_index=False, silence_warnings=True)
        model = MaxPHeuristic(gdf, w, ["x", "y"], "households", BAND.min, top_n=2)
        model.solve()
    return np.asarray(model.labels_), time.perf_counter() - t


def run_spopt(yards, limit):
    """spopt per courtyard in a child process, cut off after ``limit`` seconds (counted as ``limit``
    seconds and as failed: spopt's time is then a lower bound)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    pool = ctx.Pool(1)
    results, failed, cut_off, seconds = [], 0, 0, 0.0
    try:
        for y in yards:
            if len(y["atoms"]) == 1 or y["households"] < BAND.min:
                results.append(_grids_from_labels(y, np.zeros(len(y["atoms"]), int)))
                continue
            job = pool.apply_async(_spopt_one, (y,))
            try:
                labels, t = job.get(limit)
                seconds += t
                results.append(_grids_from_labels(y, labels))
            except mp.TimeoutError:
                pool.terminate()
                pool = ctx.Pool(1)
                seconds += limit
                failed += 1
                cut_off += 1
                results.append(None)
            except Exception:  # noqa: BLE001 - a competitor's failure is a result, counted below
                failed += 1
                results.append(None)
    finally:
        pool.terminate()
    return seconds, results, failed, cut_off


def run_gerrychain(yards, seed):
    from functools import partial

    import geopandas as gpd
    from gerrychain import Graph
    from gerrychain.partition import recursive_tree_part
    from gerrychain.tree import bipartition_tree

    results, failed = [], 0
    t0 = time.perf_counter()
    for y in yards:
        total = y["households"]
        k = len(BAND.leaves(total)[0])
        if k == 1 or len(y["atoms"]) == 1:
            results.append(_grids_from_labels(y, np.zeros(len(y["atoms"]), int)))
            continue
        target = total / k
        eps = min(BAND.max / target - 1, 1 - BAND.min / target) if BAND.feasible(total) else 10 / 60
        gdf = gpd.GeoDataFrame({"households": y["atom_hh"]}, geometry=list(y["atoms"]), crs=4326)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = Graph.from_geodataframe(gdf, ignore_errors=True)
                assignment = recursive_tree_part(
                    graph,
                    range(k),
                    target,
                    "households",
                    max(eps, 1e-6),
                    bipartition_tree_fn=partial(bipartition_tree, max_attempts=2000),
                    rng=seed,
                )
            labels = np.array([assignment[i] for i in range(len(gdf))])
            results.append(_grids_from_labels(y, labels))
        except Exception:  # noqa: BLE001 - a competitor's failure is a result, counted below
            failed += 1
            results.append(None)
    return time.perf_counter() - t0, results, failed


def score(yards, results):
    """Figures of one method's grids over all courtyards."""
    in_band = total = in_band_f = total_f = 0
    gap = overlap = 0.0
    broken = split = 0
    grids_all = []
    for y, grids in zip(yards, results):
        if grids is None:
            continue
        feasible = BAND.feasible(y["households"])
        ok = sum(BAND.min <= hh <= BAND.max for _, hh, _ in grids)
        in_band += ok
        total += len(grids)
        if feasible:
            in_band_f += ok
            total_f += len(grids)
        geoms = [g for g, _, _ in grids]
        union = shapely.union_all(geoms)
        gap += float(geo.area_m2([shapely.difference(y["outline"], union)])[0])
        tree = shapely.STRtree(geoms)
        a, b = tree.query(geoms, predicate="intersects")
        pairs = a < b
        if pairs.any():
            inter = shapely.intersection(
                np.array(geoms, dtype=object)[a[pairs]], np.array(geoms, dtype=object)[b[pairs]]
            )
            overlap += float(geo.area_m2(inter).sum())
        overlap += float(geo.area_m2([shapely.difference(union, y["outline"])])[0])
        broken += sum(len(polygons(g)) != 1 for g in geoms)
        seen = {}
        for n, (_, _, units) in enumerate(grids):
            for u in units:
                seen.setdefault(u, set()).add(n)
        split += sum(len(v) > 1 for v in seen.values())
        grids_all += geoms
    pp = P.polsby_popper(grids_all) if grids_all else np.array([np.nan])
    return {
        "grids": total,
        "in_band": in_band / max(total, 1),
        "in_band_feasible": in_band_f / max(total_f, 1),
        "gap_m2": gap,
        "overlap_m2": overlap,
        "not_one_polygon": broken,
        "split_units": split,
        "pp_median": float(np.median(pp)),
    }


def city(workers: int, seed: int) -> None:
    from tqdm import tqdm

    from gridmap.domain.risk import Rules
    from gridmap.services import partitioning
    from gridmap.store import db

    from bench_lookup import bench_db  # the same Zhengzhou-scale database, loaded when missing

    eng = db.engine(bench_db(20241))
    t = time.perf_counter()
    with tqdm(total=17091, unit="courtyard", desc="partition --all", mininterval=2) as bar:
        report = partitioning.run(
            eng,
            rules=Rules(),
            everything=True,
            dry_run=True,
            band=BAND,
            seed=seed,
            workers=workers,
            progress=bar.update,
        )
    dt = time.perf_counter() - t
    s = report["summary"]
    print(
        f"\nZhengzhou-scale city, partition --all --dry-run, {workers} worker processes: {dt:.1f} s "
        f"({s['courtyards']} courtyards, {s['households']} households -> {s['micro_grids']} micro-grids, "
        f"{s['in_band']} in band, {100 * s['in_band_share_feasible']:.2f} % on feasible totals; "
        f"infeasible totals {s['infeasible_totals']}, units too coarse {s['units_too_coarse']}, "
        f"failed {s['failed']})"
    )
    print(f"city target (<= 600 s): {'met' if dt <= 600 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--courtyards", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="runs of gridmap (median)")
    ap.add_argument(
        "--spopt-limit",
        type=float,
        default=20.0,
        help="seconds spopt may spend on one courtyard before it is cut off (counted as failed)",
    )
    ap.add_argument("--city", action="store_true", help="also time partition --all on the Zhengzhou-scale city")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for --city")
    args = ap.parse_args()

    yards = prepare(bench_courtyards(args.courtyards, args.seed))
    households = sum(y["households"] for y in yards)
    feasible = sum(BAND.feasible(y["households"]) for y in yards)
    towers = sum(any(200 in b["units"] or b["units"] == [100, 100] for b in y["buildings"]) for y in yards)
    print(
        f"{len(yards)} courtyards, {households} households ({min(y['households'] for y in yards)}-"
        f"{max(y['households'] for y in yards)} each), {feasible} with a total that fits the band, "
        f"{towers} with a 200-household tower; {sum(len(y['atom_hh']) for y in yards)} atoms",
        flush=True,
    )

    rows = {}
    times = []
    for _ in range(args.repeat):
        t, res = run_gridmap(yards, args.seed)
        times.append(t)
    rows["gridmap"] = {**score(yards, res), "failed": 0, "seconds": statistics.median(times)}
    print(f"gridmap     {statistics.median(times):8.2f} s (median of {args.repeat})", flush=True)
    t, res, failed, cut_off = run_spopt(yards, args.spopt_limit)
    rows["spopt MaxP"] = {**score(yards, res), "failed": failed, "seconds": t}
    print(
        f"spopt       {t:8.2f} s (once; {cut_off} courtyards cut off at {args.spopt_limit:.0f} s, "
        "counted at the limit)",
        flush=True,
    )
    t, res, failed = run_gerrychain(yards, args.seed)
    rows["GerryChain"] = {**score(yards, res), "failed": failed, "seconds": t}
    print(f"GerryChain  {t:8.2f} s (once)", flush=True)

    print(
        "\n| method | grids | in [50,70] | in band, feasible totals | failed courtyards | gap m² | overlap m² "
        "| not one polygon | split units | median Polsby-Popper | time s | x gridmap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = rows["gridmap"]["seconds"]
    for name, r in rows.items():
        print(
            f"| {name} | {r['grids']} | {100 * r['in_band']:.1f} % | {100 * r['in_band_feasible']:.1f} % | "
            f"{r['failed']} | {r['gap_m2']:.2f} | {r['overlap_m2']:.2f} | {r['not_one_polygon']} | "
            f"{r['split_units']} | {r['pp_median']:.3f} | {r['seconds']:.2f} | {r['seconds'] / base:.1f} |"
        )
    g = rows["gridmap"]
    speedup = rows["spopt MaxP"]["seconds"] / base
    print(f"\nspeed-up over spopt: {speedup:.1f}x")
    print(
        "goals: in band on feasible totals 100 %: "
        + ("met" if g["in_band_feasible"] == 1.0 else f"NOT met ({100 * g['in_band_feasible']:.2f} %)")
        + "; no gap/overlap (<= 1 m² per courtyard): "
        + ("met" if g["gap_m2"] + g["overlap_m2"] <= len(yards) else "NOT met")
        + f"; >= 10x spopt: {'met' if speedup >= 10 else 'NOT met'}"
    )
    if args.city:
        city(args.workers, args.seed)


if __name__ == "__main__":
    main()
