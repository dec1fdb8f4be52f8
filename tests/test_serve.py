"""`gridmap serve`: the real server (granian worker processes) answers like the app in-process."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(demo_url):
    port = free_port()
    proc = subprocess.Popen([GRIDMAP, "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
                            env={**os.environ, "GRIDMAP_DATABASE_URL": demo_url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/v1/stats", timeout=30).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("gridmap serve did not come up: " + proc.stderr.read()[-2000:])
            time.sleep(0.3)
    yield base, port
    proc.terminate()
    proc.wait(30)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_workers_answer_like_the_app(served, demo_client):
    base, _ = served
    # many requests so both worker processes answer (each holds its own index and connections)
    for i in range(40):
        lon, lat = 113.70 + i * 0.001, 34.70 + i * 0.0005
        status, body = get(f"{base}/api/v1/lookup?lon={lon}&lat={lat}")
        expected = demo_client.get(f"/api/v1/lookup?lon={lon}&lat={lat}")
        assert status == expected.status_code == 200
        assert body["micro"] == expected.get_json()["micro"] and body["chain"] == expected.get_json()["chain"]
    status, body = get(f"{base}/api/v1/lookup?lon=34.7&lat=113.7")
    assert status == 400 and "swapped" in body["error"]["message"]


def test_port_in_use_is_one_line(served, demo_url):
    _, port = served
    res = subprocess.run([GRIDMAP, "serve", "--port", str(port)], env={**os.environ, "GRIDMAP_DATABASE_URL": demo_url},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == f"gridmap: error: cannot serve on 127.0.0.1:{port}: Address already in use"
