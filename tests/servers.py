"""`gridmap serve` for tests that need the real server (browser, GDAL, worker processes)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(
    database_url: str,
    *args: str,
    env: dict | None = None,
    timeout: float = 60,
    gridmap: str = GRIDMAP,
    cwd=None,
    log: Path | None = None,
):
    """`gridmap serve ARGS` (the ``gridmap`` command given, default this venv's) over ``database_url`` on
    a free loopback port; yields (base URL, port) once it answers HTTP, and stops it on exit.  ``log``:
    a file that gets the server's stderr."""
    port = free_port()
    err = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed when the server stops
    proc = subprocess.Popen(
        [gridmap, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, "GRIDMAP_DATABASE_URL": database_url, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=err,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(base + "/static/gridmap.css", timeout=30).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    said = Path(log).read_text() if log else proc.stderr.read()
                    raise RuntimeError("gridmap serve did not come up: " + said[-2000:]) from None
                time.sleep(0.2)
        yield base, port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            err.close()
