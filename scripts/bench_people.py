#!/usr/bin/env python
"""Benchmark: grid people and QR codes on the Zhengzhou-scale city (issue 13).

    python scripts/bench_people.py [--workers 2] [--requests 2000] [--repeat 3] [--sample 1500] [--units]

Uses the database ``gridmap_bench`` (loads the Zhengzhou-scale demo city, roster included, when it
does not hold it).  Timed:
  QR sheets        `gridmap qr sheet --out DIR --kinds grid,building` as a user runs it (one PDF per
                   community, --workers processes): every grid of every community (the 42,453
                   micro-grids and the courtyards, communities and special grids above them) and the
                   84,857 buildings; --units adds the unit entrances.  Competitor: the same labels
                   drawn with reportlab's own QR widget (reportlab.graphics.barcode.qr), on --sample
                   labels in one process each, per code.
  scanned page     `gridmap serve` (2 workers) answering GET /g/<code>?s=… for random micro-grids,
                   buildings and unit entrances: p50/p95 of sequential keep-alive requests; the page's
                   whole load (HTML + its script + icon).
  coverage         `gridmap people coverage --format json` as a user runs it (median of --repeat), and
                   the service call alone; competitor: the gaps as one PostGIS query.
Targets: sheets <= 120 s, page p95 <= 30 ms and <= 150 kB, coverage <= 2 s.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridmap.services import people as people_service  # noqa: E402
from gridmap.services import qr as qr_service  # noqa: E402
from gridmap.services import qr_sheets  # noqa: E402
from gridmap.services.resources import load_rules  # noqa: E402
from gridmap.settings import Settings  # noqa: E402
from gridmap.store import db  # noqa: E402

from bench_lookup import RawClient, city_db, median  # noqa: E402

BASE = "https://wg.zhengzhou.example.cn"
GRIDMAP = str(Path(sys.executable).with_name("gridmap"))
GAPS_SQL = """
SELECT count(*) FROM grid g WHERE g.valid_to IS NULL AND g.level IN ('micro', 'special')
  AND NOT EXISTS (SELECT 1 FROM grid_post p WHERE p.grid_code = g.code AND p.valid_to IS NULL
                  AND p.role = 'grid_worker')
UNION ALL
SELECT count(*) FROM grid c WHERE c.valid_to IS NULL AND c.level = 'community' AND NOT EXISTS (
  WITH RECURSIVE below AS (SELECT c.code AS code UNION ALL
    SELECT g.code FROM grid g JOIN below ON g.parent_code = below.code WHERE g.valid_to IS NULL)
  SELECT 1 FROM party_org_grid o JOIN below ON below.code = o.grid_code WHERE o.valid_to IS NULL)"""


def run(args: list[str], env: dict) -> tuple[float, str, float]:
    """Wall time, stdout and CPU time (its processes, user + system) of one `gridmap` command;
    RuntimeError when it fails.  The CPU time tells what the wall time would be on an idle machine
    when the machine is shared: CPU / cores, for work spread evenly over them."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([GRIDMAP, *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"gridmap {' '.join(args)}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, done.stdout, cpu


