#!/usr/bin/env python
"""Benchmark: ``gridmap assign --engine dask`` on a local cluster against the single-process command
and against dask_geopandas.sjoin, on the Zhengzhou-scale city; peak memory per worker when streaming.

    python scripts/bench_scale.py [--points 20000000] [--workers 2] [--big 100000000] [--seed 20241]

Uses the database ``gridmap_bench`` (as scripts/bench_lookup.py: loads the Zhengzhou-scale demo city
when it does not hold it).  Points: 95 % uniform inside the city's districts, 5 % over its bounding
box (outside points get their nearest micro-grid), as GeoParquet in row groups of 1M (one partition
each), made once and kept under .gridmap/bench_scale/.  Timed, whole commands as users run them:
  single       `gridmap assign pts.parquet single.parquet`
  dask         `gridmap assign pts.parquet out/ --engine dask --workers N` (cluster start included)
  sjoin        dask_geopandas.read_parquet + sjoin(intersects) with the micro-grids read from PostGIS +
               to_parquet, on a fresh LocalCluster of N workers (start included); micro-grids only
Checks: the dask output equals the single-process file, row for row, in every column; sjoin's
micro-grid (lowest code on boundaries) equals gridmap's for every point.
--big N: N points streamed through `gridmap assign --engine dask --scheduler` on a LocalCluster of N
workers started here, reporting each worker's peak resident memory (VmHWM of /proc/self/status); when N is
a multiple of --points, a folder of hard links to the --points file repeated (the same rows again).
Targets (issue 18): dask >= 1.6x single, >= 5x sjoin; peak memory per worker <= 1 GB at 100M points.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from gridmap.services.dask_cluster import LOCAL_WORKER_CONFIG  # noqa: E402
from gridmap.store import db  # noqa: E402

from bench_lookup import bench_db, city_outline, random_points  # noqa: E402

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))
ROW_GROUP = 1_000_000
WORK = ROOT / ".gridmap" / "bench_scale"


def make_points(eng, n, seed, path: Path) -> Path:
    """GeoParquet of n points (95 % inside the city), written a row group at a time."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == n:
        return path
    import geopandas as gpd

    city = city_outline(eng)
    x0, y0, x1, y1 = city.bounds
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    writer = None
    for start in range(0, n, ROW_GROUP):
        m = min(ROW_GROUP, n - start)
        inside = int(m * 0.95)
        x, y = random_points(eng, inside, seed + start, city=city)
        x = np.concatenate([x, rng.uniform(x0, x1, m - inside)])
        y = np.concatenate([y, rng.uniform(y0, y1, m - inside)])
        gdf = gpd.GeoDataFrame({"id": np.arange(start, start + m)}, geometry=shapely.points(x, y), crs=4326)
        buf = io.BytesIO()
        gdf.to_parquet(buf)  # geopandas writes the GeoParquet metadata; the rows go on as one row group
        table = pq.read_table(io.BytesIO(buf.getvalue()))
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
        print(f"  points {start + m:,}/{n:,}", flush=True)
    writer.close()
    os.replace(tmp, path)
    return path


