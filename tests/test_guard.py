"""The server's front door (`gridmap serve`, web/guard.py): stalled and oversized request bodies cost
no request thread, get 408/413, and lookups keep answering meanwhile."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from servers import serving

LIMIT = 100_000


@pytest.fixture(scope="module")
def served(demo_url):
    # one worker with 2 request threads: 8 stalled clients would hold it all if bodies took threads
    args = (
        "--workers",
        "1",
        "--threads",
        "2",
        "--max-body",
        str(LIMIT),
        "--body-timeout",
        "2",
        "--header-timeout",
        "2",
    )
    with serving(demo_url, *args) as (base, port):
        yield base, port


def _raw(port: int, head: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head)
    return s


def _status(s: socket.socket, timeout: float = 10) -> int | None:
    s.settimeout(timeout)
    try:
        line = s.recv(64)
    except OSError:
        return None
    return int(line.split(b" ")[1]) if line else None


def _lookup(base: str) -> float:
    t = time.perf_counter()
    with urllib.request.urlopen(f"{base}/api/v1/lookup?lon=113.70&lat=34.75", timeout=5) as r:
        assert r.status == 200
    return time.perf_counter() - t


def test_stalled_bodies_do_not_hold_the_workers(served):
    base, port = served
    head = b"POST /api/v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n["
    stalled = [_raw(port, head) for _ in range(8)]
    time.sleep(0.3)
    took = [_lookup(base) for _ in range(5)]  # answered while all 8 wait, 4 times the threads
    assert max(took) < 1.0, took
    started = time.monotonic()
    assert [_status(s) for s in stalled] == [408] * 8  # the body timeout (2 s) ends them
    assert time.monotonic() - started < 5
    for s in stalled:
        s.close()


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    _, port = served
    head = (
        f"POST /api/v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {10**9}\r\n\r\n"
    )
    s = _raw(port, head.encode())  # announces 1 GB, sends none of it
    s.settimeout(5)
    answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "payload_too_large" and str(LIMIT) in body["error"]["message"]
    s.close()


def test_a_chunked_body_is_cut_at_the_limit(served):
    base, _ = served
    chunks = (b"[" + b"0," * 1000 for _ in range(100))  # ~200 kB, no Content-Length
    req = urllib.request.Request(
        f"{base}/api/v1/lookup", data=chunks, method="POST", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 413


def test_slow_headers_are_cut(served):
    _, port = served
    s = _raw(port, b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
    s.settimeout(10)
    started = time.monotonic()
    got = s.recv(64)  # granian closes it (or answers 408) after the header timeout
    assert time.monotonic() - started < 6 and (got == b"" or b" 408 " in got)
    s.close()


def test_an_error_never_echoes_the_whole_input(served):
    base, _ = served
    crs = "x" * 50_000
    req = urllib.request.Request(
        f"{base}/api/v1/lookup",
        data=json.dumps({"points": [{"lon": 113.7, "lat": 34.75}], "crs": crs}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    body = err.value.read()
    assert err.value.code == 400 and len(body) < 600 and b"crs" in body
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/api/v1/lookup?lon=113.7&lat=34.75&crs={'y' * 20_000}", timeout=10)
    assert err.value.code == 400 and len(err.value.read()) < 700
