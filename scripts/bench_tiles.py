"""Benchmark the one map on the Zhengzhou-scale city: vector tiles and the first page load.

Serves the real app (`gridmap serve`, granian, 2 workers) on loopback over the benchmark database
(gridmap_bench, loaded with `--scale zhengzhou` when missing) and requests, one at a time over a
kept-alive connection:

* micro-grid tiles at z15 and courtyard tiles at z13, each tile once (cold: not in the server's
  tile cache), at random places in the city; then the same tiles again (warm: from the cache);
* the competitor in the same run: the same boxes as GeoJSON from /api/v1/grids?level=..&bbox=..
  (PostGIS ST_AsGeoJSON, what a page without vector tiles fetches per view);
* risk element and risk shading tiles at their first zooms;
* the first page load: the HTML and every asset it links (what the browser fetches before it draws),
  against the page's former way: the HTML plus every level as one GeoJSON.

Prints medians and p95 in milliseconds and the ratios.  Targets (issue 5): micro z15 p95 <= 30 ms,
courtyard z13 p95 <= 60 ms, first page load <= 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mercantile
import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gridmap.store import db  # noqa: E402

from bench_lookup import bench_db, random_points  # noqa: E402

GRIDMAP = Path(sys.executable).with_name("gridmap")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, port: int, workers: int):
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    proc = subprocess.Popen(
        [str(GRIDMAP), "serve", "--port", str(port), "--workers", str(workers), "--no-warm"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("bench_tiles: the server did not start")


class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[float, int, bytes]:
        t = time.perf_counter()
        self.conn.request("GET", path)
        res = self.conn.getresponse()
        body = res.read()
        dt = time.perf_counter() - t
        if res.status not in (200, 304):
            raise SystemExit(f"bench_tiles: GET {path} -> {res.status}: {body[:200]!r}")
        return dt, res.status, body


def tiles_at(xs, ys, z: int, n: int) -> list[mercantile.Tile]:
    seen, out = set(), []
    for x, y in zip(xs, ys):
        t = mercantile.tile(float(x), float(y), z)
        if t not in seen:
            seen.add(t)
            out.append(t)
        if len(out) == n:
            break
    return out


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def row(name, times, sizes=None) -> dict:
    return {
        "what": name,
        "n": len(times),
        "p50": pct(times, 50),
        "p95": pct(times, 95),
        "kb": statistics.median(sizes) / 1024 if sizes else float("nan"),
    }


def print_table(rows):
    print(f"{'request':52s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'median kB':>10s}")
    for r in rows:
        print(f"{r['what']:52s} {r['n']:5d} {r['p50']:8.2f} {r['p95']:8.2f} {r['kb']:10.1f}")


def bench_layer(client, layer: str, level: str, tiles, rows) -> dict:
    cold, warm, geojson, sizes, gsizes, features = [], [], [], [], [], 0
    for t in tiles:
        dt, _, body = client.get(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.pbf")
        cold.append(dt)
        sizes.append(len(body))
        features += bool(body)
    for t in tiles:
        warm.append(client.get(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.pbf")[0])
    for t in tiles:
        b = mercantile.bounds(t)
        dt, _, body = client.get(f"/api/v1/grids?level={level}&bbox={b.west},{b.south},{b.east},{b.north}&simplify_m=0")
        geojson.append(dt)
        gsizes.append(len(body))
    z = tiles[0].z
    rows += [
        row(f"{layer} z{z} MVT, cold", cold, sizes),
        row(f"{layer} z{z} MVT, warm (cache)", warm, sizes),
        row(f"{layer} z{z} same box as GeoJSON (competitor)", geojson, gsizes),
    ]
    return {"cold": cold, "geojson": geojson, "nonempty": features, "n": len(tiles)}


def page_load(client) -> tuple[float, int, int]:
    t = time.perf_counter()
    _, _, html = client.get("/")
    assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', html)
    size = len(html)
    for a in assets:
        size += len(client.get(a.decode())[2])
    return time.perf_counter() - t, len(assets), size


def page_load_geojson(client) -> tuple[float, int]:
    """The former page: HTML plus every grid level as one whole GeoJSON each."""
    t = time.perf_counter()
    dt, n, size = page_load(client)
    for level in ("district", "street", "community", "courtyard", "micro", "special"):
        size += len(client.get(f"/api/v1/grids?level={level}")[2])
    return time.perf_counter() - t, size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=300, help="tiles per layer and zoom")
    parser.add_argument("--repeat", type=int, default=5, help="page loads")
    parser.add_argument("--seed", type=int, default=20241)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    url = bench_db(args.seed)
    eng = db.engine(url)
    with eng.connect() as conn:
        counts = dict(
            conn.execute(sa.text("SELECT level, count(*) FROM grid WHERE valid_to IS NULL GROUP BY level")).all()
        )
        elements = conn.execute(sa.text("SELECT count(*) FROM risk_element")).scalar_one()
        reports = conn.execute(sa.text("SELECT count(*) FROM report")).scalar_one()
    print(
        f"city: {counts.get('micro', 0):,} micro-grids, {counts.get('courtyard', 0):,} courtyards, "
        f"{elements:,} risk elements, {reports:,} reports"
    )
    xs, ys = random_points(eng, 20 * args.tiles, args.seed)
    port = free_port()
    proc = serve(url, port, args.workers)
    try:
        client = Client(port)
        client.get("/api/v1/stats")  # the worker is up
        rows = []
        micro = bench_layer(client, "micro", "micro", tiles_at(xs, ys, 15, args.tiles), rows)
        court = bench_layer(client, "courtyard", "courtyard", tiles_at(xs, ys, 13, args.tiles), rows)
        for layer, z in (("risk-red", 13), ("risk-blue", 15), ("shade-community", 10), ("shade-micro", 15)):
            tiles = tiles_at(xs[::-1], ys[::-1], z, args.tiles)
            rows.append(
                row(f"{layer} z{z} MVT, cold", [client.get(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.pbf")[0] for t in tiles])
            )
        ours = [page_load(Client(port)) for _ in range(args.repeat)]
        theirs = [page_load_geojson(Client(port)) for _ in range(min(args.repeat, 3))]
        print_table(rows)
        p_ours = statistics.median(o[0] for o in ours)
        p_theirs = statistics.median(t[0] for t in theirs)
        print(
            f"\nfirst page load (HTML + {ours[0][1]} assets, {ours[0][2] / 1024:.0f} kB): "
            f"median {p_ours * 1000:.1f} ms "
            f"of {len(ours)}; former page (HTML + assets + every level as GeoJSON, "
            f"{theirs[0][1] / 1024 / 1024:.1f} MB): median {p_theirs * 1000:.0f} ms of {len(theirs)} "
            f"({p_theirs / p_ours:.0f}x)"
        )
        for name, r, target in (("micro z15", micro, 30), ("courtyard z13", court, 60)):
            p95 = pct(r["cold"], 95)
            print(
                f"{name}: cold p95 {p95:.2f} ms (target <= {target} ms: {'met' if p95 <= target else 'MISSED'}); "
                f"GeoJSON of the same boxes p50 {pct(r['geojson'], 50):.2f} ms vs MVT p50 {pct(r['cold'], 50):.2f} ms "
                f"({pct(r['geojson'], 50) / pct(r['cold'], 50):.1f}x); {r['nonempty']}/{r['n']} tiles non-empty"
            )
        print(f"first page load: {p_ours * 1000:.1f} ms (target <= 1000 ms: {'met' if p_ours <= 1 else 'MISSED'})")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
