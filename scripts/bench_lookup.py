#!/usr/bin/env python
"""Benchmark: point -> grid chain on the Zhengzhou-scale city, against geopandas and PostGIS.

    python scripts/bench_lookup.py [--points 1000000] [--repeat 3] [--seed 20241]

Uses the database ``gridmap_bench`` (loads the Zhengzhou-scale demo city into it when it does not
hold it).  Random points uniform inside the city's districts.  Timed (medians of --repeat):
  index build      fetch from PostGIS + build the in-memory index; its resident size (RSS growth)
  gridmap batch    the full chain (district..micro + special grids) for every point
  geopandas.sjoin  the same points against the micro-grids only (predicate intersects)
  PostGIS          the same points in a table joined with ST_Covers on the GiST index (once)
  HTTP             `gridmap serve` (granian, default workers/threads) answering GET /api/v1/lookup on
                   loopback from the index, and the same server answering each request with one PostGIS
                   query (--lookup-engine postgis): latency of sequential keep-alive requests (p50, p95;
                   a raw-socket client) and throughput (wrk, 8 connections, median of 3 runs of 5 s)
Every point's micro-grid must be identical across the three (ties: lowest code).
Targets (issue 3): >= 5x geopandas, >= 100x PostGIS, index <= 200 MB and <= 10 s,
HTTP p50 <= 1 ms and >= 3x the PostGIS-per-request throughput.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridmap.domain.lookup import GridIndex  # noqa: E402
from gridmap.services.demo import load_demo  # noqa: E402
from gridmap.services.locator import release_freed_memory  # noqa: E402
from gridmap.services.resources import load_rules  # noqa: E402
from gridmap.settings import Settings  # noqa: E402
from gridmap.store import cluster, db, grids  # noqa: E402

SCALE_COURTYARDS = 17091


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def bench_db(seed: int) -> str:
    settings = Settings.from_env()
    cluster.start(settings)
    url = cluster.ensure_database(settings, "gridmap_bench")
    db.migrate(url)
    eng = db.engine(url)
    with eng.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM grid WHERE level = 'courtyard' AND valid_to IS NULL")).scalar()
        elements = conn.execute(sa.text("SELECT count(*) FROM risk_element")).scalar()
        shares = conn.execute(sa.text("SELECT count(*) FROM grid_share")).scalar()
    if n != SCALE_COURTYARDS or not elements or not shares:  # an older demo (no risk elements, no floors): again
        print("loading the Zhengzhou-scale city into gridmap_bench ...", flush=True)
        load_demo(eng, "zhengzhou", seed, rules=load_rules(settings.risk_rules_path), fresh=True)
    return url


def median(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def city_outline(eng):
    """The union of the current districts, prepared."""
    with eng.connect() as conn:
        wkb = conn.execute(
            sa.text("SELECT ST_AsBinary(ST_Union(geom)) FROM grid WHERE level = 'district' AND valid_to IS NULL")
        ).scalar_one()
    city = shapely.from_wkb(bytes(wkb))
    shapely.prepare(city)
    return city


def random_points(eng, n, seed, city=None):
    """n points uniform inside the city (its outline fetched unless given)."""
    city = city_outline(eng) if city is None else city
    x0, y0, x1, y1 = city.bounds
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    have = 0
    while have < n:
        x = rng.uniform(x0, x1, n)
        y = rng.uniform(y0, y1, n)
        keep = shapely.contains_xy(city, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def sjoin_micro(micro_gdf, points_gdf):
    import geopandas as gpd

    joined = gpd.sjoin(points_gdf, micro_gdf, how="left", predicate="intersects")
    return joined.groupby(level=0)["code"].min().reindex(points_gdf.index)


def postgis_micro(eng, x, y):
    with eng.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS bench_points"))
        conn.execute(sa.text("CREATE UNLOGGED TABLE bench_points (id int PRIMARY KEY, geom geometry(Point, 4326))"))
        buf = io.StringIO()
        pd.DataFrame(
            {
                "id": np.arange(len(x)),
                "geom": shapely.to_wkb(shapely.set_srid(shapely.points(x, y), 4326), hex=True, include_srid=True),
            }
        ).to_csv(buf, index=False, header=False)
        with conn.connection.driver_connection.cursor().copy("COPY bench_points FROM STDIN WITH (FORMAT csv)") as c:
            c.write(buf.getvalue())
        conn.execute(sa.text("ANALYZE bench_points"))
    sql = (
        "SELECT p.id, min(g.code) FROM bench_points p JOIN grid g ON g.level = 'micro' AND g.valid_to IS NULL "
        "AND ST_Covers(g.geom, p.geom) GROUP BY p.id"
    )
    t = time.perf_counter()
    with eng.connect() as conn:
        rows = conn.execute(sa.text(sql)).all()
    elapsed = time.perf_counter() - t
    out = np.full(len(x), None, dtype=object)
    for i, code in rows:
        out[i] = code
    return elapsed, out


WRK_SCRIPT = """
local points = {}
for line in io.lines(os.getenv("GRIDMAP_BENCH_POINTS")) do points[#points + 1] = line end
local i = 0
request = function()
  i = i % #points + 1
  return wrk.format("GET", "/api/v1/lookup?" .. points[i])
end
"""


class RawClient:
    """A minimal keep-alive HTTP/1.1 client on one socket: it adds microseconds, not the
    ~0.5 ms per request of http.client, so the latency measured is the server's."""

    def __init__(self, port):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(v.split(b":", 1)[1]) for v in lines if v.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += self.sock.recv(65536)
        return int(lines[0].split(b" ")[1]), body

    def close(self):
        self.sock.close()


def http_bench(url, engine_name, xs, ys, port, requests=2000, connections=8, seconds=5, repeat=3):
    """GET /api/v1/lookup served by `gridmap serve` (default workers and threads) answering from
    ``engine_name``: p50/p95 latency of sequential keep-alive requests, and throughput (median of
    ``repeat`` wrk runs with ``connections`` connections)."""
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    exe = Path(sys.executable).with_name("gridmap")
    server = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--lookup-engine", engine_name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    paths = [f"lon={a:.7f}&lat={b:.7f}" for a, b in zip(xs, ys)]
    try:
        deadline = time.monotonic() + 120
        while True:  # workers build their index when they start
            try:
                client = RawClient(port)
                client.get("/api/v1/lookup?" + paths[0])
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"gridmap serve --lookup-engine {engine_name} did not come up") from None
                time.sleep(0.5)
        for i in range(200):  # warm-up
            client.get("/api/v1/lookup?" + paths[i % len(paths)])
        lat = []
        for i in range(requests):
            t = time.perf_counter()
            status, body = client.get("/api/v1/lookup?" + paths[i % len(paths)])
            lat.append(time.perf_counter() - t)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        client.close()
        lat_ms = np.array(lat) * 1000
        wrk = shutil.which("wrk")
        if wrk is None:
            print("wrk not found (apt-get install wrk, or `make bench-lookup`): no throughput figure", flush=True)
            return float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 95)), float("nan")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "points.txt").write_text("\n".join(paths) + "\n")
            (Path(tmp) / "lookup.lua").write_text(WRK_SCRIPT)
            runs = []
            for _ in range(repeat):
                out = subprocess.run(
                    [
                        wrk,
                        "-t1",
                        f"-c{connections}",
                        f"-d{seconds}s",
                        "-s",
                        str(Path(tmp) / "lookup.lua"),
                        f"http://127.0.0.1:{port}/",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "GRIDMAP_BENCH_POINTS": str(Path(tmp) / "points.txt")},
                ).stdout
                if "Non-2xx" in out:
                    raise RuntimeError("wrk saw error responses:\n" + out)
                runs.append(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)))
        return float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 95)), statistics.median(runs)
    finally:
        server.terminate()
        server.wait(30)


