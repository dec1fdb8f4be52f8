#!/usr/bin/env python
"""Load and abuse: every numbered case of issue #17 against a running `gridmap serve`, one table.

    python scripts/bench_abuse.py [--seconds 8] [--no-outage]      (or `make bench-abuse`)

Starts `gridmap serve` (its defaults: 2 workers, the guard's limits) on a free port over the database
``gridmap_abuse`` of the local cluster (the Guancheng demo city is loaded into it when empty), makes a
planner token, and runs each case while wrk keeps 32 connections of lookups going where the case says
"under load".  The baseline p99 of that load with no attack is measured in the same run; the table
gives each case's figure next to it.  Case 5 stops and starts the local cluster (skip it with
--no-outage, and it is skipped when GRIDMAP_DATABASE_URL names another database).  Each figure is one
run (wrk's p99 over ``--seconds``), not a median: the attacks change the state they measure.

Cases (issue #17): 1 stalled bodies, 2 huge body and echo, 3 huge edit, 4 personal data to strangers,
5 database outage, 6 edits breaking the store's rules, 7 ``at=`` flood (the lookup issue's), 8 unhandled
types, 9 partition workers outliving their parent (the partition issue's), 10 CSV reader errors,
11 loose checks.  A case "holds" when its rule does: p99 <= 50 ms at 32 connections while it runs, no
5xx but 503 during the outage, nothing written by a refused request.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gridmap.services.demo import load_demo  # noqa: E402
from gridmap.services.resources import load_rules  # noqa: E402
from gridmap.settings import Settings  # noqa: E402
from gridmap.store import cluster, db  # noqa: E402

from servers import GRIDMAP, serving  # noqa: E402

P99_LIMIT_MS = 50.0
AT_FLOOD_LUA = """
n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/lookup?lon=%LON%&lat=%LAT%&at=2026-01-01T00:00:00." .. n .. "Z")
end
"""


def abuse_db() -> str:
    settings = Settings.from_env()
    if settings.external_database_url:
        return settings.external_database_url
    cluster.start(settings)
    url = cluster.ensure_database(settings, "gridmap_abuse")
    db.migrate(url)
    eng = db.engine(url)
    with eng.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar()
    if not n:
        print("loading the Guancheng demo city into gridmap_abuse ...", flush=True)
        load_demo(eng, "guancheng", 20241, rules=load_rules(settings.risk_rules_path), fresh=True)
    return url


def request(base, path, *, method="GET", body=None, headers=None, timeout=60.0, raw=None):
    """(status, headers, body bytes, seconds) of one request; never raises for an HTTP status."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read(), time.perf_counter() - t
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read(), time.perf_counter() - t
    except OSError as e:
        return 0, {}, str(e).encode(), time.perf_counter() - t


def upload(base: str, path: str, size: int, headers: dict | None = None, data: bytes = b"") -> tuple[int, int, float]:
    """POST ``data`` (or ``size`` bytes of a JSON-ish list) the way a client streams it, stopping when
    the server answers or closes: (status, bytes sent, seconds)."""
    size = len(data) or size
    host, port = base.split("//")[1].split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    chunk, sent = b"[" + b"0," * 32767 + b" ", 0
    t = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(head.encode())
        s.setblocking(False)
        answer = b""
        while not answer:
            try:
                answer = s.recv(64)
                if not answer:
                    break
            except BlockingIOError:
                pass
            if sent < size:
                try:
                    sent += s.send(data[sent : sent + 65536] if data else chunk[: size - sent])
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    break
            else:
                time.sleep(0.01)
        s.setblocking(True)
        answer = answer or s.recv(64)
    status = int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent, time.perf_counter() - t


