"""Importing grids, buildings and people from a file: all rows or none, on the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Connection

from .. import geo
from ..domain.levels import parent_level
from ..domain.risk import Rules
from ..store import audit, buildings, db, grids, points, risk
from . import ingest, memberships


def import_file(
    conn: Connection,
    path,
    level: str,
    *,
    rules: Rules,
    crs=None,
    fields: ingest.Fields | None = None,
    replace: bool = False,
    actor: str = "cli",
    at: datetime | None = None,
    fill_shares: bool = True,
) -> dict:
    """Check and write one file on ``conn``'s transaction (the caller commits). All rows or none.

    With ``replace``, rows whose code is current get a new version (the old one is closed at ``at``),
    and the risk roll-up is refreshed with ``rules`` (the rules in force).  Units that no micro-grid holds
    yet get whole-unit shares from geometry (``fill_shares``; off when a membership file follows).
    Raises ImportRejected (listing every bad row) or InputError.
    """
    path = Path(path)
    kind = ingest.level_kind(level)
    at = at or datetime.now(UTC)
    codes = []
    if kind == "share":  # a membership file: which floors each micro-grid holds
        summary = memberships.import_csv(conn, path)
        audit.log(conn, actor, "import share", None, summary, [])
        return summary
    if kind == "person":
        frame = ingest.read_people(path, grid_codes=grids.current_codes(conn))
        n = grids.insert_people(conn, frame)
    elif kind == "building":
        f = fields or ingest.Fields(parent="courtyard_code")
        existing = set() if replace else buildings.current_codes(conn)
        frame = ingest.read_buildings(
            path, crs=crs, fields=f, existing_codes=existing, courtyard_codes=grids.current_codes(conn, "courtyard")
        )
        if replace:
            buildings.close(conn, frame["code"], at)
        n = buildings.insert(conn, frame, at)
    else:
        plevel = parent_level(level)
        existing = set() if replace else grids.current_codes(conn)
        frame = ingest.read_grids(
            path,
            level,
            crs=crs,
            fields=fields or ingest.Fields(),
            existing_codes=existing,
            parent_codes=grids.current_codes(conn, plevel) if plevel else None,
            issued_of=lambda codes: {c: (lv, db.iso(conn, r)) for c, (lv, r) in grids.issued(conn, codes).items()},
        )
        if replace:
            grids.close(conn, frame["code"], at)
        n = grids.insert(conn, frame, at)
        grids.set_multipart(conn, frame.loc[frame["multipart"], "code"])
        codes = frame["code"].tolist()
    summary = {"file": path.name, "level": level, "rows": n, "crs": geo.parse_crs(crs) if crs else None}
    if kind == "grid" and level == "micro" and replace:
        summary["reassigned"] = points.reassign(conn, frame["code"])
    if fill_shares and (kind == "building" or (kind == "grid" and level == "micro")):  # units held by none yet
        yards = frame["courtyard_code" if kind == "building" else "parent_code"].unique().tolist()
        summary["shares"] = memberships.fill(conn, yards)
    if kind == "grid" and replace:  # new boundaries or parents: grid colours roll up anew
        summary["risk_grids"] = risk.refresh_rollup(conn, rules)
    audit.log(conn, actor, f"import {level}", None, summary, codes)
    return summary
