"""The server's front door (`gridmap serve`, web/guard.py): stalled and oversized request bodies cost
no request thread, get 408/413, and lookups keep answering meanwhile."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from gridmap.web import scan

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


def test_the_scanned_pages_photo_route_alone_takes_a_larger_body(served):
    """The QR page's report carries a resident's photo (up to 5 MB): the guard lets that one POST route
    past the server's limit (here 100 kB) up to the photo limit, and no other route or method."""
    _, port = served
    photo_sized = 2 * LIMIT  # over the server's limit, under the photo limit
    for path, method, expected in (
        ("/g/41010400600100101/report", "POST", 400),  # read, then refused by the app: no signature
        ("/api/v1/lookup", "POST", 413),
        ("/g/41010400600100101/report/x", "POST", 413),
    ):
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {photo_sized}\r\nConnection: close\r\n\r\n"
        ).encode()
        s = _raw(port, head)
        if expected != 413:
            s.sendall(b"\0" * photo_sized)
        assert _status(s) == expected, (path, method)
        s.close()
    too_big = f"POST /g/41010400600100101/report HTTP/1.1\r\nHost: x\r\nContent-Length: {scan.MAX_REQUEST + 1}\r\n\r\n"
    s = _raw(port, too_big.encode())
    assert _status(s) == 413  # past the photo limit: refused before a byte is read
    s.close()


def _asgi_get(guard, path: str, query: bytes = b"", headers=()) -> tuple[int, dict, bytes]:
    """One GET through the guard as granian calls it: (status, headers, body)."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": list(headers)}
    asyncio.run(guard(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_a_request_the_app_may_answer_at_once_runs_on_the_loop_unless_it_says_again():
    """The guard's ``inline`` predicate: a request it accepts runs on the event loop's own thread,
    marked AT_ONCE; an answer carrying AGAIN is never sent, the request runs again in a request
    thread; a request the predicate refuses goes to a thread at once."""
    import threading

    from gridmap.web.guard import AGAIN, AT_ONCE, Guard

    seen = []

    def app(environ, start_response):
        seen.append((threading.current_thread().name, bool(environ.get(AT_ONCE))))
        if environ.get(AT_ONCE) and environ["QUERY_STRING"] == "busy":
            start_response("503 Service Unavailable", [(AGAIN, "1")])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["QUERY_STRING"].encode()]

    guard = Guard(app, threads=2, inline=lambda scope: scope["path"] == "/quick")
    loop_thread = threading.current_thread().name  # asyncio.run's loop runs in this thread
    assert _asgi_get(guard, "/quick", b"easy") == (200, {b"content-type": b"text/plain"}, b"easy")
    assert seen == [(loop_thread, True)]
    seen.clear()
    status, headers, body = _asgi_get(guard, "/quick", b"busy")
    assert (status, body) == (200, b"busy") and AGAIN.encode() not in headers
    assert seen[0] == (loop_thread, True) and seen[1][0].startswith("gridmap-request") and not seen[1][1]
    seen.clear()
    assert _asgi_get(guard, "/slow", b"x")[0] == 200
    assert len(seen) == 1 and seen[0][0].startswith("gridmap-request") and not seen[0][1]
    guard.pool.shutdown()


def test_only_plain_single_lookups_are_tried_at_once(demo_url):
    """``answers_at_once``: a GET /api/v1/lookup of a point without a token, while the process's
    locator serves an index; never with ``at``, ``address``, a token, another route or method, the
    PostGIS engine, or reads that need a role (AUTH_READ=viewer)."""
    from gridmap.web import create_app
    from gridmap.web.context import locator
    from gridmap.web.lookup import answers_at_once

    def scope(path="/api/v1/lookup", query=b"lon=113.7&lat=34.75", method="GET", headers=()):
        return {"type": "http", "method": method, "path": path, "query_string": query, "headers": list(headers)}

    app = create_app({"DATABASE_URL": demo_url, "TESTING": True})
    at_once = answers_at_once(app)
    assert not at_once(scope())  # no locator yet: nothing held to answer from
    with app.app_context():
        assert not at_once(scope()) and not locator().serving()  # one, holding no index yet
        locator().warm()  # a server worker's start
    assert at_once(scope()) and at_once(scope(query=b"lon=113.7&lat=34.75&crs=gcj02"))
    for refused in (
        scope(query=b"lon=113.7&lat=34.75&at=2026-01-01"),
        scope(query=b"address=x"),
        scope(headers=[(b"authorization", b"Bearer t")]),
        scope(path="/api/v1/grids"),
        scope(method="POST"),
    ):
        assert not at_once(refused)
    assert answers_at_once(create_app({"DATABASE_URL": demo_url, "TESTING": True, "LOOKUP_ENGINE": "postgis"})) is None
    assert answers_at_once(create_app({"DATABASE_URL": demo_url, "TESTING": True, "AUTH_READ": "viewer"})) is None