class Load:
    """wrk on ``url`` for ``seconds`` in a thread: p99 in ms and non-2xx/3xx responses afterwards."""

    def __init__(self, url: str, seconds: float, connections: int = 32, script: str | None = None):
        self.args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
        self.script = script
        self.url = url
        self.out = ""

    def __enter__(self):
        args = list(self.args)
        if self.script:
            f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
            f.write(self.script)
            f.close()
            args += ["-s", f.name]
        self.thread = threading.Thread(
            target=lambda: setattr(
                self, "out", subprocess.run(args + [self.url], capture_output=True, text=True).stdout
            )
        )
        self.thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.thread.join()

    @property
    def p99_ms(self) -> float:
        m = re.search(r"99%\s+([\d.]+)(us|ms|s)", self.out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    @property
    def errors(self) -> int:
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", self.out)
        t = re.search(r"timeout (\d+)", self.out)
        return (int(m.group(1)) if m else 0) + (int(t.group(1)) if t else 0)

    @property
    def rps(self) -> float:
        m = re.search(r"Requests/sec:\s+([\d.]+)", self.out)
        return float(m.group(1)) if m else float("nan")


def zigzag(ring: list, n: int) -> list:
    """``ring`` with its first edge replaced by ``n`` vertices zigzagging 1 m across it."""
    (ax, ay), (bx, by) = ring[0], ring[1]
    dx, dy = bx - ax, by - ay
    length = (dx * dx + dy * dy) ** 0.5
    pts = [ring[0]]
    for i in range(1, n):
        t, s = i / n, 0.00001 * (1 if i % 2 else 0)
        pts.append([ax + dx * t - dy / length * s, ay + dy * t + dx / length * s])
    return pts + ring[1:]


class Bench:
    def __init__(self, base: str, url: str, token: str, seconds: float):
        self.base, self.url, self.seconds = base, url, seconds
        self.auth = {"Authorization": f"Bearer {token}"}
        self.rows: list[tuple[str, str, str, bool]] = []
        feature = json.loads(request(base, "/ogc/collections/micro/items?limit=1")[2])["features"][0]
        self.code = feature["id"]
        ring = feature["geometry"]["coordinates"][0][0]
        self.ring = ring
        lon = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        lat = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        self.point = (round(lon, 6), round(lat, 6))
        self.lookup = f"{base}/api/v1/lookup?lon={self.point[0]}&lat={self.point[1]}"
        self.etag = request(base, f"/api/v1/grids/{self.code}")[1].get("ETag")

    def row(self, case: str, measured: str, holds: bool) -> None:
        self.rows.append((case, measured, "yes" if holds else "NO", holds))
        print(f"  {case}: {measured} -> {'holds' if holds else 'DOES NOT HOLD'}", flush=True)

    def load(self, **kw) -> Load:
        return Load(self.lookup, self.seconds, **kw)

    def writes(self) -> tuple[int, int]:
        with db.engine(self.url).connect() as conn:
            return (
                conn.execute(sa.text("SELECT count(*) FROM edit_log")).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM grid")).scalar(),
            )

    # --- the cases --------------------------------------------------------------------------

    def baseline(self):
        with self.load() as load:
            pass
        self.base_p99 = load.p99_ms
        self.row("0 baseline: lookups, 32 connections", f"p99 {load.p99_ms:.1f} ms, {load.rps:.0f} req/s", True)

    def stalled(self, n=64):
        host, port = self.base.rsplit(":", 1)[0].split("//")[1], int(self.base.rsplit(":", 1)[1])
        socks = []
        head = (
            b"POST /api/v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n{"
        )
        for _ in range(n):
            s = socket.create_connection((host, port))
            s.sendall(head)
            socks.append(s)
        with self.load() as load:
            pass
        answers = []
        for s in socks:
            s.settimeout(20)
            try:
                answers.append(s.recv(64).split(b" ")[1].decode())
            except (OSError, IndexError):
                answers.append("none")
            s.close()
        codes = {c: answers.count(c) for c in sorted(set(answers))}
        ok = load.p99_ms <= P99_LIMIT_MS and load.errors == 0 and codes.get("408", 0) == n
        self.row(
            f"1 {n} clients stall mid-body, under load",
            f"p99 {load.p99_ms:.1f} ms ({load.rps:.0f} req/s, {load.errors} errors); stalled got {codes}",
            ok,
        )

    def huge_body(self):
        with self.load() as load:
            status, sent, secs = upload(self.base, "/api/v1/lookup", 100 * 1024 * 1024)
        echo = request(
            self.base, "/api/v1/lookup", method="POST", body={"points": [], "crs": "x" * 1_000_000}, timeout=30
        )
        ok = status == 413 and load.p99_ms <= P99_LIMIT_MS and len(echo[2]) < 1000 and 400 <= echo[0] < 500
        self.row(
            "2 100 MB anonymous POST, under load; 1 MB crs",
            f"{status} in {secs:.2f} s after {sent / 1e6:.1f} MB sent; p99 {load.p99_ms:.1f} ms; "
            f"the 1 MB crs: {echo[0]}, {len(echo[2])} bytes back",
            ok,
        )

    def huge_edit(self):
        before = self.writes()
        ring = self.ring
        giant = {
            "op": "replace",
            "code": self.code,
            "dry_run": True,
            "geometry": {"type": "Polygon", "coordinates": [zigzag(ring, 200_000)]},
        }
        data = json.dumps(giant).encode()
        with self.load() as load:
            status, _, secs = upload(self.base, "/api/v1/edits", 0, self.auth, data)
        over = dict(giant, geometry={"type": "Polygon", "coordinates": [zigzag(ring, 20_000)]})
        s20, _, _, secs20 = request(self.base, "/api/v1/edits", method="POST", body=over, headers=self.auth)
        five = dict(giant, geometry={"type": "Polygon", "coordinates": [zigzag(ring, 4_990)]})
        s5, _, _, secs5 = request(self.base, "/api/v1/edits", method="POST", body=five, headers=self.auth)
        ok = status == 413 and s20 == 413 and (s5 == 200 or 400 <= s5 < 500) and secs5 < 10
        ok = ok and load.p99_ms <= P99_LIMIT_MS and self.writes() == before
        self.row(
            "3 edit of 200,000 vertices (dry run), under load; 20,000; 4,990",
            f"{status} ({len(data) / 1e6:.1f} MB) in {secs:.2f} s; p99 {load.p99_ms:.1f} ms; "
            f"20,000 vertices: {s20} in {secs20:.2f} s; "
            f"4,990: {s5} in {secs5:.2f} s",
            ok,
        )

    def personal(self):
        routes = [
            "/api/v1/risk/elements?kind=person&colour=red&limit=50",
            f"/api/v1/grids/{self.code}/panel",
            f"/api/v1/grids/{self.code}",
            "/api/v1/reports?limit=50",
            f"/api/v1/lookup?lon={self.point[0]}&lat={self.point[1]}",
        ]
        personal = ("phone", "reason", "marked_by", '"text"', '"people"', '"attrs"')
        leaks = []
        for path in routes:
            status, _, body, _ = request(self.base, path)
            found = [k for k in personal if k in body.decode()]
            if status != 200 or found:
                leaks.append(f"{path.split('?')[0]}: {status} {found}")
        shown = request(self.base, routes[0], headers=self.auth)[2].decode()
        ok = not leaks and "reason" in shown
        self.row("4 personal data, no token", "; ".join(leaks) or f"none in {len(routes)} routes (a token sees it)", ok)

    def outage(self):
        settings = Settings.from_env()
        port = settings.pg_port()
        paths = ["/api/v1/stats", self.lookup.replace(self.base, ""), "/api/v1/search?q=1", "/"]
        cluster.stop(settings)
        down = [request(self.base, p, timeout=20) for p in paths]
        cluster.start(settings)
        moved = Settings.from_env().pg_port() != port
        time.sleep(1)
        up = [request(self.base, p, timeout=20)[0] for p in paths]
        codes = [d[0] for d in down]
        retry = all("Retry-After" in d[1] for d in down)
        ok = codes == [503] * len(paths) and retry and up == [200] * len(paths) and not moved
        self.row(
            "5 database stopped, then started",
            f"down: {codes} (Retry-After: {retry}); back: {up}; port {'moved' if moved else 'kept'}",
            ok,
        )

    def bad_edits(self):
        before = self.writes()
        c = self.code
        line = {"type": "LineString", "coordinates": [self.ring[0], self.ring[2]]}
        edits = [
            {"op": "split", "code": c, "line": line, "codes": ["../../etc <script>", "Z" * 3000]},
            {"op": "split", "code": c, "line": line, "codes": "ab"},
            {"op": "merge", "codes": [c, c[:-2] + "99"], "name": ["x"]},
            {"op": "retire", "code": c, "gap_to": c},
            {"op": "update", "code": c, "properties": {"kind": "mall"}},
        ]
        statuses = []
        for e in edits:
            statuses.append(
                request(
                    self.base, "/api/v1/edits", method="POST", body=e, headers={**self.auth, "If-Match": self.etag}
                )[0]
            )
        ok = all(400 <= s < 500 for s in statuses) and self.writes() == before
        self.row("6 edits breaking the store's rules (commits)", f"{statuses}; written: {self.writes() != before}", ok)

    def at_flood(self):
        lua = AT_FLOOD_LUA.replace("%LON%", str(self.point[0])).replace("%LAT%", str(self.point[1]))
        with Load(self.base + "/", self.seconds, connections=2, script=lua):
            with self.load() as load:
                pass
        self.row(
            "7 at= flood (2 clients), lookups under load [issue #16's]",
            f"p99 {load.p99_ms:.1f} ms ({load.rps:.0f} req/s, {load.errors} errors)",
            load.p99_ms <= P99_LIMIT_MS and load.errors == 0,
        )

    def types(self):
        c = self.code
        cases = [
            ("POST", "/api/v1/lookup", b'{"points": [], "crs": ["x"]}'),
            ("POST", "/api/v1/lookup", b'{"points": [{"lon": 1e400, "lat": 34}]}'),
            ("POST", "/api/v1/lookup", b"[" * 100_000 + b"]" * 100_000),
            (
                "POST",
                "/api/v1/edits",
                b'{"op": "update", "code": "%s", "properties": {"households": %d}}' % (c.encode(), 10**30),
            ),
            (
                "POST",
                "/api/v1/edits",
                b'{"op": "update", "code": "%s", "properties": {"households": "abc"}}' % c.encode(),
            ),
            (
                "POST",
                "/api/v1/edits",
                b'{"op": "update", "code": "%s", "properties": {"households": Infinity}}' % c.encode(),
            ),
            ("POST", "/api/v1/edits", b'{"op": "update", "code": "%s", "properties": {"households": {}}}' % c.encode()),
            ("POST", "/api/v1/edits", b'{"op": "update", "code": "%s", "properties": [1]}' % c.encode()),
            (
                "PUT",
                f"/ogc/collections/micro/items/{c}",
                b'{"type": "Feature", "properties": {"households": 1e400}, '
                b'"geometry": {"type": "Polygon", "coordinates": [[[1e308, 34], [113, 34], [113, 35], [1e308, 34]]]}}',
            ),
            (
                "PUT",
                f"/ogc/collections/micro/items/{c}",
                b'{"type": "Feature", "properties": {}, '
                b'"geometry": {"type": "Polygon", "coordinates": [[[-Infinity, 34], [113, 34], [113, 35], [1, 34]]]}}',
            ),
        ]
        statuses = [
            request(self.base, p, method=m, raw=b, headers={**self.auth, "If-Match": self.etag})[0] for m, p, b in cases
        ]
        self.row("8 unhandled types", f"{statuses}", all(400 <= s < 500 for s in statuses))

    def partition_kill(self):
        env = {**os.environ, "GRIDMAP_DATABASE_URL": self.url}
        proc = subprocess.Popen(
            [GRIDMAP, "partition", "--all", "--dry-run", "--format", "json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(4)
        kids = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(3)
        alive = [k for k in kids if Path(f"/proc/{k}").exists()]
        for k in alive:  # ours to clean up
            os.kill(k, signal.SIGKILL)
        self.row(
            "9 kill -9 of `gridmap partition` [issue #14's]",
            f"{len(kids)} worker processes, {len(alive)} alive 3 s later",
            not alive,
        )

    def csv_errors(self):
        env = {**os.environ, "GRIDMAP_DATABASE_URL": self.url}
        head = "kind,colour,name,reason,marked_by,marked_at,lon,lat\n"
        files = {
            "short row": head + "person,red\n",
            "unterminated quote": head + 'person,red,"x,y,z,2026-11-01,113.68,34.73\n',
            "NUL byte": head + "person,red,a\x00b,r,m,2026-11-01,113.68,34.73\n",
        }
        got = []
        with tempfile.TemporaryDirectory() as tmp:
            for what, text in files.items():
                path = Path(tmp) / "bad.csv"
                path.write_text(text)
                r = subprocess.run([GRIDMAP, "risk", "import", str(path)], env=env, capture_output=True, text=True)
                lines = r.stderr.strip().splitlines()
                got.append((what, r.returncode, len(lines)))
        ok = all(code == 2 and n == 1 for _, code, n in got)
        self.row("10 CSV reader errors", ", ".join(f"{w}: exit {c}, {n} line(s)" for w, c, n in got), ok)

    def loose(self):
        c = self.code
        checks = [
            ("GET", "/api/v1/grids?level=micro&bbox=nan,nan,nan,nan", None),
            ("GET", "/api/v1/grids?level=micro&simplify_m=nan", None),
            ("GET", "/api/v1/grids?level=micro&simplify_m=-1e308", None),
            (
                "POST",
                "/api/v1/edits",
                {"op": "update", "code": c, "properties": {"name": "x" * 1_000_000}, "dry_run": True},
            ),
            ("POST", "/api/v1/risk/visits", {"element": 1, "visitor": "x" * 3_000_000}),
            ("POST", "/api/v1/risk/visits", {"element": 1.5, "visitor": "x"}),
        ]
        statuses = [request(self.base, p, method=m, body=b, headers=self.auth)[0] for m, p, b in checks]
        self.row("11 loose checks", f"{statuses}", all(400 <= s < 500 for s in statuses))


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="wrk run per loaded case")
    ap.add_argument("--no-outage", action="store_true", help="skip case 5 (stops the local cluster)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk (make bench-abuse installs it)", file=sys.stderr)
        return 2
    url = abuse_db()
    token = subprocess.run(
        [GRIDMAP, "users", "add", f"bench-abuse-{secrets.token_hex(3)}", "--role", "planner"],
        env={**os.environ, "GRIDMAP_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with serving(url) as (base, _port):
        print(f"gridmap serve at {base} (defaults), database {url.rsplit('/', 1)[-1]}", flush=True)
        bench = Bench(base, url, token, args.seconds)
        bench.baseline()
        bench.stalled()
        bench.huge_body()
        bench.huge_edit()
        bench.personal()
        if args.no_outage or Settings.from_env().external_database_url:
            bench.row("5 database stopped, then started", "skipped", True)
        else:
            bench.outage()
        bench.bad_edits()
        bench.at_flood()
        bench.types()
        bench.partition_kill()
        bench.csv_errors()
        bench.loose()
    width = max(len(r[0]) for r in bench.rows)
    print(f"\n| {'case':<{width}} | holds | measured |")
    print(f"|{'-' * (width + 2)}|-------|----------|")
    for case, measured, holds, _ in bench.rows:
        print(f"| {case:<{width}} | {holds:<5} | {measured} |")
    print(f"\nlookup p99 limit {P99_LIMIT_MS:g} ms at 32 connections; baseline p99 in this run {bench.base_p99:.1f} ms")
    return 0 if all(r[3] for r in bench.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
