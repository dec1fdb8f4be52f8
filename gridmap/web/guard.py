"""The server's front door: an ASGI app that bounds what a client may cost before the WSGI app sees it.

granian's WSGI interface hands the app a body that is read from a blocking thread, with no read
timeout: a client announcing a body and never sending it holds that thread for as long as it keeps
the connection open, and 16 such clients froze a server of 2 workers × 8 threads.  Here the body is
read by the event loop (a stalled client costs a coroutine, not a thread), limited in size (413 from
``Content-Length`` before a byte is read, or as soon as a chunked body passes the limit) and in time
(408 when the whole body has not arrived within ``body_timeout`` seconds).  Only then does the Flask
app run, in a bounded pool of threads, with the body in memory.

One kind of route may take a larger body than the server's limit: the scanned QR page's report,
which carries a resident's photo (``uploads``: a path pattern and its size, for POST only; see
:data:`gridmap.web.scan.UPLOAD`).

The request's ``environ`` carries ``gridmap.cancelled``, a :class:`threading.Event` set when the
client goes away, so long checks can stop (see :mod:`gridmap.domain.budget`).

The loop is uvloop (granian picks it when installed; it is a dependency): the guard's loop work is
per request, and asyncio's own loop made it a larger share of a lookup.

A request the app may answer at once (``inline``, a predicate of the ASGI scope: a server's single
lookup, see :func:`gridmap.web.lookup.answers_at_once`) is first run on the event loop itself, its
environ marked :data:`AT_ONCE`; an app that finds it would have to wait (an index to update, the
database to ask) answers with the :data:`AGAIN` header, and the request goes to a thread as any
other.  Handing a lookup to a thread and back was a third of its time on 2 cores (paced single
lookups, 2 workers, 15-20 s runs in turn: p50 1.8-2.3 ms and p99 5.2-6.3 ms through a thread, 1.2-1.4
ms and 3.4-3.9 ms on the loop).

Why not a2wsgi: its WSGI bridge reads the body from the worker thread (the stall again) and has no
way to tell the app that its client left.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from ..settings import BODY_TIMEOUT, MAX_BODY

CANCELLED = "gridmap.cancelled"
#: In the environ of a request run on the event loop: the app must not wait (it answers AGAIN instead).
AT_ONCE = "gridmap.at_once"
#: The header of an answer saying "run me in a thread": never sent to the client.
AGAIN = "x-gridmap-again"


def _error(status: int, code: str, message: str) -> tuple[int, list, bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, headers + [(b"connection", b"close")], body


class Guard:
    """ASGI app serving ``wsgi_app`` with a body limit (bytes), a body read timeout (seconds) and
    ``threads`` request threads; ``uploads``: (compiled path pattern, bytes) of POST routes whose
    bodies may be larger; ``inline``: a predicate of a bodiless request's scope, true for those the
    app may answer at once (tried on the event loop first)."""

    def __init__(
        self,
        wsgi_app,
        *,
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
        threads: int = 8,
        uploads=(),
        inline=None,
    ):
        self.app = wsgi_app
        self.inline = inline
        self.max_body = max_body
        self.uploads = tuple(uploads)
        self.body_timeout = body_timeout
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gridmap-request")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":
            return None  # no websockets
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        if _bodiless(scope):  # reads (lookups, tiles): straight to a thread, nothing to wait for
            if self.inline is not None and self.inline(scope):  # first on the loop: no thread needed
                environ = _environ(scope, b"", cancelled)
                environ[AT_ONCE] = True
                status, headers, body = _call_wsgi(self.app, environ)
                if not any(key == AGAIN.encode() for key, _ in headers):
                    return await _send(send, status, headers, body)
            environ = _environ(scope, b"", cancelled)
            return await _send(send, *await loop.run_in_executor(self.pool, _call_wsgi, self.app, environ))
        limit = self._limit(scope)
        refused = self._refuse_by_headers(scope, limit)
        if refused is None:
            body, refused = await self._read_body(receive, limit)
        if refused is not None:
            return await _send(send, *refused)
        if body is None:  # the client went away while sending
            return None
        environ = _environ(scope, body, cancelled)
        work = loop.run_in_executor(self.pool, _call_wsgi, self.app, environ)
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # the client left first: tell the app, let its thread finish alone
            cancelled.set()
            return None
        watch.cancel()
        return await _send(send, *work.result())

    def prewarm(self, path: str, query: str = "") -> list[int]:
        """Answer one GET of ``path`` in every request thread before the first client, so no client
        waits for a thread's first database connection and first-call work (the first seconds of
        a new server answered lookups with a p99 of 50-110 ms at 32 connections, then 12 ms); the
        statuses."""
        barrier = threading.Barrier(self.threads)
        scope = {"method": "GET", "path": path, "query_string": query.encode(), "headers": []}

        def one() -> int:
            barrier.wait(timeout=30)  # one call per thread: each waits until all have theirs
            return _call_wsgi(self.app, _environ(scope, b"", threading.Event()))[0]

        return [f.result() for f in [self.pool.submit(one) for _ in range(self.threads)]]

    def _limit(self, scope) -> int:
        """The body limit of this request: the server's, or an upload route's when larger."""
        if scope.get("method") == "POST":
            for pattern, size in self.uploads:
                if pattern.fullmatch(scope.get("path", "")):
                    return max(size, self.max_body)
        return self.max_body

    def _refuse_by_headers(self, scope, limit: int):
        """413 or 400 from the headers alone, before any of the body is read."""
        length = _header(scope, b"content-length")
        if length is None:
            return None
        if not length.isdigit():
            return _error(400, "bad_request", "Content-Length must be a whole number of bytes")
        if int(length) > limit:
            return _error(
                413,
                "payload_too_large",
                f"the request body of {int(length)} bytes is over the limit of {limit} bytes",
            )
        return None

    async def _read_body(self, receive, limit: int):
        """(body, None), (None, an error response) or (None, None) when the client left."""
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None, None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return None, _error(
                            413, "payload_too_large", f"the request body is over the limit of {limit} bytes"
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks), None
        except TimeoutError:
            return None, _error(
                408, "request_timeout", f"the request body did not arrive within {self.body_timeout:g} s"
            )


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _wait_disconnect(receive):
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send(send, status: int, headers: list, body: bytes):
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bodiless(scope) -> bool:
    """A GET, HEAD or OPTIONS announcing no body."""
    return scope["method"] in ("GET", "HEAD", "OPTIONS") and not any(
        key.lower() in (b"content-length", b"transfer-encoding") for key, _ in scope["headers"]
    )


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _environ(scope, body: bytes, cancelled: threading.Event) -> dict:
    """The PEP 3333 environ of an ASGI HTTP scope with its body read."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        CANCELLED: cancelled,
    }
    for key, value in scope["headers"]:
        name = key.decode("latin-1").upper().replace("-", "_")
        if name == "CONTENT_LENGTH":
            continue
        if name != "CONTENT_TYPE":
            name = "HTTP_" + name
        text = value.decode("latin-1")
        environ[name] = f"{environ[name]},{text}" if name in environ else text
    return environ


def _call_wsgi(app, environ) -> tuple[int, list, bytes]:
    """Run the WSGI app in this thread: (status, headers, whole body).  gridmap's responses are small
    (tiles, JSON pages of at most 10,000 features), so they are sent whole."""
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split(" ", 1)[0])
        started["headers"] = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return started["status"], started["headers"], body
