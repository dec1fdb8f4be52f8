"""Point lookups for the API, the CLI and scripts, on an index kept true to the database.

Staleness: every lookup reads the grid epoch (one primary-key row, bumped by a
statement trigger on every write to ``grid``, ``building`` and ``unit``, see the
migrations) over a per-thread autocommit connection with a prepared statement
(about 0.1 ms on loopback).  When it has moved, the index is rebuilt from PostGIS
before answering, inside one REPEATABLE READ transaction so the epoch and the
grids it describes agree.  So
the first lookup after a committed boundary change already sees it; a rebuild of
the Zhengzhou-scale city takes a few seconds, paid once per change.
Indexes for past dates (``at=``) are built on demand and the last few are kept.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections import OrderedDict
from datetime import datetime

import numpy as np
import psycopg
import shapely
from sqlalchemy.engine import Engine

from .. import geo
from ..domain.address import Building, Gazetteer
from ..domain.lookup import GridIndex, check_point, check_points
from ..domain.membership import Memberships, ShareRow
from ..errors import InputError, PayloadTooLarge
from ..store import buildings, grids, shares

#: Points per POST /api/v1/lookup request; more gets 413.
MAX_BATCH = 10_000
DATED_KEPT = 4


class Locator:
    """Answers lookups from an in-memory :class:`GridIndex` that follows the database."""

    def __init__(self, engine: Engine, *, cell_m: float = 25.0):
        self.engine = engine
        self.cell_m = cell_m
        self._lock = threading.Lock()
        self._current: GridIndex | None = None
        self._dated: OrderedDict = OrderedDict()
        self._gazetteer: tuple[int, Gazetteer] | None = None
        self._members: tuple | None = None
        self._local = threading.local()

    def epoch(self) -> int:
        """The grid epoch, read now over this thread's own autocommit connection."""
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                conn = self._local.conn = psycopg.connect(url, autocommit=True)
            try:
                return grids.epoch_raw(conn)
            except psycopg.OperationalError:
                conn.close()  # dropped: reconnect once
                if attempt == 2:
                    raise

    def index(self, at: datetime | None = None) -> GridIndex:
        """The index for the version valid at ``at`` (None: current), rebuilt if the grids changed."""
        epoch = self.epoch()
        cached = self._cached(epoch, at)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._cached(epoch, at)
            if cached is not None:
                return cached
            with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                with conn.begin():
                    epoch = grids.epoch(conn)
                    index = GridIndex(
                        grids.index_frame(conn, at),
                        cell_m=self.cell_m,
                        epoch=epoch,
                        at=at,
                        people=grids.people_by_grid(conn) if at is None else {},
                    )
            release_freed_memory()
            if at is None:
                self._current = index
            else:
                self._dated[(epoch, at)] = index
                while len(self._dated) > DATED_KEPT:
                    self._dated.popitem(last=False)
            return index

    def gazetteer(self) -> Gazetteer:
        """The address gazetteer of the current buildings (rebuilt when the epoch moves)."""
        with self.engine.connect() as conn:
            epoch = grids.epoch(conn)
            if self._gazetteer is None or self._gazetteer[0] != epoch:
                courtyards, rows = buildings.gazetteer_rows(conn)
                found = []
                for code, court, number, units, lon, lat in rows:
                    digits = re.search(r"\d+", number or "")
                    if digits:
                        found.append(Building(code, court, int(digits.group()), int(units), lon, lat))
                self._gazetteer = (epoch, Gazetteer(courtyards, found))
        return self._gazetteer[1]

    def memberships(self) -> tuple[Memberships, shapely.STRtree, list[str]]:
        """The current micro-grids' shares, and the footprints of the buildings several of them share
        (an STRtree and the buildings' codes), rebuilt when the epoch moves (``grid_share`` bumps it)."""
        epoch = self.epoch()
        if self._members is None or self._members[0] != epoch:
            with self.engine.connect() as conn:
                held = shares.of_grids(conn)
                m = Memberships(
                    ShareRow(c, b, int(u), int(f0), int(f1), int(h))
                    for c, b, u, f0, f1, h in held[shares.COLUMNS].itertuples(index=False, name=None)
                )
                shared = sorted(b for b in m.by_building if m.shared(b))
                feet = buildings.footprints(conn, codes=shared)
            codes = [b for b in shared if b in feet]
            self._members = (epoch, m, shapely.STRtree([feet[b] for b in codes]), codes)
        return self._members[1:]

    def _shared(self, bodies: list[dict], x, y) -> None:
        """Add to each answer whose point lies in the footprint of a building several micro-grids share
        every grid sharing it, with the floors each holds (``shared_building``)."""
        m, tree, codes = self.memberships()
        if not codes:
            return
        pts, bld = tree.query(
            shapely.points(np.asarray(x, dtype=float), np.asarray(y, dtype=float)), predicate="covered_by"
        )
        for p, b in zip(pts, bld):
            body = bodies[int(p)]
            if "shared_building" not in body:
                holders = m.holders(codes[int(b)])
                body["shared_building"] = {"building": codes[int(b)], "grids": holders}
                body["micro_grids"] = [h["code"] for h in holders]

    def lookup_address(self, address: str, *, at: datetime | None = None) -> dict:
        """Resolve an address to its building point, then answer as for a point; an address down to the
        floor (or room) answers with the one micro-grid holding that floor."""
        found = self.gazetteer().resolve(address)
        b = found.building
        index = self.index(at)
        body = index.answers(np.array([b.lon]), np.array([b.lat]))[0]
        if at is None:
            self._shared([body], [b.lon], [b.lat])
        body.update(
            address={"text": address, "building": b.code, "unit": found.unit, "floor": found.floor, "room": found.room}
        )
        unit = found.unit or (1 if b.units == 1 else None)
        if at is None and found.floor is not None and unit is not None:
            code = self.memberships()[0].grid_of(b.code, unit, found.floor)
            if code is None:
                raise InputError(
                    f"floor {found.floor} of unit {unit} of building {b.code} is in no micro-grid ({address!r})"
                )
            _set_micro(body, index, code)
        return body

    def _cached(self, epoch, at):
        if at is None:
            return self._current if self._current is not None and self._current.epoch == epoch else None
        return self._dated.get((epoch, at))

    def lookup(self, lon, lat, *, crs=None, at: datetime | None = None) -> dict:
        """One point; InputError naming the problem for bad coordinates."""
        crs = geo.parse_crs(crs)
        x, y, problem = check_point(_number(lon, "lon"), _number(lat, "lat"), crs)
        if problem is not None:
            raise InputError(f"{problem}: lon={lon}, lat={lat} ({crs})")
        body = self.index(at).answer_one(x, y)
        if at is None and body.get("inside"):
            self._shared([body], [x], [y])
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
        placed = self.index(at).answers(x[good], y[good])
        if at is None:
            self._shared(placed, x[good], y[good])
        answers = iter(placed)
        out = []
        for i, p in enumerate(points):
            ident = p.get("id") if isinstance(p, dict) else None
            if good[i]:
                body = next(answers)
            else:
                body = {"error": shape_errors.get(i) or problems[i]}
            out.append({"id": ident, **body} if ident is not None else body)
        return out