def widget_pdf(labels) -> bytes:
    """The competitor: each code drawn by reportlab's QrCodeWidget, 12 to a page like ours."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, pageCompression=1)
    for i, label in enumerate(labels):
        w = QrCodeWidget(label.url, barLevel="M")
        x0, y0, x1, y1 = w.getBounds()
        s = qr_sheets.QR_SIZE / (x1 - x0)
        d = Drawing(qr_sheets.QR_SIZE, qr_sheets.QR_SIZE, transform=[s, 0, 0, s, 0, 0])
        d.add(w)
        renderPDF.draw(d, c, 30 + (i % 3) * 190, 40 + ((i // 3) % 4) * 200)
        c.drawString(30 + (i % 3) * 190, 30 + ((i // 3) % 4) * 200, label.code)
        if i % qr_sheets.PER_PAGE == qr_sheets.PER_PAGE - 1:
            c.showPage()
    c.save()
    return buf.getvalue()


def bench_sheets(eng, env, workers: int, units: bool, sample: int) -> dict:
    kinds = "grid,building,unit" if units else "grid,building"
    with tempfile.TemporaryDirectory(prefix="gridmap-qr-") as tmp:
        took, out, cpu = run(
            ["qr", "sheet", "--out", tmp, "--kinds", kinds, "--workers", str(workers), "--base", BASE], env
        )
        size = sum(p.stat().st_size for p in Path(tmp).glob("*.pdf"))
    print(
        f"QR sheets ({kinds}): {out.strip()} in {took:.1f} s wall, {cpu:.1f} s CPU over its processes "
        f"({size / 1e6:.0f} MB of PDF; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        flush=True,
    )
    groups = qr_service.labels(eng, None, base=BASE, kinds=("g", "b"), since=None)
    labels = [label for _, ls in groups for label in ls][:sample]
    t = time.perf_counter()
    qr_sheets.sheet_pdf(labels)
    ours = (time.perf_counter() - t) / len(labels)
    t = time.perf_counter()
    widget_pdf(labels)
    theirs = (time.perf_counter() - t) / len(labels)
    print(
        f"  per code, one process, {len(labels)} labels: gridmap {ours * 1000:.2f} ms, reportlab QrCodeWidget "
        f"{theirs * 1000:.2f} ms ({theirs / ours:.1f}x)",
        flush=True,
    )
    return {"seconds": took, "codes": out, "ours_ms": ours * 1000, "theirs_ms": theirs * 1000}


def page_paths(eng, n: int, seed: int) -> list[str]:
    """Signed links of random micro-grids (half), buildings and unit entrances (a quarter each)."""
    with eng.connect() as conn:
        micro = (
            conn.execute(sa.text("SELECT code FROM grid WHERE level = 'micro' AND valid_to IS NULL")).scalars().all()
        )
        rows = conn.execute(
            sa.text(
                "SELECT b.code, max(u.number) FROM building b JOIN unit u ON u.building_id = b.id "
                "WHERE b.valid_to IS NULL GROUP BY b.code"
            )
        ).all()
    rng = random.Random(seed)
    targets = [("g", c) for c in rng.sample(micro, n // 2)]
    picked = rng.sample(rows, n - n // 2)
    targets += [("b", b) for b, _ in picked[: len(picked) // 2]]
    targets += [("u", f"{b}-U{rng.randint(1, units)}") for b, units in picked[len(picked) // 2 :]]
    rng.shuffle(targets)
    with eng.begin() as conn:
        return [qr_service.sign_url(conn, k, c, "") for k, c in targets]


def bench_page(url: str, eng, requests: int, seed: int, port: int = 5131) -> dict:
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    server = subprocess.Popen(
        [GRIDMAP, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    paths = page_paths(eng, requests, seed)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = RawClient(port)
                client.get("/static/scan.js")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gridmap serve did not come up") from None
                time.sleep(0.5)
        for p in paths[:200]:  # warm-up
            client.get(p)
        lat, html = [], 0
        for p in paths:
            t = time.perf_counter()
            status, body = client.get(p)
            lat.append((time.perf_counter() - t) * 1000)
            if status != 200:
                raise RuntimeError(f"HTTP {status} for {p}: {body[:300]!r}")
            html = max(html, len(body))
        assets = sum(len(client.get(a)[1]) for a in ("/static/scan.js", "/static/favicon.svg"))
        client.close()
    finally:
        server.terminate()
        server.wait(30)
    lat.sort()
    p50, p95 = statistics.median(lat), lat[int(len(lat) * 0.95) - 1]
    print(
        f"scanned page: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {len(lat)} requests; whole load "
        f"{(html + assets) / 1024:.1f} kB (largest HTML {html / 1024:.1f} kB + script and icon {assets / 1024:.1f} kB)",
        flush=True,
    )
    return {"p50": p50, "p95": p95, "kb": (html + assets) / 1024}


def bench_coverage(url: str, eng, repeat: int) -> dict:
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    runs = [run(["people", "coverage", "--format", "json"], env) for _ in range(repeat)]
    cli, cpu = statistics.median(r[0] for r in runs), statistics.median(r[2] for r in runs)
    rules = load_rules(Settings.from_env().risk_rules_path)
    service, (summary, _gaps, _load) = median(lambda: people_service.coverage(eng, rules), repeat)

    def sql():
        with eng.connect() as conn:
            return conn.execute(sa.text(GAPS_SQL)).scalars().all()

    theirs, counts = median(sql, repeat)
    print(
        f"coverage: `gridmap people coverage` {cli:.2f} s wall, {cpu:.2f} s CPU (service alone {service:.2f} s: "
        f"gaps and every worker's load); the gaps alone as one PostGIS query {theirs:.2f} s; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    print(f"  {summary}; PostGIS gaps {counts}", flush=True)
    assert counts == [summary["grids_without_worker"], summary["communities_without_org"]], "the two disagree"
    return {"cli": cli, "service": service, "sql": theirs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=int, default=1500)
    ap.add_argument("--units", action="store_true", help="also print every unit entrance's code")
    ap.add_argument("--only", choices=("coverage", "page", "sheets"), help="run one part")
    args = ap.parse_args()
    url = city_db(args.seed, needs=("grid_post", "risk_element"))  # no floor shares read
    eng = db.engine(url)
    with eng.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM grid WHERE level = 'micro' AND valid_to IS NULL), "
                "(SELECT count(*) FROM building WHERE valid_to IS NULL), "
                "(SELECT count(*) FROM grid_post WHERE valid_to IS NULL)"
            )
        ).one()
    print(f"city: {counts[0]:,} micro-grids, {counts[1]:,} buildings, {counts[2]:,} current posts", flush=True)
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
    if args.only in (None, "coverage"):
        bench_coverage(url, eng, args.repeat)
    if args.only in (None, "page"):
        bench_page(url, eng, args.requests, args.seed)
    if args.only in (None, "sheets"):
        bench_sheets(eng, env, args.workers, args.units, args.sample)


if __name__ == "__main__":
    main()
