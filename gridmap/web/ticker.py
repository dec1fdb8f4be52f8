"""The event centre's clock ticking inside a server worker: a daemon thread that runs the tick every
few seconds.  Every worker of every server may run one: the tick takes due cases with ``SKIP LOCKED``
(see :mod:`gridmap.services.event_clock`), so each is handled exactly once."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from ..errors import GridmapError
from ..services import event_clock
from .context import centre

log = logging.getLogger(__name__)


def start(app: Flask, seconds: int) -> threading.Thread:
    """Start ticking every ``seconds`` in the background of this process."""
    stop = threading.Event()

    def run():
        while not stop.wait(seconds):
            try:
                with app.app_context():
                    event_clock.tick(centre())
            except GridmapError as exc:  # a bad catalogue or an unreachable database: say so, try again later
                log.warning("event tick failed: %s", exc.message)

    thread = threading.Thread(target=run, name="gridmap-event-tick", daemon=True)
    thread.start()
    app.extensions["gridmap.ticker"] = stop
    return thread
