"""Point lookups for the API, the CLI and scripts, on an index kept true to the database.

Staleness: every lookup knows the grid epoch (one primary-key row, bumped by a statement trigger on
every write to ``grid``, ``building`` and ``unit``, which also announces it with NOTIFY, see the
migrations).  A server (``background``) listens for those announcements on a connection of its own
and, at each lookup, takes what has arrived without waiting (a poll of that socket, microseconds):
PostgreSQL delivers them tens of microseconds after the commit (measured on loopback), before
another process's client could ask the next question, so no query is needed.  (A lookup in the
committing process itself, right after its commit, may come sooner than that.)  A query per lookup
on loopback cost half the server's lookup throughput and, with 32 connections on 2 cores, brought
stalls of 0.1-1.5 s into one 8 s run in three (their p99); without it, 24 runs of 3 s out of 24
kept p99 under 9 ms.  A command, or a server whose listening connection is down, reads the epoch
over a per-thread autocommit connection with a prepared statement instead.  When it has moved, the
index is brought up to date before answering, inside one REPEATABLE READ transaction so the epoch and the
grids it describes agree:

* **incrementally** when the grid change log (``grid_change``) names the codes changed since the
  index's epoch: only the cells those grids touch are labelled again
  (:mod:`gridmap.domain.index_update`), tens of milliseconds;
* else **from disk**: indexes are persisted under ``GRIDMAP_HOME/index``, keyed by a digest of the
  grid versions in force (:mod:`gridmap.store.index_files`), so a new process or server worker
  loads one instead of building it; a persisted index of an older epoch is loaded and updated;
* else **built** from PostGIS (seconds at city scale) and persisted.

While an update runs, a lookup whose point lies outside the changed grids' old and new outlines
answers from the previous index (its answer is the same); others wait for the update.

``at=`` is resolved to the versions in force: they change only at the instants a version starts or
ends, so every ``at`` between two such instants shares one index (``at`` on or after the last one is
the current index).  Past indexes are kept in a small LRU and persisted like the current one, so a
flood of distinct timestamps cannot force rebuilds: there are only as many past indexes as the
history has instants, each built once.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import ctypes
import logging
import os
import re
import selectors
import socket
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg
import shapely
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import index_update, wording
from ..domain.address import Building, Gazetteer
from ..domain.index_update import updated
from ..domain.lookup import NOT_A_POINT, NOT_NUMBERS, SPECIAL, GridIndex, assign_arrays, check_point, check_points
from ..domain.membership import Memberships
from ..errors import InputError, PayloadTooLarge
from ..store import buildings, db, grid_changes, grids, index_files, people, shares

#: Points per POST /api/v1/lookup request; more gets 413.
MAX_BATCH = 10_000
DATED_KEPT = 4
#: Seconds a server's single lookup waits for an update's box before waiting the usual way.
UNAFFECTED_WAIT = 1.0
#: More changed codes than this since an index's epoch: rebuild rather than update.
MAX_INCREMENTAL = 5_000
#: Grids whose people an index holds over the city's (after edits) before the two are merged again.
PEOPLE_OVERLAY = 2_000
#: A command answering at most this many points asks PostGIS for the shared buildings under them.
FEW_POINTS = 100
#: Nice value of a server's update threads (Linux: per thread); its request threads keep theirs.
BACKGROUND_NICE = 19


class WouldWait(Exception):
    """A lookup asked not to wait (``wait=False``) that would have to: answer it the usual way."""


class Locator:
    """Answers lookups from an in-memory :class:`GridIndex` that follows the database.

    ``home``: the data folder to persist indexes under (None: never persisted).  ``background``:
    persist in a thread (a server) rather than before returning (a command)."""

    def __init__(self, engine: Engine, *, home: Path | None = None, cell_m: float = 25.0, background=False):
        self.engine = engine
        self.home = home
        self.cell_m = cell_m
        self.background = background
        self._lock = threading.Lock()
        self._current: GridIndex | None = None
        self._dated: OrderedDict = OrderedDict()
        self._instants: tuple[int, list[datetime]] | None = None
        self._pending: tuple[int, tuple | None, index_update.Patch | None] | None = None
        self._gazetteer: tuple[int, Gazetteer] | None = None
        self._members: tuple | None = None
        self._members_lock = threading.Lock()
        self._moved = threading.Condition()  # guards the two flags; notified when an update's box is known or it ends
        self._refreshing = self._members_reading = False  # a thread of this locator's is at it
        self._local = threading.local()
        self._watch = EpochWatch(self._url()) if background else None

    def _url(self) -> str:
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def epoch(self) -> int:
        """The grid epoch: as announced to this server's listening connection, else read now over
        this thread's own autocommit connection."""
        if self._watch is not None:
            announced = self._watch.current()
            if announced is not None:
                return announced
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None or conn.closed:
                conn = self._local.conn = psycopg.connect(self._url(), autocommit=True)
            try:
                return grids.epoch_raw(conn)
            except psycopg.OperationalError:
                conn.close()  # dropped: reconnect once
                if attempt == 2:
                    raise

    def serving(self) -> bool:
        """Whether this is a server's locator holding an index: its single current lookups may be tried
        at once (``lookup(wait=False)``, on the guard's event loop, :mod:`gridmap.web.guard`)."""
        return self._watch is not None and self._current is not None

    def index(self, at: datetime | None = None, *, point=None) -> GridIndex:
        """The index for the versions valid at ``at`` (None: current), brought up to date first.
        ``point`` (storage lon, lat): may be answered by the previous index during an update that
        does not touch it."""
        epoch = self.epoch()
        if at is not None:
            return self._dated_index(epoch, at)
        current = self._current
        if current is not None and current.epoch == epoch:
            return current
        if point is not None and current is not None and self.background:
            answering = self._unaffected(current, epoch, point)
            if answering is not None:
                return answering
        with self._lock:
            current = self._current
            if current is not None and current.epoch >= epoch:
                return current
            self._current = self._refresh(current)
            release_freed_memory()
            return self._current

    def _unaffected(self, current: GridIndex, epoch: int, point) -> GridIndex | None:
        """A server's single lookup while the index moves to ``epoch``: the update runs in a thread of
        its own, and the lookup answers from ``current`` at once when the boxes announced with the
        epochs (migration 0018) leave its point out, else as soon as the update has read the changed
        grids and their box leaves it out (6-20 ms under load: every lookup in that time waited, the
        largest part of what an edit added to the lookups' p99), or from the updated index once it
        is in force.  None: answer the usual way (the update is not running, or the box is unknown
        because other levels changed)."""
        if self._watch is not None and self._clear_of_edits(current, epoch, point):
            return current  # the epochs' boxes came with them: no waiting to read the change
        self._refresh_soon()
        deadline = time.monotonic() + UNAFFECTED_WAIT
        with self._moved:
            while True:
                now = self._current
                if now is not None and now.epoch >= epoch:
                    return now
                pending = self._pending
                if pending is not None and pending[0] >= epoch:
                    box, early = pending[1], pending[2]
                    if box is None:
                        return None
                    if not _within(point, box):
                        return current
                    if early is not None and early.locate_one(*point) is not None:
                        return early  # the updated index's answer, before the update is in force
                if not self._refreshing or time.monotonic() > deadline:
                    return None
                self._moved.wait(0.01)

    def _clear_of_edits(self, current: GridIndex, epoch: int, point) -> bool:
        """Whether the boxes announced with the epochs after ``current``'s up to ``epoch`` leave
        ``point`` out (``current`` answers it as the updated index would); the update is started then."""
        box = self._watch.box(current.epoch, epoch)
        if box is None or _within(point, box):
            return False
        self._refresh_soon()
        return True

    def _refresh_soon(self) -> None:
        """Bring the current index up to date in a thread of its own unless one is at it (a server)."""
        with self._moved:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                with self._lock:
                    current = self._current
                    if current is None or current.epoch < self.epoch():
                        self._current = self._refresh(current, then=lower_priority)
                        self._current.settle()  # in force already: its outer segments follow
                        release_freed_memory()
            except Exception:  # the waiting lookups retry the update themselves and report its error
                pass
            finally:
                with self._moved:
                    self._refreshing = False
                    self._moved.notify_all()

        threading.Thread(target=run, name="gridmap-index", daemon=True).start()

    # --- keeping the current index true ------------------------------------------------------
    def _snapshot(self):
        return self.engine.connect().execution_options(isolation_level="REPEATABLE READ")

    def _refresh(self, current: GridIndex | None, *, then=None) -> GridIndex:
        """The current index at the database's epoch: updated, loaded, or built (then persisted).
        ``then``: called once an update has read the change and made its patch (see :meth:`_update`)."""
        with self._snapshot() as conn, conn.begin():
            epoch = grids.epoch(conn)
            if current is not None:
                index = self._update(conn, current, epoch, then=then)
                if index is not None:
                    self._persist(index)
                    return index
            database = grids.database_id(conn)
            key = grids.version_digest(conn)
            index = self._load(key)
            if index is not None:
                index.epoch = epoch
                return index
            older = index_files.latest(self.home, database) if self.home else None
            base = self._load(older[0]) if older and older[1]["epoch"] < epoch else None
            index = self._update(conn, base, epoch, check=True) if base is not None else None
            if index is None:
                index = GridIndex(grids.index_frame(conn), cell_m=self.cell_m, epoch=epoch)
            index.key, index.database = key, database
            self._persist(index, synchronous=True)
            return index

    def _update(self, conn, base: GridIndex, epoch: int, *, check=False, then=None) -> GridIndex | None:
        """``base`` brought to ``epoch`` from the change log; None when a rebuild is needed.  ``check``
        (a base from disk): the grids the log says are unchanged must be the very versions ``base``
        holds, or it is not used (a database emptied and reloaded, a log pruned).  ``then``: called
        once the change is read and the patch made, before the bulk of the update (a server's update
        thread lowers its priority there: what lookups in the edit's box wait for runs at the usual
        priority, the rest yields to the requests)."""
        codes = grid_changes.codes_since(conn, base.epoch, epoch)
        if codes is None or len(codes) > MAX_INCREMENTAL:
            return None
        if check:
            same, ids = grids.current_versions(conn, codes)
            keep = ~np.isin(base.code, list(codes))
            if list(base.code[keep]) != same or not np.array_equal(base.version[keep], ids):
                return None
        if not codes:  # buildings or units only
            index = copy.copy(base)
            index.epoch = epoch
            return index
        frame = grids.index_frame(conn, None, codes)
        box = _affected_box(base, frame, codes)
        # a server's lookups in the box answer from this while the update runs (an outline moved)
        early = index_update.patch(base, frame, codes, epoch=epoch) if box is not None and self.background else None
        with self._moved:
            self._pending = (epoch, box, early)
            self._moved.notify_all()
        if then is not None:
            then()
        try:
            index = updated(base, frame, codes, epoch=epoch)
        finally:
            self._pending = None
        if index is not None:
            index.database = base.database
            if base.people_loaded and base.at is None:  # the unchanged grids keep their people
                index.people = people_after(base.people, codes, people.workers_by_grid(conn, codes=sorted(codes)))
                index.people_loaded = True
        return index

    def _load(self, key: str) -> GridIndex | None:
        if self.home is None:
            return None
        index = load_index(self.home, key, prefault=self.background)
        if index is None:  # none, or damaged: cleared so the rebuilt one can be written
            index_files.discard(self.home, key)
        return index

    def _persist(self, index: GridIndex, *, synchronous=False) -> None:
        """Save ``index`` under its version digest (computed now if unknown), in a thread for a server."""
        if self.home is None:
            return
        if self.background and not synchronous:
            # a server's workers leave an updated index to the leader's "index-persist" job (its own
            # process, at a lower priority): writing ~170 MB from a serving process 30 s after an
            # edit took its lookups' p99 from 25 to 128 ms (README, "End to end")
            return
        self._persist_now(index)

    def persist(self, index: GridIndex) -> bool:
        """Put ``index`` on disk now unless it is there already (a command handing it to other
        processes: ``--engine dask`` workers); whether it is on disk."""
        if self.home is None:
            return False
        if index.key is None or not index_files.exists(self.home, index.key):
            self._persist_now(index)
        return index.key is not None and index_files.exists(self.home, index.key)

    def _persist_now(self, index: GridIndex) -> None:
        if index.key is None:
            with self._snapshot() as conn, conn.begin():
                if grids.epoch(conn) != index.epoch:
                    return  # moved on already: the next index will be persisted instead
                index.key = grids.version_digest(conn, index.at)
        meta, arrays = index.state()
        meta.update(database=index.database, current=index.at is None)
        try:
            index_files.save(self.home, index.key, meta, arrays)
        except OSError:  # a read-only or full disk costs speed, not answers
            pass

    # --- past versions ------------------------------------------------------------------------
    def _dated_index(self, epoch: int, at: datetime) -> GridIndex:
        """The index of the versions in force at ``at``: one per interval between version instants."""
        instants = self._instants[1] if self._instants and self._instants[0] == epoch else None
        if instants is None:
            with self.engine.connect() as conn:
                instants = grids.version_instants(conn)
            self._instants = (epoch, instants)
        i = bisect.bisect_right(instants, at)
        if i == len(instants):
            return self.index(None)
        since = instants[i - 1] if i else None  # None: before the first version, no grids
        cached = self._dated.get(since)
        if cached is not None:
            self._dated.move_to_end(since)
            return cached
        with self._lock:
            cached = self._dated.get(since)
            if cached is not None:
                return cached
            if since is None:  # before the first version: no grids
                index = GridIndex(grids.empty_index_frame(), cell_m=self.cell_m, epoch=epoch, key="empty")
            else:
                with self._snapshot() as conn, conn.begin():
                    key = grids.version_digest(conn, since)
                    index = self._load(key)
                    if index is None:
                        index = GridIndex(grids.index_frame(conn, since), cell_m=self.cell_m, epoch=epoch, key=key)
                        index.at = since
                        self._persist(index, synchronous=True)
            index.at = since
            release_freed_memory()
            self._dated[since] = index
            while len(self._dated) > DATED_KEPT:
                self._dated.popitem(last=False)
            return index

    def forget(self) -> None:
        """Let go of the indexes and shares held (a job that only keeps the persisted index current)."""
        with self._lock:
            self._current, self._members, self._gazetteer = None, None, None
            self._dated.clear()
        release_freed_memory()

    def warm(self) -> GridIndex:
        """The current index, its people and the shares of buildings, ready before the first request (a
        server worker's start)."""
        index = self._with_people(self.index())
        if self.background:
            index_update.prepare()
        if self._members is None:
            with self._members_lock:
                self._members = self._read_members(index.epoch)
        return index

    def _with_people(self, index: GridIndex) -> GridIndex:
        """``index`` with the people responsible for its micro-grids (current grids only; read once)."""
        if index.at is None and not index.people_loaded:
            with self.engine.connect() as conn:
                index.people = people.workers_by_grid(conn)
            index.people_loaded = True
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

    def memberships(self) -> tuple:
        """The current micro-grids' shares, and the footprints of the buildings several of them share
        (an STRtree and the buildings' codes), read again when the epoch moves (``grid_share`` bumps
        it).  A server answers from the shares it holds while one thread of its own reads the new
        ones (a second at city scale; every request thread reading them at once after each edit
        stalled lookups for 2-6 s): a shared building's list of grids may lag an edit by that long.
        A command reads them before answering."""
        epoch = self.epoch()
        held = self._members
        if held is not None and held[0] == epoch:
            return held[1:4]
        if held is not None and self.background:
            self._read_members_soon()
            return held[1:4]
        with self._members_lock:
            if self._members is None or self._members[0] != epoch:
                self._members = self._read_members(epoch)
            return self._members[1:4]

    def _read_members(self, epoch: int) -> tuple:
        """(epoch, memberships, STRtree of the shared buildings' footprints, their codes, digest,
        write count, codes of the grids holding shares), kept from those held when unchanged."""
        with self.engine.connect() as conn:
            # most edits move grids, not shares.  No share or building written since the held ones
            # were read (a count, migration 0017), and none of the grids the edits changed holding
            # shares before or now: the shares in force are the held ones (the digest below cost
            # PostgreSQL ~76 ms per worker per edit at city scale, the largest part of what an edit
            # cost the lookups beside it on 2 cores)
            count = shares.change_count(conn)  # before anything it vouches for is read
            held = self._members
            if held is not None and held[5] == count:
                changed = grid_changes.codes_since(conn, held[0], epoch)
                if changed is not None and not changed & held[6] and not shares.any_current(conn, changed):
                    return (epoch, *held[1:])
            # otherwise when their digest is the held one's, they are kept, not read again (half a
            # second of this process's time, its other threads slowed throughout)
            digest = shares.digest(conn)
            if held is not None and held[4] == digest:
                return (epoch, *held[1:4], digest, count, held[6])
            frame = shares.of_grids(conn)[shares.COLUMNS]
            m = self._memberships_of(frame)
            shared = m.buildings_shared()
            feet = buildings.footprints(conn, codes=shared)
        codes = [b for b in shared if b in feet]
        holding = frozenset(frame["code"].tolist())
        return (epoch, m, shapely.STRtree([feet[b] for b in codes]), codes, digest, count, holding)

    def _read_members_soon(self) -> None:
        """Read the shares in a thread of their own unless one is at it (a server's stale-while-read)."""
        with self._moved:
            if self._members_reading:
                return  # being read now
            self._members_reading = True

        def read() -> None:
            try:
                lower_priority()
                with self._members_lock:
                    epoch = self.epoch()  # before reading: a later move makes the next call read again
                    if self._members is None or self._members[0] != epoch:
                        self._members = self._read_members(epoch)
            except Exception:  # the held shares still answer; the next lookup tries again
                pass
            finally:
                with self._moved:
                    self._members_reading = False

        threading.Thread(target=read, name="gridmap-members", daemon=True).start()

    def _shared(self, bodies: list[dict], x, y, *, held=None) -> None:
        """Add to each answer whose point lies in the footprint of a building several micro-grids share
        every grid sharing it, with the floors each holds (``shared_building``); ``held``: the
        memberships, tree and codes to use (else :meth:`_shared_under` finds them)."""
        m, hits = self._shared_under(x, y, held=held)
        for p, building in hits:
            body = bodies[p]
            if "shared_building" not in body:
                holders = m.holders(building)
                body["shared_building"] = {"building": building, "grids": holders}
                body["micro_grids"] = [h["code"] for h in holders]

    def _shared_under(self, x, y, *, held=None) -> tuple:
        """(memberships, [(point index, building code)]) of the shared buildings whose footprints cover
        the points.  A command answering a few points asks PostGIS about the buildings under them
        (milliseconds) rather than reading the city's shares (a second at city scale); a server, or
        a command with many points, uses the shares it holds."""
        if held is None and not self.background and len(x) <= FEW_POINTS:
            with self.engine.connect() as conn:
                hits, frame = shares.shared_under(conn, x, y)
            return (self._memberships_of(frame) if hits else None), hits
        m, tree, codes = held if held is not None else self.memberships()
        if not codes:
            return m, []
        pts, bld = tree.query(
            shapely.points(np.asarray(x, dtype=float), np.asarray(y, dtype=float)), predicate="covered_by"
        )
        return m, [(int(p), codes[int(b)]) for p, b in zip(pts, bld)]

    def _members_of(self, building: str):
        """The memberships holding at least ``building``'s current shares (a command reads only those)."""
        if self.background:
            return self.memberships()[0]
        with self.engine.connect() as conn:
            return self._memberships_of(shares.of_buildings(conn, [building]))

    @staticmethod
    def _memberships_of(frame) -> Memberships:
        return Memberships.of_frame(frame)

    def lookup_address(self, address: str, *, at: datetime | None = None) -> dict:
        """Resolve an address to its building point, then answer as for a point; an address down to the
        floor (or room) answers with the one micro-grid holding that floor."""
        found = self.gazetteer().resolve(address)
        b = found.building
        index = self._with_people(self.index(at))
        body = index.answers(np.array([b.lon]), np.array([b.lat]))[0]
        if at is None:
            self._shared([body], [b.lon], [b.lat])
        body.update(
            address={"text": address, "building": b.code, "unit": found.unit, "floor": found.floor, "room": found.room}
        )
        unit = found.unit or (1 if b.units == 1 else None)
        if at is None and found.floor is not None and unit is not None:
            members = self._members_of(b.code)
            code = members.grid_of(b.code, unit, found.floor)
            if code is None:
                top = max((r.floor_to for r in members.rows_of(b.code) if r.unit == unit), default=None)
                if top is not None and not 1 <= found.floor <= top:  # (a unit it does not have: resolve said so)
                    floors = wording.count(top, "floor")
                    why = f"unit {unit} of building {b.code} has {floors}: there is no floor {found.floor}"
                else:
                    why = f"floor {found.floor} of unit {unit} of building {b.code} is in no micro-grid"
                raise InputError(f"{why} ({address!r})")
            _set_micro(body, index, code)
        return body

    def lookup(self, lon, lat, *, crs=None, at: datetime | None = None, wait=True) -> dict:
        """One point; InputError naming the problem for bad coordinates.  ``wait=False`` (a server's
        current lookup): answered from what this process holds, or :class:`WouldWait` when that
        would take a wait or a query (see :meth:`_at_once`)."""
        crs = geo.parse_crs(crs)
        x, y, problem = check_point(_number(lon, "lon"), _number(lat, "lat"), crs)
        if problem is not None:
            raise InputError(f"{problem}: lon={lon}, lat={lat} ({crs})")
        body = self._at_once(x, y) if not wait and at is None else self._answer(x, y, at)
        body.update(input={"lon": lon, "lat": lat, "crs": crs}, at=db.iso(self.engine, at))
        return body

    def _answer(self, x: float, y: float, at: datetime | None) -> dict:
        """:meth:`lookup`'s answer (before its ``input`` and ``at``), waiting for what it needs."""
        index = self.index(at, point=(x, y))
        body = index.answer_one(x, y)
        if self.background and at is None and not body.get("inside") and index.epoch < self.epoch():
            # answered from the index before an update: right for a point inside a grid away from
            # the edit, but an outside point's nearest grid may be the one the edit moved
            index = self.index(at)
            body = index.answer_one(x, y)
        if at is None and body.get("micro") and not index.people_loaded:  # one grid's people, not the city's
            with self.engine.connect() as conn:
                body["people"] = people.workers_by_grid(conn, codes=[body["micro"]]).get(body["micro"], [])
        if at is None and body.get("inside"):
            self._shared([body], [x], [y])
        return body

    def _at_once(self, x: float, y: float) -> dict:
        """:meth:`lookup`'s answer (before its ``input`` and ``at``) from what this server holds now:
        the index, if current at the epoch announced so far, or, while an update to it runs, if the
        box announced with the edit leaves the point out (the answer is the same, as in
        :meth:`_unaffected`); its people; the shares of buildings held.  :class:`WouldWait` for
        anything that would wait or ask the database: no index yet, an epoch not announced (a
        confirming read due, the connection down), a point the edit may have moved, a point outside
        every grid while the index is not current or its outer segments are being found."""
        epoch = self._watch.peek() if self._watch is not None else None
        current, members = self._current, self._members
        if epoch is None or current is None or not current.people_loaded or members is None:
            raise WouldWait
        if current.epoch != epoch and not self._clear_of_edits(current, epoch, (x, y)):
            raise WouldWait
        m, specials = current.locate_one(x, y)
        if m < 0:  # outside every grid: its nearest grid may be one the edit moved
            if current.epoch != epoch or not current.nearest_ready:
                raise WouldWait
            return current.answer_one(x, y)
        body = current.answer_inside(x, y, m, specials)
        if members[0] != epoch:
            self._read_members_soon()
        self._shared([body], [x], [y], held=members[1:4])
        return body

    def lookup_many(self, points: list, *, crs=None, at: datetime | None = None) -> list[dict]:
        """Many points ({"lon", "lat", optional "id"}, or {"address", optional "id"}, as ``GET`` takes);
        a bad point gets an "error" instead of stopping.  Each answer echoes its ``input`` as given."""
        lon, lat, ids, shape_errors = batch_points(points)
        addresses = {
            i: p["address"]
            for i, p in enumerate(points)
            if isinstance(p, dict) and isinstance(p.get("address"), str) and "lon" not in p and "lat" not in p
        }
        for i in addresses:
            ids[i], shape_errors[i] = points[i].get("id"), None
        crs = geo.parse_crs(crs)
        x, y, problems = check_points(lon, lat, crs)
        for i, text in addresses.items():  # placed at their building, in storage lon/lat
            try:
                b = self.gazetteer().resolve(text).building
                x[i], y[i], problems[i] = b.lon, b.lat, None
            except InputError as exc:
                shape_errors[i] = exc.message
        problems = np.where(shape_errors != None, shape_errors, problems)  # noqa: E711
        good = problems == None  # noqa: E711
        placed = self._with_people(self.index(at)).answers(x[good], y[good])
        if at is None:
            self._shared(placed, x[good], y[good])
        answers = iter(placed)
        out = []
        for i, (p, ident, ok, problem) in enumerate(zip(points, ids, good.tolist(), problems.tolist())):
            body = next(answers) if ok else {"error": problem}
            if i in addresses:
                body["input"] = {"address": addresses[i]}
            elif isinstance(p, dict) and "lon" in p and "lat" in p:
                body["input"] = {"lon": p["lon"], "lat": p["lat"], "crs": crs}
            out.append({"id": ident, **body} if ident is not None else body)
        return out

    def lookup_columns(self, lon, lat, *, crs=None, at: datetime | None = None, problems=None, arrow=False) -> dict:
        """Many points as columns: the chain's codes and names per level, special grids, status, error,
        nearest micro-grid and distance; JSON-ready lists, or Arrow arrays with ``arrow``."""
        if len(lon) > MAX_BATCH:
            raise PayloadTooLarge(f"{len(lon)} points in one request; at most {MAX_BATCH}")
        index = self.index(at)
        answers = assign_arrays(index, lon, lat, geo.parse_crs(crs), problems)
        # deferred: pyarrow (0.1 s to import) answers batches; a one-point `gridmap lookup` never needs it
        from . import point_files

        return (point_files.answer_columns if arrow else point_files.answer_lists)(index, answers)


