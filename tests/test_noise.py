"""`gridmap serve` starts without warnings a user cannot act on (issue #15 item 15): no granian
thread warning with the default threads on this machine's cores, no websocket notice for WSGI."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

from servers import GRIDMAP, free_port


def _serve(demo_url, out, *args: str) -> subprocess.Popen:
    """`gridmap serve ARGS` over the demo city, everything it says to ``out``."""
    return subprocess.Popen(
        [GRIDMAP, "serve", *args],
        env={**os.environ, "GRIDMAP_DATABASE_URL": demo_url},
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def test_serve_starts_quietly(demo_url, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = _serve(demo_url, out, "--port", str(port), "--no-warm")
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/static/gridmap.css", timeout=30).read()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "gridmap on http://127.0.0.1:" in text and "Started worker" in text, text
    assert "WARNING" not in text and "Websockets" not in text, text


def _cpu_ticks(pid: str) -> int:
    """Clock ticks of CPU a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def test_serve_stops_while_its_workers_start(demo_url, tmp_path):
    """A stop that comes while the workers build their app (the demo's index, the threads' first
    calls) ends `gridmap serve` at once: a worker forked with granian's main-process handlers used
    to swallow it and wait forever."""
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = _serve(demo_url, out, "--port", str(free_port()), "--workers", "2")
        try:
            deadline = time.monotonic() + 60
            while True:
                pids = re.findall(r"Spawning worker-\d with PID: (\d+)", log.read_text())
                # both workers are running Python (past the fork) and neither has started serving
                if len(pids) == 2 and all(_cpu_ticks(pid) >= 3 for pid in pids):
                    break
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.01)
            assert "Started worker" not in log.read_text(), log.read_text()
        finally:
            proc.terminate()
        try:
            proc.wait(15)  # well before granian kills a stuck worker (WORKER_STOP_TIMEOUT)
        finally:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
    # Not asserted: granian's "Killing worker-N after it refused to gracefully stop".  One fresh-clone CI
    # run (of seven full runs) logged it while the server still stopped within the 15 s above, well
    # inside the 25 s kill timeout (cause not found); what this test guards, a stop swallowed until
    # the kill timeout, is the wait above.