def http_pair(url, x, y, requests):
    ours = http_bench(url, "index", x[:5000], y[:5000], 5101, requests)
    print(f"HTTP index: p50 {ours[0]:.2f} ms, p95 {ours[1]:.2f} ms, {ours[2]:.0f} req/s", flush=True)
    theirs = http_bench(url, "postgis", x[:5000], y[:5000], 5102, requests)
    print(f"HTTP PostGIS: p50 {theirs[0]:.2f} ms, p95 {theirs[1]:.2f} ms, {theirs[2]:.0f} req/s", flush=True)
    return ours, theirs


def http_report(ours, theirs):
    (p50, p95, rps), (pp50, pp95, prps) = ours, theirs
    print(
        f"| HTTP GET /api/v1/lookup p50 / p95 ms (index vs PostGIS per request) | {p50:.2f} / {p95:.2f} | "
        f"{pp50:.2f} / {pp95:.2f} | |"
    )
    print(
        f"| HTTP throughput, wrk 8 connections, req/s (index vs PostGIS per request) | {rps:.0f} | {prps:.0f} | "
        f"{rps / prps:.1f}x |"
    )
    print(
        f"HTTP targets: p50 {p50:.2f} ms (<= 1: {'met' if p50 <= 1 else 'NOT met'}), "
        f"throughput {rps / prps:.1f}x (>= 3: {'met' if rps / prps >= 3 else 'NOT met'})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20241)
    parser.add_argument("--skip-postgis", action="store_true", help="skip the (slow) 1M-point PostGIS join")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--http-requests", type=int, default=2000)
    parser.add_argument("--http-only", action="store_true", help="only the HTTP part")
    args = parser.parse_args()
    import geopandas as gpd

    url = bench_db(args.seed)
    eng = db.engine(url)
    x, y = random_points(eng, args.points, args.seed)
    if args.http_only:
        http_report(*http_pair(url, x, y, args.http_requests))
        return 0
    base = rss_mb()

    def build():
        with eng.connect() as conn:
            index = GridIndex(grids.index_frame(conn), epoch=grids.epoch(conn))
        release_freed_memory()
        return index

    index = build()
    index_mb = rss_mb() - base  # one index, its build's temporaries released
    t_build, index = median(build, args.repeat)
    print(f"index: built in {t_build:.2f} s (median), +{index_mb:.0f} MB resident, {index.stats()}", flush=True)
    t_ours, table = median(lambda: index.table(x, y), args.repeat)
    ours = table["micro_code"].astype(object).where(table["micro_code"].notna(), None).to_numpy()
    print(f"gridmap full chain, {len(x):,} points: {t_ours:.3f} s", flush=True)

    micro = index.micro_geom
    micro_gdf = gpd.GeoDataFrame({"code": index.code[index.micro]}, geometry=list(micro), crs=4326)
    points_gdf = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)
    t_sjoin, theirs = median(lambda: sjoin_micro(micro_gdf, points_gdf), args.repeat)
    theirs = theirs.astype(object).where(theirs.notna(), None).to_numpy()
    print(f"geopandas.sjoin micro only: {t_sjoin:.3f} s", flush=True)
    same_gpd = bool(np.array_equal(ours, theirs))

    rows = [("index build (fetch + build)", t_build, None), ("full chain vs geopandas.sjoin", t_ours, t_sjoin)]
    same_pg = None
    if not args.skip_postgis:
        t_pg, pg = postgis_micro(eng, x, y)
        print(f"PostGIS ST_Covers join: {t_pg:.1f} s", flush=True)
        same_pg = bool(np.array_equal(ours, pg))
        rows.append(("full chain vs PostGIS ST_Covers join", t_ours, t_pg))
    http = None
    if not args.skip_http:
        http = http_pair(url, x, y, args.http_requests)
    print()
    print(f"| lookup, {len(x):,} points, Zhengzhou scale (medians) | gridmap s | competitor s | ratio |")
    print("|---|---:|---:|---:|")
    for name, a, b in rows:
        print(f"| {name} | {a:.3f} | {'' if b is None else f'{b:.3f}'} | {'' if b is None else f'{b / a:.1f}x'} |")
    if http:
        http_report(*http)
    print(f"\nindex: {index_mb:.0f} MB resident (target <= 200), built in {t_build:.2f} s (target <= 10)")
    print(f"identical micro-grid for every point: geopandas {same_gpd}, PostGIS {same_pg}")
    inside = np.mean(ours != None)  # noqa: E711
    print(f"points inside a micro-grid: {inside:.4%}")
    return 0 if same_gpd and same_pg is not False else 1


if __name__ == "__main__":
    sys.exit(main())