class EpochWatch:
    """The grid epoch as PostgreSQL announces it (``LISTEN``), on one connection per process.

    ``current()`` takes what has arrived without waiting; None while the connection is down (the
    caller then queries), retried at most every ``retry_s`` seconds.  Every ``confirm_s`` seconds it
    also reads the epoch over that connection, so a connection that died silently (no reset seen,
    as across a network) is found out, and the epoch is right even if an announcement was lost.
    ``box(since, until)``: where the epochs between changed grids, as announced with them
    (migration 0018), or None when that is not known for each of them.

    A thread of the watch's own acknowledges each epoch heard in ``epoch_listener`` as soon as it
    arrives (migration 0021), so that a write, through any server, answers only once every server
    has heard of it (:func:`await_servers`): the notice reaches this process whether or not a
    lookup comes to take it."""

    #: Epochs whose boxes are kept (a server's index is never this many epochs behind for long).
    KEEP_BOXES = 1_000

    def __init__(self, url: str, retry_s: float = 1.0, confirm_s: float = 1.0):
        self.url, self.retry_s, self.confirm_s = url, retry_s, confirm_s
        self._conn = None
        self._epoch = 0
        self._failed_at = self._confirmed_at = -float("inf")
        self._commits = -1
        self._boxes: dict[int, tuple | None] = {}
        self._lock = threading.Lock()
        self._acked = 0  # the epoch last acknowledged in epoch_listener
        self._backend_start = None  # with the listening backend's pid, its row there
        self._wake = None  # the acknowledging thread's end of a socket pair, and ours

    def box(self, since: int, until: int) -> tuple | None:
        """The lon/lat box (xmin, ymin, xmax, ymax) of every grid the epochs after ``since`` up to
        ``until`` changed (``grids.NO_CHANGE`` when they changed none); None when an epoch among
        them came without a box (a building's write, a level above the micro-grids, a lost notice)."""
        with self._lock:
            boxes = [self._boxes.get(e, None) for e in range(since + 1, until + 1)]
        if until - since > self.KEEP_BOXES or any(b is None for b in boxes):
            return None
        boxes = [b for b in boxes if b]
        if not boxes:
            return grids.NO_CHANGE
        x0, y0, x1, y1 = zip(*boxes, strict=True)
        return min(x0), min(y0), max(x1), max(y1)

    def _take_announced(self, nudge: bool = True) -> None:
        epochs, boxes = grids.announced(self._conn)
        for epoch in epochs:
            self._epoch = max(self._epoch, epoch)
        if boxes:
            self._boxes.update(boxes)
            if len(self._boxes) > 2 * self.KEEP_BOXES:
                newest = max(self._boxes)
                self._boxes = {e: b for e, b in self._boxes.items() if e > newest - self.KEEP_BOXES}
        if nudge:
            self._nudge()

    def _nudge(self) -> None:
        """Wake the acknowledging thread when an epoch is not yet acknowledged: a lookup that took the
        notice off the socket first leaves that thread nothing to wake it."""
        if self._epoch > self._acked and self._wake is not None:
            with contextlib.suppress(OSError):  # its buffer full: it is awake already
                self._wake[1].send(b".")

    def _listen(self) -> None:
        """Connect, LISTEN, enter the connection in ``epoch_listener`` and start its thread (a
        database without that table, not yet migrated, is listened to without acknowledging: no
        write waits for this server)."""
        self._conn = psycopg.connect(self.url, autocommit=True, application_name=f"{WATCH_NAME} {os.getpid()}")
        self._boxes.clear()  # what was announced while not listening is unknown
        self._epoch = grids.listen_epoch(self._conn)
        try:
            self._backend_start = grids.register_listener(self._conn, self._epoch)
        except psycopg.errors.UndefinedTable:
            self._backend_start = None
            if not _said_unmigrated:
                _said_unmigrated.append(True)
                logging.getLogger(__name__).warning(
                    "the database has no epoch_listener table (migration 0021): writes through other "
                    "servers will not wait for this one to hear of them; run `gridmap db migrate`"
                )
        self._acked = self._epoch
        self._confirmed_at = self._beat_at = time.monotonic()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        self._wake = (theirs, ours)
        threading.Thread(
            target=_acknowledge, args=(weakref.ref(self), self._conn, theirs), name="gridmap-epoch-ack", daemon=True
        ).start()
        weakref.finalize(self, _close_quietly, ours)  # the thread sees it closed and ends

    def _heard(self, conn) -> bool:
        """The acknowledging thread's turn: take what has arrived on ``conn`` and acknowledge the
        epoch if it moved; every ``BEAT_S``, read the epoch (a notice lost) and write the row even if
        it did not (alive: a writer ignores rows not written for ``FRESH_S``).  False when ``conn`` is
        no longer this watch's (the thread ends)."""
        with self._lock:
            if self._conn is not conn:
                return False
            if self._backend_start is None:
                return True  # not acknowledging (see _listen)
            try:
                beat = time.monotonic() - self._beat_at >= BEAT_S
                if beat:
                    self._epoch = max(self._epoch, grids.epoch_raw(conn))
                while True:  # notices that came in during the acknowledgement wake nobody: take them too
                    self._take_announced(nudge=False)
                    if self._epoch <= self._acked and not beat:
                        return True
                    grids.acknowledge_epoch(conn, self._backend_start, self._epoch)
                    self._acked, self._beat_at, beat = self._epoch, time.monotonic(), False
            except psycopg.Error:  # current() finds it out and reconnects
                self._drop()
                return False
            except Exception:  # a fault of ours: said, and writes do not wait on a connection nobody acknowledges on
                logging.getLogger(__name__).exception("the epoch watch's acknowledging thread failed")
                self._drop()
                return False

    def _drop(self) -> None:
        """Close the listening connection (its thread ends; no write waits for it): the next
        :meth:`current` connects again."""
        if self._conn is not None:
            self._conn.close()
        if self._wake is not None:
            _close_quietly(self._wake[1])
        self._conn, self._wake, self._failed_at = None, None, time.monotonic()

    def _confirm_due(self) -> bool:
        """Whether the epoch must be read now: this process committed since the last read, or
        ``confirm_s`` has passed."""
        return db.commits() != self._commits or time.monotonic() - self._confirmed_at >= self.confirm_s

    def peek(self) -> int | None:
        """The epoch announced so far, taken without waiting: None when :meth:`current` would have to
        query (the connection down, a confirming read due) or another thread is reading it."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._conn is None or self._confirm_due():
                return None
            self._take_announced()
            return self._epoch
        except psycopg.Error:  # current() finds it out and reconnects
            return None
        finally:
            self._lock.release()

    def current(self) -> int | None:
        with self._lock:
            try:
                if self._conn is None:
                    if time.monotonic() - self._failed_at < self.retry_s:
                        return None
                    self._listen()
                self._take_announced()
                if self._confirm_due():
                    seen = db.commits()  # a watch reads the epoch after its own process's commits
                    self._epoch = max(self._epoch, grids.epoch_raw(self._conn))
                    self._confirmed_at, self._commits = time.monotonic(), seen
                    # the announcements of what that read saw came in before its answer: their boxes
                    # too (a lookup right after its own process's commit found the epoch, not the box)
                    self._take_announced()
                return self._epoch
            except psycopg.Error:  # the database went away: query until it is back
                self._drop()
                return None


#: The listening connections' ``application_name``, followed by the process id.
WATCH_NAME = "gridmap epoch watch"
#: Seconds between the acknowledging thread's checks that its watch still exists.
ACK_IDLE_S = 1.0
#: Seconds between a listener's heartbeats (its row written, the epoch read) when nothing comes.
BEAT_S = 3.0
#: A listener whose row was not written for this long (seconds) is not waited for: its process is
#: stopped or its machine gone (TCP keepalives end such a backend within half a minute).
FRESH_S = 10.0
_said_unmigrated: list = []


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _acknowledge(ref: weakref.ref, conn, wake: socket.socket) -> None:
    """The body of an :class:`EpochWatch`'s acknowledging thread: wait for a notice on ``conn`` or a
    nudge on ``wake``, then let the watch take and acknowledge it; end with the watch (it is held
    weakly: an app let go of closes its listening connection) or when ``conn`` stops being its."""
    selector = selectors.DefaultSelector()  # not select.select: a busy server's descriptors pass 1024
    try:
        selector.register(conn.fileno(), selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while True:
            ready = selector.select(ACK_IDLE_S)
            if any(key.fileobj is wake for key, _ in ready):
                try:
                    if not wake.recv(4096):  # the watch's end closed: it is gone
                        return
                except BlockingIOError:
                    pass
            watch = ref()
            if watch is None or not watch._heard(conn):
                return
            del watch  # not kept alive between turns
    except Exception:  # noqa: BLE001 - whatever ended it, no write may wait on a listener nobody acknowledges for
        watch = ref()
        if watch is not None:
            with watch._lock:
                if watch._conn is conn:
                    watch._drop()
    finally:
        selector.close()
        _close_quietly(wake)
        if ref() is None:
            conn.close()


#: Seconds a write waits for every server to hear of it before it answers all the same.
HEAR_WAIT_S = 2.0


def await_servers(engine: Engine, timeout_s: float = HEAR_WAIT_S) -> list[int]:
    """Wait until every server listening on ``engine``'s database has acknowledged the grid epoch now
    (its watch's thread does within milliseconds of the commit, see :class:`EpochWatch`), so the next
    request to any server, its lookups, tiles and panels, sees what this process wrote.  At most
    ``timeout_s``: the listening backends still behind then (a server stopped mid-way, a machine
    overloaded) are returned, and their servers catch up at their next confirming read (every
    second).  Not waited for: servers whose listening connection is down (they query the epoch at
    each lookup), and listeners silent for ``FRESH_S`` (a stopped process, a machine gone)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        epoch = grids.epoch(conn)  # what this process wrote is in it: later writes are theirs to wait for
        while True:
            behind = grids.listeners_behind(conn, epoch, FRESH_S)
            if not behind or time.monotonic() >= deadline:
                return behind
            time.sleep(pause)
            pause = min(2 * pause, 0.02)


def note_commits() -> None:
    """A web request's start: from here on the databases this thread writes to are noted, for
    :func:`heard_by_servers`."""
    db.note_commits()


def heard_by_servers(*, thread: bool, timeout_s: float = HEAR_WAIT_S) -> list[int]:
    """:func:`await_servers` on every database this thread (``thread``: since :func:`note_commits`)
    or this process committed to: a web request's or a command's last step before it answers.  The
    listening backends still behind at the end (none when all heard).  A database that cannot be
    asked (gone, or of a schema before migration 0021) is not waited for: what was written is
    committed whatever the answer."""
    behind, asked = [], set()
    for engine in db.committed_engines(thread=thread):
        where = engine.url.render_as_string(hide_password=False)
        if where in asked:  # engines of one database with other session settings
            continue
        asked.add(where)
        try:
            behind += await_servers(engine, timeout_s)
        except sa_exc.SQLAlchemyError:
            continue
    return behind


def load_index(home: Path, key: str, *, prefault: bool = False) -> GridIndex | None:
    """The index persisted under ``home`` as ``key``, its arrays memory-mapped; None when there is
    none or it is unreadable (another version's or a damaged copy is never trusted).  A server worker's
    start, and every ``--engine dask`` worker's (:mod:`.dask_assign`)."""
    found = index_files.load(home, key, prefault=prefault)
    if found is None:
        return None
    try:
        return GridIndex.from_state(*found)
    except (ValueError, KeyError):
        return None


def batch_points(points: list):
    """(lon, lat, ids, shape errors) of a list of {"lon", "lat", "id"?} objects; PayloadTooLarge
    beyond :data:`MAX_BATCH`."""
    if len(points) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(points)} points in one request; at most {MAX_BATCH}")
    lon = np.full(len(points), np.nan)
    lat = np.full(len(points), np.nan)
    ids = [None] * len(points)
    errors = np.full(len(points), None, dtype=object)
    for i, p in enumerate(points):
        if not isinstance(p, dict) or "lon" not in p or "lat" not in p:
            errors[i] = NOT_A_POINT
            continue
        ids[i] = p.get("id")
        try:
            lon[i], lat[i] = float(p["lon"]), float(p["lat"])
        except (TypeError, ValueError):
            errors[i] = NOT_NUMBERS
    return lon, lat, ids, errors