def run(cmd, env=None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def same_rows(single: Path, folder: Path) -> int:
    """Compare every column, one at a time; the number of rows compared (AssertionError otherwise)."""
    a_file = pq.ParquetFile(single)
    parts = sorted(folder.glob("part.*.parquet"))
    names = [n for n in a_file.schema_arrow.names if n != "geometry"]
    assert names == [n for n in pq.read_schema(parts[0]).names if n != "geometry"], "columns differ"
    for name in [*names, "geometry"]:
        a = _plain(pq.read_table(single, columns=[name]).column(0))
        b = _plain(pa.concat_arrays([_plain(pq.read_table(p, columns=[name]).column(0)) for p in parts]))
        assert len(a) == len(b), f"{name}: {len(a)} vs {len(b)} rows"
        equal = pc.equal(a, b)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        nan = pc.and_(pc.is_nan(a), pc.is_nan(b)) if pa.types.is_floating(a.type) else both_null
        ok = pc.or_(pc.or_(pc.fill_null(equal, False), both_null), pc.fill_null(nan, False))
        bad = len(a) - pc.sum(ok).as_py()
        assert bad == 0, f"{name}: {bad} rows differ"
    return len(a)


def _plain(col):
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_string(col.type):
        col = col.cast(pa.large_string())
    return col


def repeated(src: Path, times: int, folder: Path) -> Path:
    """A Parquet folder of ``times`` hard links to ``src``: ``times`` x its points for the memory run,
    without generating them again (a 100M-point file took over half an hour to make here)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(times):
        os.link(src, folder / f"part-{i:03d}.parquet")
    return folder


def sjoin_run(eng, src: Path, out: Path, workers: int) -> float:
    """dask_geopandas: read, sjoin with the micro-grids, write; a fresh local cluster, timed whole."""
    import dask_geopandas
    import geopandas as gpd
    from distributed import Client

    t = time.perf_counter()
    with local_cluster(workers) as cluster, Client(cluster):
        with eng.connect() as conn:
            micro = gpd.read_postgis(
                "SELECT code, geom FROM grid WHERE level = 'micro' AND valid_to IS NULL", conn, geom_col="geom"
            )
        points = dask_geopandas.read_parquet(src, gather_spatial_partitions=False)
        grids = dask_geopandas.from_geopandas(micro, npartitions=1)
        joined = dask_geopandas.sjoin(points, grids, how="inner", predicate="intersects")  # its only mode
        joined[["id", "code", "geometry"]].to_parquet(out, write_index=False)
    return time.perf_counter() - t


def local_cluster(workers: int):
    """A LocalCluster of ``workers`` one-thread processes, tuned as the command tunes its own."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(LOCAL_WORKER_CONFIG):
        return LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0")


def sjoin_agrees(single: Path, out: Path) -> None:
    """sjoin's micro-grid per point (lowest code where several cover it) equals gridmap's."""
    mine = pq.read_table(single, columns=["id", "micro_code"]).to_pandas()
    theirs = pq.read_table(out, columns=["id", "code"]).to_pandas().groupby("id")["code"].min()
    # missing (outside every grid: None, NaN or pandas' NA by column type) compared as ""
    theirs = theirs.reindex(mine["id"]).astype("string").fillna("").to_numpy(dtype=str)
    ours = mine["micro_code"].astype("string").fillna("").to_numpy(dtype=str)
    differ = int((ours != theirs).sum())
    assert differ == 0, f"sjoin disagrees on {differ} points"


def peak_memory(url: str, src: Path, out: Path, workers: int) -> tuple[float, list[float]]:
    """Stream ``src`` through the dask command on a cluster started here; (seconds, peak MB per worker)."""
    from distributed import Client

    with local_cluster(workers) as cluster:
        seconds = run(
            [GRIDMAP, "assign", str(src), str(out), "--engine", "dask", "--scheduler", cluster.scheduler_address],
            env={"GRIDMAP_DATABASE_URL": url},
        )
        with Client(cluster) as client:
            peaks = client.run(_peak_mb)
    return seconds, sorted(peaks.values())


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM), MB.  Not getrusage's ru_maxrss: Linux carries that
    across exec, so a worker spawned by this process (which holds GBs after comparing outputs) would
    report this process's peak, not its own."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))


def compare(args, src, single, folder, eng, env, results) -> None:
    """The timed runs: single process, Dask, dask_geopandas.sjoin; outputs checked equal."""
    t_single = run([GRIDMAP, "assign", str(src), str(single)], env)
    print(f"single-process gridmap assign: {t_single:.1f} s", flush=True)
    t_dask = run([GRIDMAP, "assign", str(src), str(folder), "--engine", "dask", "--workers", str(args.workers)], env)
    print(f"gridmap assign --engine dask ({args.workers} workers): {t_dask:.1f} s", flush=True)
    rows = same_rows(single, folder)
    print(f"identical output: {rows:,} rows, every column", flush=True)
    results.update(single_s=t_single, dask_s=t_dask, dask_vs_single=t_single / t_dask)
    print(f"dask / single: {t_single / t_dask:.2f}x (target >= 1.6x)", flush=True)
    if not args.skip_sjoin:
        sj_out = WORK / "sjoin-out"
        shutil.rmtree(sj_out, ignore_errors=True)
        t_sjoin = sjoin_run(eng, src, sj_out, args.workers)
        sjoin_agrees(single, sj_out)
        results.update(sjoin_s=t_sjoin, dask_vs_sjoin=t_sjoin / t_dask)
        print(f"dask_geopandas.sjoin: {t_sjoin:.1f} s, same micro-grids; gridmap dask {t_sjoin / t_dask:.2f}x (>= 5x)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--big", type=int, default=0, help="points for the peak-memory run (0: skip)")
    ap.add_argument("--skip-sjoin", action="store_true")
    ap.add_argument("--big-only", action="store_true", help="only the peak-memory run of --big")
    ap.add_argument("--seed", type=int, default=20241)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    url = bench_db(args.seed)
    eng = db.engine(url)
    env = {"GRIDMAP_DATABASE_URL": url}
    print(f"load: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores", flush=True)
    src = make_points(eng, args.points, args.seed, WORK / f"pts-{args.points}.parquet")
    single, folder = WORK / "single.parquet", WORK / "dask-out"
    results = {"points": args.points, "workers": args.workers}
    if not args.big_only:
        compare(args, src, single, folder, eng, env, results)
    if args.big:
        if args.big % args.points == 0:  # the same points over again: what is measured is the streaming
            big = repeated(src, args.big // args.points, WORK / f"pts-{args.big}-repeated")
        else:
            big = make_points(eng, args.big, args.seed + 1, WORK / f"pts-{args.big}.parquet")
        seconds, peaks = peak_memory(url, big, WORK / "big-out", args.workers)
        results.update(big_points=args.big, big_s=seconds, peak_worker_mb=peaks)
        print(f"{args.big:,} points streamed in {seconds:.1f} s; peak RSS per worker {peaks} MB (target <= 1024)")
    print(f"load: {os.getloadavg()[0]:.1f} (1 min) at the end")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
