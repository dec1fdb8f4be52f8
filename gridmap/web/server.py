"""Serving the app: granian (a Rust HTTP server) runs the Flask WSGI app in worker processes.

Why granian and not waitress: on the lookup benchmark a single-process waitress spent
~1 ms of Python per request in its own I/O loop and saturated at ~860 req/s on this
2-core machine; granian does the HTTP work in Rust and runs one worker per core, each
with its own in-memory lookup index (see README, "Point → grid chain").
"""
from __future__ import annotations

import os
import socket

from ..errors import InputError

ENV_ENGINE = "GRIDMAP_LOOKUP_ENGINE"
ENV_WARM = "GRIDMAP_WARM_INDEX"


def app_from_env():
    """The app factory granian's workers call (settings come through the environment)."""
    from . import create_app

    app = create_app({"LOOKUP_ENGINE": os.environ.get(ENV_ENGINE, "index")})
    if os.environ.get(ENV_WARM) == "1" and app.config["LOOKUP_ENGINE"] == "index":
        from .api import locator

        with app.app_context():
            locator().index()  # build the current index now, not on the first request
    return app


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


def serve(host: str = "127.0.0.1", port: int = 5000, *, workers: int = 2, threads: int = 8,
          lookup_engine: str = "index", warm: bool = True) -> None:
    """Serve the app until interrupted (call :func:`check_bind` first for a one-line error)."""
    from granian import Granian
    from granian.constants import Interfaces

    os.environ[ENV_ENGINE] = lookup_engine
    os.environ[ENV_WARM] = "1" if warm else "0"
    Granian("gridmap.web.server:app_from_env", address=host, port=port, interface=Interfaces.WSGI,
            factory=True, workers=workers, blocking_threads=threads, log_access=False).serve()
