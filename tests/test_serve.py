"""`gridmap serve`: the real server (granian worker processes) answers like the app in-process."""

import json
import os
import subprocess
import urllib.request

import pytest

from servers import GRIDMAP, serving


@pytest.fixture(scope="module")
def served(demo_url):
    with serving(demo_url, "--workers", "2", "--threads", "2") as (base, port):
        yield base, port


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
    res = subprocess.run(
        [GRIDMAP, "serve", "--port", str(port)],
        env={**os.environ, "GRIDMAP_DATABASE_URL": demo_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == f"gridmap: error: cannot serve on 127.0.0.1:{port}: Address already in use"