def _set_micro(body: dict, index: GridIndex, code: str) -> None:
    """Make ``code`` the answer's micro-grid (the one holding the household's floor)."""
    body["micro"] = code
    body["chain"] = [dict(link) for link in body.get("chain", [])]  # answers share chain objects: copy
    for link in body["chain"]:
        if link["level"] == "micro":
            link["code"] = code
            link["name"] = index.name_of(code)


def _within(point, box) -> bool:
    """Whether ``point`` (x, y) lies in ``box`` (xmin, ymin, xmax, ymax; its edges included); never in
    an empty box."""
    return bool(box) and box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _affected_box(base: GridIndex, frame, codes) -> tuple | None:
    """Bounds of the changed grids' old and new outlines, when all of them are micro or special grids
    (points elsewhere answer the same before and after); None when any other level changed."""
    rows = [r for r in base.code.searchsorted(sorted(codes)) if r < len(base.code) and base.code[r] in codes]
    if not set(base.level[rows]) <= {"micro", SPECIAL} or not set(frame["level"]) <= {"micro", SPECIAL}:
        return None
    geoms = list(frame["geometry"])
    for r in rows:
        if base.level[r] == "micro":
            geoms.append(base.geoms([base.micro.searchsorted(r)])[0])  # decodes this grid alone
        else:
            geoms.append(base.special_geom[base.special.searchsorted(r)])
    return tuple(shapely.total_bounds(np.array(geoms, dtype=object))) if geoms else None


