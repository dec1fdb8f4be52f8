"""Failed sign-ins are bounded, so a password cannot be guessed at the server's speed.

At most ``sign_in_limit`` (settings, default ``10 per 5 minutes``) failed sign-ins per client address
and, separately, per user name, in a moving window; past either, ``POST /api/v1/session`` answers 429
with ``Retry-After`` (the seconds until the oldest failure leaves the window) before checking any
password.  A successful sign-in costs nothing.  The counts live in this server process (each worker
keeps its own, so a server of N workers allows up to N times the limit); the address is the peer's
(``REMOTE_ADDR``): behind a proxy every client shares the proxy's, and the per-user bound still holds.

The window is the ``limits`` library's moving window over its thread-safe memory storage.  Why not
flask-limiter (built on ``limits``): its ``deduct_when`` counts a failure after the response, having
only *tested* the limit before the request, so N concurrent guesses all pass a limit with one slot
left; here a check reserves its slot under one lock (``_pending``) and the failure is recorded before
the slot is given back, so no interleaving of threads gets more than the limit checked.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter

from flask import Flask, current_app
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..errors import TooManyAttempts, Unauthorized

THROTTLE = "gridmap.sign_in_throttle"


class SignInThrottle:
    """Counts failed sign-ins per client address and per user name (``rate``: ``10 per 5 minutes``)."""

    def __init__(self, rate: str):
        self.rate = rate
        self.item = parse(rate)
        self.window = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        #: key -> sign-ins being checked now (each may become a failure)
        self._pending: Counter[str] = Counter()

    @contextlib.contextmanager
    def attempt(self, address: str, name: str):
        """Around one sign-in check: raises TooManyAttempts (before the block runs) when the address or
        the name has no failure left in the window; counts the block's Unauthorized as a failure."""
        keys = (("address", address, "this client address"), ("user", name, "this user name"))
        self._admit(keys)
        failed = False
        try:
            yield
        except Unauthorized:
            failed = True
            raise
        finally:
            self._settle(keys, failed)

    def _admit(self, keys) -> None:
        with self._lock:
            for kind, key, who in keys:
                stats = self.window.get_window_stats(self.item, kind, key)
                failures = self.item.amount - stats.remaining
                if failures + self._pending[kind, key] >= self.item.amount:
                    # the oldest failure leaves the window at stats.reset_time; while only checks in
                    # flight fill it, one second is enough to see how they end
                    wait = max(1, math.ceil(stats.reset_time - time.time())) if failures >= self.item.amount else 1
                    raise TooManyAttempts(
                        f"too many failed sign-ins for {who} (the limit is {self.rate}); try again in {wait} s",
                        wait,
                        {"limit": self.rate, "retry_after": wait, "per": kind},
                    )
            for kind, key, _ in keys:
                self._pending[kind, key] += 1

    def _settle(self, keys, failed: bool) -> None:
        with self._lock:
            for kind, key, _ in keys:
                if failed:
                    self.window.hit(self.item, kind, key)
                self._pending[kind, key] -= 1
                if not self._pending[kind, key]:
                    del self._pending[kind, key]


def init_app(app: Flask, rate: str) -> None:
    """Give the app its sign-in throttle (one per app, so each test's app starts with none counted)."""
    app.extensions[THROTTLE] = SignInThrottle(rate)


def sign_in_attempt(address: str, name: str):
    """The app's :meth:`SignInThrottle.attempt`."""
    return current_app.extensions[THROTTLE].attempt(address, name)
