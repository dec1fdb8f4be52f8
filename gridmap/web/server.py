"""Serving the app: granian (a Rust HTTP server) runs the Flask WSGI app in worker processes.

Why granian and not waitress: on the lookup benchmark a single-process waitress spent
~1 ms of Python per request in its own I/O loop and saturated at ~860 req/s on this
2-core machine; granian does the HTTP work in Rust and runs one worker per core, each
with its own in-memory lookup index (see README, "Point → grid chain").

The app runs behind :class:`gridmap.web.guard.Guard` (granian's ASGI interface): request bodies are
read by the event loop with a size limit and a timeout, so stalled or huge uploads cost no request
thread; granian itself times out clients that do not finish their headers (``header_timeout``).

Workers build their app from the environment (GRIDMAP_LOOKUP_ENGINE, GRIDMAP_WARM_INDEX, GRIDMAP_MAX_BODY,
GRIDMAP_BODY_TIMEOUT and GRIDMAP_THREADS carry the command's options to them, read by
:class:`gridmap.settings.Settings`).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
from urllib.parse import urlencode

import lazy_loader
from granian import Granian
from granian.constants import Interfaces
from granian.http import HTTP1Settings

from ..errors import InputError
from ..services import grid_views
from ..settings import BODY_TIMEOUT, HEADER_TIMEOUT, MAX_BODY, WORKER_STOP_TIMEOUT, Settings
from . import create_app
from .context import engine as engine_of
from .context import locator
from .guard import Guard
from .lookup import answers_at_once
from .scan import UPLOAD


def app_from_env():
    """The app factory granian's workers call: the Flask app behind the guard."""
    settings = Settings.from_env()
    # pandas is loaded at its first use (lazy_loader): here, before the request threads could reach it
    # at once (Python 3.11's lazy modules are not safe to load from two threads)
    lazy_loader.load("pandas").DataFrame  # noqa: B018 (the first attribute read loads it)
    app = create_app(settings=settings)
    if settings.warm and settings.lookup_engine == "index":
        with app.app_context():
            locator().warm()  # load (or build) the current index now, not on the first request
    guard = Guard(
        app,
        max_body=settings.max_body,
        body_timeout=settings.body_timeout,
        threads=settings.threads,
        uploads=(UPLOAD,),  # the scanned page's report carries a photo
        inline=answers_at_once(app),  # a lookup the current index answers: on the event loop
    )
    if settings.warm:
        with app.app_context():
            point = grid_views.inside_point(engine_of())
        if point is not None:
            guard.prewarm("/api/v1/lookup", urlencode({"lon": point[0], "lat": point[1]}))
    # What exists now (the app, the index, the threads' first work) lives as long as the worker: out
    # of the cyclic collector's reach, a full collection no longer walks it (65-95 ms pauses per
    # worker under 32 connections of lookups, measured with gc.callbacks, before this).
    gc.collect()
    gc.freeze()
    return guard


def _stop_at_once() -> None:
    """In a just-forked worker: SIGTERM and SIGINT end it (granian's own handlers replace these once
    the worker serves).  A stop delivered before the child first runs is cleared by CPython's
    after-fork reset and never seen: ``workers_kill_timeout`` ends such a worker."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_now)


def _exit_now(signum, frame) -> None:
    os._exit(0)  # a starting worker has answered nothing and written nothing: nothing to flush


def check_bind(host: str, port: int) -> None:
    """Fail with one clear line when ``host:port`` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InputError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise InputError(f"cannot serve on {host}:{port}: {exc.strerror}") from None


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    workers: int = 2,
    threads: int = 8,
    lookup_engine: str = "index",
    warm: bool = True,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
    header_timeout: float = HEADER_TIMEOUT,
) -> None:
    """Serve the app until interrupted (call :func:`check_bind` first for a one-line error).  The workers
    get ``lookup_engine``, ``warm``, ``threads`` and the body limits through their environment."""
    # A worker is forked with granian's main-process signal handlers, which only set flags in the
    # main process's memory: a stop that came while a worker built its app (index, first calls) was
    # swallowed, the worker then waited for a stop that had already come, and `gridmap serve` never
    # exited.  Until granian installs the worker's own handlers, a stop simply ends the worker.
    os.register_at_fork(after_in_child=_stop_at_once)
    Settings.export(
        lookup_engine=lookup_engine,
        warm=warm,
        threads=threads,
        max_body=max_body,
        body_timeout=body_timeout,
    )
    Granian(
        "gridmap.web.server:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        websockets=False,  # the guard serves HTTP only: saying so at every start is noise
        log_access=False,
        http1_settings=HTTP1Settings(header_read_timeout=int(header_timeout * 1000)),
        # a worker that has not stopped this long after a stop is killed (it would otherwise hold
        # `gridmap serve` forever); longer than the statement timeout, so a running write finishes
        workers_kill_timeout=WORKER_STOP_TIMEOUT,
    ).serve()