def people_after(held: Mapping, codes, fresh: dict) -> Mapping:
    """The people by grid after an edit changed ``codes``: theirs now (``fresh``; none: an empty list)
    over those ``held``.  The city's dict (46,000 grids) is kept and the changed grids' laid over it
    (:class:`LayeredPeople`) until they are many: a new dict that size, young, cost each server worker
    a pause of the cyclic collector of ~2.5 ms at every edit (measured with gc.callbacks) while its
    request threads waited, and copying it ~13 ms of the interpreter."""
    over, city = (held.over, held.city) if isinstance(held, LayeredPeople) else ({}, held)
    over = {**over, **{code: fresh.get(code, []) for code in codes}}
    if len(over) <= PEOPLE_OVERLAY:
        return LayeredPeople(over, city)
    return {code: v for code, v in {**city, **over}.items() if v}


_ABSENT = object()


class LayeredPeople(Mapping):
    """People by grid: ``over`` (the grids edits changed) laid over ``city``.  Not a ChainMap: its
    ``get``, called per answered point, took 2 µs against a dict's 0.08 (20 ms a 10,000-point request);
    this one's takes ~0.14."""

    __slots__ = ("over", "city")

    def __init__(self, over: dict, city: Mapping):
        self.over, self.city = over, city

    def get(self, code, default=None):
        found = self.over.get(code, _ABSENT)
        return self.city.get(code, default) if found is _ABSENT else found

    def __getitem__(self, code):
        found = self.get(code, _ABSENT)
        if found is _ABSENT:
            raise KeyError(code)
        return found

    def __iter__(self):
        yield from self.over
        yield from (code for code in self.city if code not in self.over)

    def __len__(self) -> int:
        return len(self.over) + sum(1 for code in self.city if code not in self.over)


def lower_priority() -> None:
    """Give the calling thread the lowest CPU priority (:data:`BACKGROUND_NICE`), leaving the other
    threads of its process as they are (a thread's priority cannot be raised again without
    privilege: only threads of their own call it).  A server's index update after an edit (~70 ms
    of CPU alone, 200-400 ms in a serving worker beside the other worker's, wrk's and PostgreSQL's)
    then yields the cores to the request threads once its patch is made (paced lookups' p99 under an
    edit every 5 s: 3.6-4.4 ms, then 2.3-3.3 ms; README, "End to end").  Linux only: elsewhere
    ``setpriority`` would renice the whole process, so nothing is done."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except OSError:  # not permitted (a sandbox): the update runs at the usual priority
        pass


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