def _set_micro(body: dict, index: GridIndex, code: str) -> None:
    """Make ``code`` the answer's micro-grid (the one holding the household's floor)."""
    body["micro"] = code
    for link in body.get("chain", []):
        if link["level"] == "micro":
            link["code"] = code
            link["name"] = index.name_of(code)


def release_freed_memory() -> None:
    """Hand the build's temporary arrays back to the OS (glibc keeps freed heap otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None


def sql_lookup(engine: Engine, lon: float, lat: float, at: datetime | None = None) -> dict | None:
    """The micro-grid, chain and special grids from PostGIS alone (storage lon/lat; None outside)."""
    with engine.connect() as conn:
        return grids.lookup_sql(conn, lon, lat, at)


def postgis_lookup(engine: Engine, lon, lat, *, crs=None, at: datetime | None = None) -> dict:
    """A lookup answered by one PostGIS query per request, same checks (the HTTP benchmark's competitor)."""
    crs = geo.parse_crs(crs)
    x, y, problem = check_point(_number(lon, "lon"), _number(lat, "lat"), crs)
    if problem is not None:
        raise InputError(f"{problem}: lon={lon}, lat={lat} ({crs})")
    found = sql_lookup(engine, x, y, at)
    body = {"lon": x, "lat": y, "inside": found is not None}
    return {**body, **(found or {"chain": [], "specials": []})}
