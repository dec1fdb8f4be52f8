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
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridmap.domain.lookup import GridIndex, assign_table  # noqa: E402
from gridmap.services.demo import load_demo, load_manifest  # noqa: E402
from gridmap.services.locator import release_freed_memory  # noqa: E402
from gridmap.services.resources import load_rules  # noqa: E402
from gridmap.settings import Settings  # noqa: E402
from gridmap.store import cluster, db, grids  # noqa: E402

SCALE_COURTYARDS = 17091


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def city_db(seed: int, needs: tuple[str, ...] = ()) -> str:
    """``gridmap_bench`` as it stands when it holds the Zhengzhou-scale city and rows in each table of
    ``needs`` (what the caller reads), else loaded by :func:`bench_db` — which also asks for what the
    caller may not read (floor shares, posts, risk elements), and reloading the city for those costs
    many minutes and throws away what else the database holds (the event benchmark's cases)."""
    settings = Settings.from_env()
    cluster.start(settings)
    url = cluster.ensure_database(settings, "gridmap_bench")
    db.migrate(url)
    with db.engine(url).connect() as conn:
        yards = conn.execute(
            sa.text("SELECT count(*) FROM grid WHERE level = 'courtyard' AND valid_to IS NULL")
        ).scalar_one()
        held = all(conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar_one() for table in needs)
    return url if yards == SCALE_COURTYARDS and held else bench_db(seed)


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
        posts = conn.execute(sa.text("SELECT count(*) FROM grid_post")).scalar()
    if n != SCALE_COURTYARDS or not elements or not shares or not posts:  # an older demo (no risk, floors, people)
        # the generated files are kept (GRIDMAP_HOME/bench/zhengzhou-SEED): generating runs the partitioner
        # over every courtyard, loading them again is COPY only
        folder = settings.home / "bench" / f"zhengzhou-{seed}"
        rules = load_rules(settings.risk_rules_path)
        t = time.perf_counter()
        if (folder / "manifest.json").exists():
            print(f"loading the Zhengzhou-scale city from {folder} into gridmap_bench ...", flush=True)
            manifest = json.loads((folder / "manifest.json").read_text())
            load_manifest(eng, folder, manifest, rules=rules, fresh=True)
        else:
            print(f"generating the Zhengzhou-scale city into {folder} and loading it ...", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            load_demo(eng, "zhengzhou", seed, rules=rules, out_dir=folder, fresh=True)
        print(f"  {time.perf_counter() - t:.1f} s", flush=True)
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


def random_points(eng, n, seed, inside=True, city=None):
    """``n`` points uniform inside the city's districts (``inside``), or over its bounding box outside
    them (the outline fetched unless given)."""
    city = city_outline(eng) if city is None else city
    x0, y0, x1, y1 = city.bounds
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    have = 0
    while have < n:
        x = rng.uniform(x0, x1, n)
        y = rng.uniform(y0, y1, n)
        keep = shapely.contains_xy(city, x, y) == inside
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
        return self.request("GET", path)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
        """(status, body) of one request (``headers`` and a ``body`` with its Content-Length, if any)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in (headers or {}).items()
        )
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
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


# --- issue 16: whole commands and requests, as users run them --------------------------------------

GEOPANDAS_SCRIPT = """
import sys, geopandas as gpd, pandas as pd
src, grids, dst = sys.argv[1:4]
pts = pd.read_parquet(src) if src.endswith(".parquet") else pd.read_csv(src)
g = gpd.GeoDataFrame(pts, geometry=gpd.points_from_xy(pts.lon, pts.lat), crs=4326)
micro = gpd.read_parquet(grids)
j = gpd.sjoin(g, micro, how="left", predicate="intersects")
j = j.sort_values("code").loc[~j.sort_values("code").index.duplicated()].sort_index()  # lowest code
j = j.drop(columns="index_right")
j.to_parquet(dst) if dst.endswith(".parquet") else pd.DataFrame(j.drop(columns="geometry")).to_csv(dst, index=False)
"""


def e2e_points(eng, n, seed, inside=0.95):
    """``n`` points: ``inside`` of them uniform inside the city, the rest uniform over its bounding box
    outside it (as a points file with lon/lat columns would hold)."""
    x, y = random_points(eng, int(n * inside), seed)
    ox, oy = random_points(eng, n - len(x), seed + 1, inside=False)
    lon, lat = np.concatenate([x, ox]), np.concatenate([y, oy])
    order = np.random.default_rng(seed + 2).permutation(len(lon))
    return pd.DataFrame({"id": np.arange(len(lon)), "lon": lon[order], "lat": lat[order]})


def timed_process(cmd, env, repeat):
    import os
    import subprocess

    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, env={**os.environ, **env}, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_assign(url, eng, folder: Path, n, seed, repeat):
    """`gridmap assign` vs the geopandas script, whole processes, Parquet and CSV; identical micro-grids."""
    import geopandas as gpd

    frame = e2e_points(eng, n, seed)
    frame.to_parquet(folder / "pts.parquet", index=False)
    frame.to_csv(folder / "pts.csv", index=False)
    with eng.connect() as conn:
        micro = grids.index_frame(conn)
    micro = micro[micro["level"] == "micro"]
    gpd.GeoDataFrame(micro[["code"]], geometry=list(micro["geometry"]), crs=4326).to_parquet(folder / "micro.parquet")
    (folder / "gpd_assign.py").write_text(GEOPANDAS_SCRIPT)
    env = {"GRIDMAP_DATABASE_URL": url, "GRIDMAP_HOME": str(folder / "home")}
    exe = str(Path(sys.executable).with_name("gridmap"))
    subprocess_env = {"GRIDMAP_DATABASE_URL": url}
    timed_process([exe, "lookup", "113.68", "34.75"], env, 1)  # the index persisted once, as after any first use
    rows = []
    for fmt in ("parquet", "csv"):
        src, ours_out, theirs_out = (folder / f"{name}.{fmt}" for name in ("pts", "ours", "theirs"))
        t_ours = timed_process([exe, "assign", str(src), str(ours_out)], env, repeat)
        t_gpd = timed_process(
            [sys.executable, str(folder / "gpd_assign.py"), str(src), str(folder / "micro.parquet"), str(theirs_out)],
            subprocess_env,
            repeat,
        )
        if fmt == "parquet":
            a = pd.read_parquet(ours_out, columns=["micro_code", "status"])
            b = pd.read_parquet(theirs_out, columns=["code"])
        else:
            a = pd.read_csv(ours_out, usecols=["micro_code", "status"], dtype=str)
            b = pd.read_csv(theirs_out, usecols=["code"], dtype=str)
        ours = a["micro_code"].astype(object).where(a["micro_code"].notna(), None).to_numpy()
        theirs = b["code"].astype(object).where(b["code"].notna(), None).to_numpy()
        same = bool(np.array_equal(ours, theirs))
        inside = float(np.mean(ours != None))  # noqa: E711
        print(
            f"assign {fmt}: gridmap {t_ours:.2f} s, geopandas {t_gpd:.2f} s, {t_gpd / t_ours:.1f}x, "
            f"identical micro-grids {same}, inside {inside:.1%}",
            flush=True,
        )
        rows.append((fmt, t_ours, t_gpd, same, inside))
    t_first = timed_process([exe, "lookup", "113.68", "34.75"], env, repeat)
    print(f"fresh process, first lookup (index loaded from disk): {t_first:.2f} s", flush=True)
    return rows, t_first


def _serve(url, port, folder, workers=2, threads=8):
    import os
    import subprocess

    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_HOME": str(folder / "home")}
    exe = Path(sys.executable).with_name("gridmap")
    server = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", str(workers), "--threads", str(threads)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            client = RawClient(port)
            client.get("/api/v1/lookup?lon=113.68&lat=34.75")
            client.close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.terminate()
                raise RuntimeError("gridmap serve did not come up") from None
            time.sleep(0.5)


WRK_POST = """
local f = io.open(os.getenv("GRIDMAP_BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
"""


def _wrk(port, script, env, connections=8, seconds=5, path="/", latency=False):
    import os
    import re
    import shutil
    import subprocess

    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found (apt-get install wrk, or `make bench-lookup`)")
    cmd = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    out = subprocess.run(
        [*cmd, *(["--latency"] if latency else []), f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    if "Non-2xx" in out or "timeout" in out.split("Requests/sec")[0].lower().replace("--timeout", ""):
        raise RuntimeError("wrk saw errors:\n" + out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = None
    if latency:
        m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return rps, p99


def bench_http_batch(url, eng, folder, seed, repeat, port=5103):
    """POST /api/v1/lookup with 10,000 points, 2 workers, wrk 8 connections: points/s for the
    answer as objects and as columns (the columnar request), and one PostGIS query per point for scale."""
    import json

    x, y = random_points(eng, 10_000, seed + 7)
    bodies = {
        "objects": json.dumps([{"lon": round(a, 7), "lat": round(b, 7)} for a, b in zip(x, y)]),
        "columns": json.dumps({"lon": np.round(x, 7).tolist(), "lat": np.round(y, 7).tolist(), "format": "columns"}),
    }
    (folder / "post.lua").write_text(WRK_POST)
    server = _serve(url, port, folder)
    out = {}
    try:
        for name, body in bodies.items():
            (folder / f"{name}.json").write_text(body)
            env = {"GRIDMAP_BENCH_BODY": str(folder / f"{name}.json")}
            _wrk(port, folder / "post.lua", env, seconds=2, path="/api/v1/lookup")  # warm-up
            runs = [_wrk(port, folder / "post.lua", env, seconds=5, path="/api/v1/lookup")[0] for _ in range(repeat)]
            out[name] = statistics.median(runs) * 10_000
            print(f"HTTP POST 10,000 points ({name}): {out[name]:,.0f} points/s", flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return out


def commit_versions(eng, codes, geoms):
    """A planner's committed boundary change: the grids' current versions closed and new ones opened
    with ``geoms``, in one transaction, as the edit engine commits them.  (The engine's checks and
    impact preview come before the commit and take far longer at city scale: the commit is what the
    lookup index must follow.)"""
    from datetime import UTC, datetime

    with eng.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT code, name, level, kind, parent_code, households, population FROM grid "
                "WHERE code = ANY(:c) AND valid_to IS NULL ORDER BY code"
            ),
            {"c": list(codes)},
        ).all()
        columns = ["code", "name", "level", "kind", "parent_code", "households", "population"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["geometry"] = [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in geoms]
        now = datetime.now(UTC)
        grids.close(conn, list(codes), now)
        grids.insert(conn, frame, now)


#: The paced load of the edit runs: each of wrk's 8 connections waits this long (ms) between
#: requests, about 850 requests/s here, a sixth of what the two workers answer flat out (at
#: saturation the p99 is mostly queueing behind wrk, PostgreSQL and the workers on 2 cores).
EDIT_PACE_MS = 8


def bench_http_edits(url, eng, folder, seed, port=5104, minutes=1.0, every=5.0, pace_ms=0):
    """Single GET lookups (wrk, 8 connections, --latency) while a planner commits a boundary move every
    ``every`` seconds (:func:`commit_versions`; None: no edits, the same lookups alone); after each
    commit, how long until a lookup of a point the edit moved answers with its new micro-grid.
    ``pace_ms``: each wrk connection waits that long between requests (wrk's ``delay()``), a load
    the server is not saturated by; 0: as fast as the 8 connections go."""
    import threading

    with eng.connect() as conn:
        pair = conn.execute(
            sa.text(
                "SELECT a.code, b.code FROM grid a JOIN grid b ON a.parent_code = b.parent_code AND a.code < b.code "
                "WHERE a.level = 'micro' AND b.level = 'micro' AND a.valid_to IS NULL AND b.valid_to IS NULL "
                "AND ST_Relate(a.geom, b.geom, '****1****') ORDER BY a.code LIMIT 1"
            )
        ).one()
    x, y = random_points(eng, 5000, seed + 11)
    (folder / "points.txt").write_text("\n".join(f"lon={a:.7f}&lat={b:.7f}" for a, b in zip(x, y)) + "\n")
    (folder / "lookup.lua").write_text(WRK_SCRIPT + (f"delay = function() return {pace_ms} end\n" if pace_ms else ""))
    server = _serve(url, port, folder)
    lags, stop = [], threading.Event()

    def planner():
        import json

        flip = 0
        while not stop.wait(every):
            with eng.connect() as conn:
                union = shapely.from_wkb(
                    bytes(
                        conn.execute(
                            sa.text(
                                "SELECT ST_AsBinary(ST_Union(geom)) FROM grid WHERE code = ANY(:c) AND valid_to IS NULL"
                            ),
                            {"c": list(pair)},
                        ).scalar_one()
                    )
                )
            x0, y0, x1, y1 = union.bounds
            cut = x0 + (x1 - x0) * (0.45 if flip % 2 == 0 else 0.55)
            first = union.intersection(shapely.box(x0 - 1, y0 - 1, cut, y1 + 1))
            probe = (x0 + (x1 - x0) * 0.5, y0 + (y1 - y0) * 0.5)
            if not union.contains(shapely.Point(probe)):
                probe = union.representative_point().coords[0]
            try:
                commit_versions(eng, pair, [first, union.difference(first)])
            except Exception as exc:  # a failed commit is reported, not fatal to the measurement
                print(f"edit failed: {exc}", flush=True)
                flip += 1
                continue
            committed = time.perf_counter()
            expected = pair[0] if shapely.Point(probe).within(first) else pair[1]
            client = RawClient(port)
            while True:
                status, body = client.get(f"/api/v1/lookup?lon={probe[0]:.9f}&lat={probe[1]:.9f}")
                if json.loads(body).get("micro") == expected or time.perf_counter() - committed > 10:
                    lags.append(time.perf_counter() - committed)
                    break
            client.close()
            flip += 1

    thread = threading.Thread(target=planner, daemon=True)
    try:
        if every is not None:
            thread.start()
        env = {"GRIDMAP_BENCH_POINTS": str(folder / "points.txt")}
        rps, p99 = _wrk(port, folder / "lookup.lua", env, seconds=int(minutes * 60), latency=True)
    finally:
        stop.set()
        if every is not None:
            thread.join(30)
        server.terminate()
        server.wait(30)
    lag_ms = [v * 1000 for v in lags]
    pace = f"paced {pace_ms} ms" if pace_ms else "unpaced"
    seen = (
        f"; {len(lags)} edits seen after {statistics.median(lag_ms):.0f} ms (median), max {max(lag_ms):.0f} ms"
        if lag_ms
        else ""
    )
    edits = f"under edits every {every:.0f} s" if every is not None else "without edits"
    print(f"HTTP GET {edits}, {pace}: {rps:,.0f} req/s, p99 {p99:.2f} ms{seen}", flush=True)
    return rps, p99, lag_ms


def e2e(url, eng, args):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows, t_first, batch = [], None, {}
        if not args.edits_only:
            rows, t_first = bench_assign(url, eng, folder, args.points, args.seed, args.repeat)
            batch = bench_http_batch(url, eng, folder, args.seed, args.repeat)
        minutes = args.edit_minutes
        under = {
            (pace, every): bench_http_edits(url, eng, folder, args.seed, minutes=minutes, every=every, pace_ms=pace)
            for pace in (0, EDIT_PACE_MS)
            for every in (5.0, None)
        }
    print()
    print(
        f"| end to end, {args.points:,} points, 95 % inside (medians of {args.repeat}) | gridmap | geopandas | ratio |"
    )
    print("|---|---:|---:|---:|")
    for fmt, ours, theirs, *_ in rows:
        print(
            f"| `gridmap assign` vs read + `sjoin` + write, {fmt} in and out (whole processes) | {ours:.2f} s "
            f"| {theirs:.2f} s | {theirs / ours:.1f}x |"
        )
    if t_first is not None:
        print(f"| fresh `gridmap lookup` process, first answer (index loaded) | {t_first:.2f} s | | |")
    for name, pps in batch.items():
        print(f"| POST /api/v1/lookup, 10,000 points ({name}), 2 workers, 8 connections | {pps:,.0f} points/s | | |")
    for pace in (0, EDIT_PACE_MS):
        rps, p99, lag = under[pace, 5.0]
        rps_alone, p99_alone, _ = under[pace, None]
        load = f"each connection waiting {pace} ms between requests" if pace else "8 connections as fast as they go"
        print(
            f"| GET /api/v1/lookup p99 while an edit commits every 5 s, {load} ({rps:,.0f} req/s) | {p99:.2f} ms "
            f"| the same lookups without edits: {p99_alone:.2f} ms ({rps_alone:,.0f} req/s) | |"
        )
        print(
            f"| edit reflected in lookups after (median / max of {len(lag)}), {load} | "
            f"{statistics.median(lag):.0f} / {max(lag):.0f} ms | | |"
        )
    ok = all(r[3] for r in rows)
    print(f"identical micro-grid for every point: {ok}")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20241)
    parser.add_argument("--skip-postgis", action="store_true", help="skip the (slow) 1M-point PostGIS join")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--http-requests", type=int, default=2000)
    parser.add_argument("--http-only", action="store_true", help="only the HTTP part")
    parser.add_argument("--e2e", action="store_true", help="issue 16: whole commands and requests only")
    parser.add_argument("--edit-minutes", type=float, default=1.0)
    parser.add_argument("--edits-only", action="store_true", help="with --e2e: only the GET minutes")
    args = parser.parse_args()
    import geopandas as gpd

    url = bench_db(args.seed)
    eng = db.engine(url)
    if args.e2e:
        return e2e(url, eng, args)
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
    t_ours, table = median(lambda: assign_table(index, x, y, "EPSG:4326"), args.repeat)
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
