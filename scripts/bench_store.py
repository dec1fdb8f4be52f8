#!/usr/bin/env python
"""Benchmark: load and validate the demo city, against the obvious competitors, in one run.

    python scripts/bench_store.py --scale zhengzhou [--repeat 3] [--seed 20241]

Phases (each timed ``--repeat`` times, medians printed):
  generate   gridmap demo generate (not part of the 60 s target: no real city is generated)
  load       gridmap's import of every level (checks + COPY), one transaction, into a fresh database
  validate   gridmap validate (every integrity check of the current version)
Competitors, same files, same database server:
  load       geopandas ``GeoDataFrame.to_postgis`` of the same grid and building layers (no checks)
  validate   the same checks written as plain PostGIS SQL (ST_CoveredBy/ST_Difference per child,
             ST_Union per parent, a sibling self-join for overlaps), snap-rounded to 1e-8 degree as
             gridmap's overlays are: unsnapped, GEOS reports centimetre-wide slivers as gaps
Target (issue 2): load + validate of the Zhengzhou-scale city <= 60 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridmap.domain.demo.city import SCALES  # noqa: E402
from gridmap.services import demo, validation  # noqa: E402
from gridmap.services.resources import load_rules  # noqa: E402
from gridmap.settings import Settings  # noqa: E402
from gridmap.store import cluster, db  # noqa: E402

SETTINGS = Settings.from_env()

SQL_CHECKS = {
    "outside_parent": """
        SELECT count(*) FROM grid c JOIN grid p ON p.code = c.parent_code AND p.valid_to IS NULL
        WHERE c.valid_to IS NULL AND NOT ST_CoveredBy(c.geom, p.geom)
          AND ST_Area(ST_Transform(ST_Difference(c.geom, p.geom, 1e-8), 4547)) > :tol""",
    "gap": """
        SELECT count(*) FROM (
            SELECT p.code, ST_Area(ST_Transform(ST_Difference(p.geom, ST_Union(c.geom, 1e-8), 1e-8), 4547)) AS a
            FROM grid p JOIN grid c ON c.parent_code = p.code AND c.valid_to IS NULL AND c.level <> 'special'
            WHERE p.valid_to IS NULL GROUP BY p.code, p.geom) s WHERE a > :tol""",
    "overlap": """
        SELECT count(*) FROM grid a JOIN grid b ON a.level = b.level
            AND a.parent_code IS NOT DISTINCT FROM b.parent_code AND a.id < b.id AND ST_Intersects(a.geom, b.geom)
        WHERE a.valid_to IS NULL AND b.valid_to IS NULL AND a.level <> 'special' AND NOT ST_Touches(a.geom, b.geom)
          AND ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom, 1e-8), 4547)) > :tol""",
    "invalid_geometry": "SELECT count(*) FROM grid WHERE valid_to IS NULL AND NOT ST_IsValid(geom)",
}


def median_of(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def fresh_url(name: str) -> str:
    if SETTINGS.external_database_url:
        raise SystemExit("bench_store.py needs the local cluster (unset GRIDMAP_DATABASE_URL)")
    cluster.start(SETTINGS)
    url = cluster.ensure_database(SETTINGS, name, fresh=True)
    db.migrate(url)
    return url


def our_load(url, folder, manifest):
    eng = db.engine(url)
    demo.load_manifest(eng, folder, manifest, rules=load_rules(SETTINGS.risk_rules_path), fresh=True)


def geopandas_load(url, folder, manifest):
    import geopandas as gpd

    eng = db.engine(url)
    for entry in manifest["files"]:
        if entry["level"] in ("person", "risk_element", "risk_visit", "report"):  # no geometry layer to compare
            continue
        gdf = gpd.read_file(folder / entry["file"], engine="pyogrio", use_arrow=True)
        gdf = gdf.set_crs(4326, allow_override=True)
        gdf.to_postgis(f"gpd_{entry['level']}", eng, if_exists="replace", index=False)


def sql_validate(url, tol=1.0):
    with db.engine(url).connect() as conn:
        return {k: conn.execute(sa.text(q), {"tol": tol}).scalar_one() for k, q in SQL_CHECKS.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="zhengzhou", choices=list(SCALES))
    parser.add_argument("--seed", type=int, default=20241)
    parser.add_argument("--repeat", type=int, default=3, help="runs per gridmap phase (median printed)")
    parser.add_argument("--competitor-repeat", type=int, default=1, help="runs per competitor phase")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    url = fresh_url("gridmap_bench")
    rows = []
    with tempfile.TemporaryDirectory(prefix="gridmap-bench-") as tmp:
        folder = Path(tmp)
        t_gen, manifest = median_of(lambda: demo.generate(args.scale, args.seed, folder), 1)
        print(f"generated {args.scale}: {json.dumps(manifest['counts'])} in {t_gen:.1f} s", flush=True)
        t_load, _ = median_of(lambda: our_load(url, folder, manifest), args.repeat)
        print(f"gridmap load: {t_load:.1f} s", flush=True)
        t_val, problems = median_of(lambda: validation.validate(db.engine(url)), args.repeat)
        print(f"gridmap validate: {t_val:.1f} s, {len(problems)} problems", flush=True)
        t_gpd, _ = median_of(lambda: geopandas_load(url, folder, manifest), args.competitor_repeat)
        print(f"geopandas to_postgis: {t_gpd:.1f} s", flush=True)
    t_sql, sql_counts = median_of(lambda: sql_validate(url), args.competitor_repeat)
    print(f"PostGIS SQL validate: {t_sql:.1f} s, {sql_counts}", flush=True)

    rows = [
        ("generate (not in target)", t_gen, None, None),
        ("load: gridmap vs geopandas.to_postgis", t_load, t_gpd, t_gpd / t_load),
        ("validate: gridmap vs PostGIS SQL", t_val, t_sql, t_sql / t_val),
    ]
    total = t_load + t_val
    print()
    print(f"| phase ({args.scale}, medians) | gridmap s | competitor s | competitor / gridmap |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs, ratio in rows:
        print(
            f"| {name} | {ours:.1f} | {'' if theirs is None else f'{theirs:.1f}'} | "
            f"{'' if ratio is None else f'{ratio:.1f}x'} |"
        )
    verdict = "PASS" if total <= 60 else "FAIL"
    print(f"\nload + validate = {total:.1f} s (target <= 60 s): {verdict}")
    same = (len(problems) == 0) == (sum(sql_counts.values()) == 0)
    print(f"gridmap and SQL agree the city is {'whole' if not problems else 'broken'}: {same}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scale": args.scale,
                    "counts": manifest["counts"],
                    "generate_s": t_gen,
                    "load_s": t_load,
                    "validate_s": t_val,
                    "geopandas_load_s": t_gpd,
                    "sql_validate_s": t_sql,
                    "problems": len(problems),
                    "sql_problems": sql_counts,
                },
                indent=2,
            )
        )
    return 0 if verdict == "PASS" and same else 1


if __name__ == "__main__":
    sys.exit(main())
