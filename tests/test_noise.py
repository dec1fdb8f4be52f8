"""`gridmap serve` starts without warnings a user cannot act on (issue #15 item 15): no granian
thread warning with the default threads on this machine's cores, no websocket notice for WSGI."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

from servers import GRIDMAP, free_port


def test_serve_starts_quietly(demo_url, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [GRIDMAP, "serve", "--port", str(port), "--no-warm"],
            env={**os.environ, "GRIDMAP_DATABASE_URL": demo_url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
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
