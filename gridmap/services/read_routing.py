"""Reads that may go to a read replica (``GRIDMAP_READ_DATABASE_URL``) without ever going stale.

A replica replays the primary's writes with some lag.  The map's reads are made of what the
data epochs count: the grid epoch (every write to grids, buildings, units) and the layer epochs
(risk elements, visits, roll-ups, reports), all bumped by triggers in the writing transaction.
So a tile or panel is read from the replica only when the replica's epochs are not behind the
primary's, read now; else from the primary.  An edit committed anywhere is therefore seen by
the next tile and panel on every server, replica or not.  Lookups never use the replica: their
index follows the primary's epoch (:mod:`.locator`).  Cost: two one-row reads per request.
"""

from __future__ import annotations

import logging

import sqlalchemy.exc
from sqlalchemy.engine import Engine

from ..settings import Settings
from ..store import db, tiles
from . import database

log = logging.getLogger(__name__)


def read_engine(settings: Settings) -> Engine:
    """The engine a tile or panel reads from now (the primary when no replica is configured)."""
    primary = database.engine(settings)
    if not settings.read_database_url:
        return primary
    return fresh_engine(primary, db.engine(settings.read_database_url))


def fresh_engine(primary: Engine, replica: Engine) -> Engine:
    """``replica`` when it holds every change the primary has committed, else ``primary`` (also when
    the replica cannot be reached: a replica is an optimisation, never a point of failure)."""
    with primary.connect() as conn:
        want = tiles.data_epochs(conn)
    try:
        with replica.connect() as conn:
            have = tiles.data_epochs(conn)
    except sqlalchemy.exc.OperationalError as exc:
        log.warning("read replica unreachable, reading the primary: %s", str(exc).splitlines()[0])
        return primary
    return replica if have[0] >= want[0] and have[1] >= want[1] else primary
