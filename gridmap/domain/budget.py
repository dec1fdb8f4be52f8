"""How long a request's work may run, and whether anyone still waits for it.

A long check (a boundary edit's validation: overlays of every sibling) cannot be interrupted from
outside a Python thread, so it asks at its steps: :func:`check` raises :class:`WorkLimit` once the
budget of the work in progress has run out or its client has gone away (the web layer's guard sets
the event, see :mod:`gridmap.web.guard`).  Outside a budget (the CLI, tests), :func:`check` does
nothing.  The budget lives in a context variable, so each request thread has its own.

Usage::

    with budget.limit(20.0, cancelled_event):
        ...                 # somewhere deep inside: budget.check("checking overlaps")
"""

from __future__ import annotations

import contextlib
import threading
import time
from contextvars import ContextVar

from ..errors import WorkLimit

_CURRENT: ContextVar[tuple[float, threading.Event | None] | None] = ContextVar("gridmap_budget", default=None)


@contextlib.contextmanager
def limit(seconds: float, cancelled: threading.Event | None = None):
    """Run the block with a budget of ``seconds`` (and ``cancelled``: set when the client left)."""
    token = _CURRENT.set((time.monotonic() + seconds, cancelled))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def check(step: str = "") -> None:
    """WorkLimit when the current budget is spent or its client has gone; nothing outside a budget."""
    current = _CURRENT.get()
    if current is None:
        return
    deadline, cancelled = current
    if cancelled is not None and cancelled.is_set():
        raise WorkLimit(f"stopped{' while ' + step if step else ''}: the client went away")
    if time.monotonic() > deadline:
        raise WorkLimit(
            f"stopped{' while ' + step if step else ''}: the request ran past its time budget; "
            "try a smaller edit (fewer vertices or grids)"
        )
