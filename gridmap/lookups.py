"""Point lookups for the API, the CLI and scripts, on an index kept true to the database.

Staleness: every lookup reads the grid epoch (one primary-key row, bumped by a
statement trigger on every write to ``grid``, see migration 0001).  When it has
moved, the index is rebuilt from PostGIS before answering, inside one
REPEATABLE READ transaction so the epoch and the grids it describes agree.  So
the first lookup after a committed boundary change already sees it; a rebuild of
the Zhengzhou-scale city takes a few seconds, paid once per change.
Indexes for past dates (``at=``) are built on demand and the last few are kept.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

import numpy as np
from sqlalchemy.engine import Engine

from . import geo
from .domain.lookup import GridIndex, check_points
from .errors import InputError, PayloadTooLarge
from .store import grids as store

#: Points per POST /api/v1/lookup request; more gets 413.
MAX_BATCH = 10_000
DATED_KEPT = 4


class Locator:
    """Answers lookups from an in-memory :class:`GridIndex` that follows the database."""

    def __init__(self, engine: Engine, *, cell_m: float = 40.0):
        self.engine = engine
        self.cell_m = cell_m
        self._lock = threading.Lock()
        self._current: GridIndex | None = None
        self._dated: OrderedDict = OrderedDict()

    def index(self, at: datetime | None = None) -> GridIndex:
        """The index for the version valid at ``at`` (None: current), rebuilt if the grids changed."""
        with self.engine.connect() as conn:
            epoch = store.epoch(conn)
        cached = self._cached(epoch, at)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._cached(epoch, at)
            if cached is not None:
                return cached
            with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                with conn.begin():
                    epoch = store.epoch(conn)
                    index = GridIndex(store.index_frame(conn, at), cell_m=self.cell_m, epoch=epoch, at=at,
                                      people=store.people_by_grid(conn) if at is None else {})
            if at is None:
                self._current = index
            else:
                self._dated[(epoch, at)] = index
                while len(self._dated) > DATED_KEPT:
                    self._dated.popitem(last=False)
            return index

    def _cached(self, epoch, at):
        if at is None:
            return self._current if self._current is not None and self._current.epoch == epoch else None
        return self._dated.get((epoch, at))

    def lookup(self, lon, lat, *, crs=None, at: datetime | None = None) -> dict:
        """One point; InputError naming the problem for bad coordinates."""
        crs = geo.parse_crs(crs)
        x, y, problems = check_points([_number(lon, "lon")], [_number(lat, "lat")], crs)
        if problems[0] is not None:
            raise InputError(f"{problems[0]}: lon={lon}, lat={lat} ({crs})")
        body = self.index(at).answers(x, y)[0]
        body.update(input={"lon": lon, "lat": lat, "crs": crs}, at=at.isoformat() if at else None)
        return body

    def lookup_many(self, points: list, *, crs=None, at: datetime | None = None) -> list[dict]:
        """Many points ({"lon", "lat", optional "id"}); a bad point gets an "error" instead of stopping."""
        if len(points) > MAX_BATCH:
            raise PayloadTooLarge(f"{len(points)} points in one request; at most {MAX_BATCH}")
        crs = geo.parse_crs(crs)
        lon = np.full(len(points), np.nan)
        lat = np.full(len(points), np.nan)
        shape_errors = {}
        for i, p in enumerate(points):
            if not isinstance(p, dict) or "lon" not in p or "lat" not in p:
                shape_errors[i] = "each point must be an object with lon and lat"
                continue
            try:
                lon[i], lat[i] = float(p["lon"]), float(p["lat"])
            except (TypeError, ValueError):
                shape_errors[i] = "lon and lat must be numbers"
        x, y, problems = check_points(lon, lat, crs)
        good = np.array([problems[i] is None and i not in shape_errors for i in range(len(points))], dtype=bool)
        answers = iter(self.index(at).answers(x[good], y[good]))
        out = []
        for i, p in enumerate(points):
            ident = p.get("id") if isinstance(p, dict) else None
            if good[i]:
                body = next(answers)
            else:
                body = {"error": shape_errors.get(i) or problems[i]}
            out.append({"id": ident, **body} if ident is not None else body)
        return out


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None


def sql_lookup(engine: Engine, lon: float, lat: float, at: datetime | None = None) -> dict | None:
    """The same answer from PostGIS alone (reference and benchmark competitor)."""
    with engine.connect() as conn:
        return store.lookup_sql(conn, lon, lat, at)


