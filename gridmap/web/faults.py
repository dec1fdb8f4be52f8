"""Faults that are nobody's input error: the database going away, work running past its budget.

- A database that cannot be reached (stopped, restarting, moved) is a 503 with ``Retry-After`` and
  the usual JSON error body, on every route; the pool's pre-ping and the locator's reconnect make the
  first request after it returns succeed, with no restart of the server.
- A lock wait past the edit's ``lock_timeout`` (another edit holds the grids) is a 503 ``busy``; a
  statement past its ``statement_timeout`` a 503 ``work_limit``.
- Every request runs with a time budget (:data:`BUDGET_S`) and the guard's "client went away" event,
  which long checks consult (:mod:`gridmap.domain.budget`).
"""

from __future__ import annotations

from flask import Flask, g, jsonify, request
from psycopg import Error as PsycopgError  # the locator's raw connection raises psycopg's own errors
from sqlalchemy.exc import SQLAlchemyError

from ..domain import budget
from ..services import database
from .guard import CANCELLED

#: Seconds a request's checks may run before they stop (a boundary edit's validation is the long one).
BUDGET_S = 10.0


def init_app(app: Flask) -> None:
    app.before_request(_start_budget)
    app.teardown_request(_end_budget)
    app.register_error_handler(SQLAlchemyError, _database_error)
    app.register_error_handler(PsycopgError, _database_error)


def _start_budget():
    g.gridmap_budget = budget.limit(BUDGET_S, request.environ.get(CANCELLED))
    g.gridmap_budget.__enter__()


def _end_budget(_exc):
    held = g.pop("gridmap_budget", None)
    if held is not None:
        held.__exit__(None, None, None)


def _database_error(exc):
    error = database.fault(exc)
    if error is None:
        raise exc  # a bug: Flask's 500
    return jsonify(error.to_dict()), error.status, getattr(error, "http_headers", None) or {}
