"""Micro-grids' shares of buildings: filled in from geometry, imported and exported as a file.

Every floor of every current unit belongs to exactly one current micro-grid (``gridmap validate``
proves it).  Shares come from the partitioner, from a membership file (CSV of
``building,unit,floor_from,floor_to,micro_code``), or, for micro-grids imported without one, from
geometry: :func:`fill` gives each unit without a share to the micro-grid holding the middle of its slice
of the footprint (whole units; :func:`gridmap.domain.membership.derive`).  A boundary edit carries the
floors along itself (:func:`gridmap.domain.membership.follow_edit`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import lazy_loader
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..domain.membership import COLUMNS, derive, read_rows
from ..domain.partition.floors import even_floors
from ..errors import InputError
from ..store import shares
from . import ingest
from .files import check_output, write_csv

pd = lazy_loader.load("pandas")


def unit_floors(households: int, floors, per_floor) -> tuple[int, ...]:
    if per_floor:
        return tuple(int(h) for h in per_floor)
    return even_floors(int(households), int(floors or max(1, -(-int(households) // 2))))


def fill(conn: Connection, courtyards=None) -> int:
    """Whole-unit shares, from geometry, for the current units (of ``courtyards``, or all) that no current
    micro-grid holds yet, in courtyards that have micro-grids.  Returns the shares written."""
    units = shares.units(conn, courtyards=courtyards)
    held = shares.of_grids(conn, courtyards=courtyards)
    have = set(zip(held["building_code"], held["unit"]))
    missing = [u for u in units if (u[0], u[2]) not in have]
    if not missing:
        return 0
    yards = sorted({u[1] for u in missing})
    micro = conn.execute(
        sa.text(
            "SELECT parent_code, code, ST_AsBinary(geom) FROM grid WHERE level = 'micro' AND valid_to IS NULL "
            "AND parent_code = ANY(:y)"
        ),
        {"y": yards},
    ).all()
    feet = dict(
        conn.execute(
            sa.text("SELECT code, ST_AsBinary(geom) FROM building WHERE valid_to IS NULL AND code = ANY(:c)"),
            {"c": sorted({u[0] for u in missing})},
        ).all()
    )
    by_yard: dict = {}
    for yard, code, wkb in micro:
        by_yard.setdefault(yard, []).append((code, shapely.from_wkb(bytes(wkb))))
    per_building: dict = {}
    for b, yard, number, households, floors, per_floor in missing:
        f = unit_floors(households, floors, per_floor)
        per_building.setdefault((yard, b), []).append((number, len(f), int(households)))
    rows = []
    for (yard, b), units_of in per_building.items():
        if yard not in by_yard or b not in feet:
            continue
        for r in derive(by_yard[yard], [(b, shapely.from_wkb(bytes(feet[b])), units_of)]):
            rows.append((r.code, r.building, r.unit, r.floor_from, r.floor_to, r.households))
    return shares.insert(conn, pd.DataFrame(rows, columns=shares.COLUMNS))


def import_csv(conn: Connection, path) -> dict:
    """Replace the shares of the micro-grids a membership CSV names by its rows (all rows or none).
    Households come from the units' floors.  Raises InputError naming the first bad row."""
    path = Path(path)
    frame = ingest.read_csv(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name}: no column {', '.join(missing)} (expected {','.join(COLUMNS)})")
    rows = read_rows(frame.to_dict("records"))
    codes = sorted({r.code for r in rows})
    current = set(
        conn.execute(
            sa.text("SELECT code FROM grid WHERE level = 'micro' AND valid_to IS NULL AND code = ANY(:c)"),
            {"c": codes},
        ).scalars()
    )
    units = {(u[0], u[2]): u for u in shares.units(conn)}
    out = []
    for n, r in enumerate(rows, 1):
        if r.code not in current:
            raise InputError(f"{path.name}: row {n}: {r.code} is not a current micro-grid")
        u = units.get((r.building, r.unit))
        if u is None:
            raise InputError(f"{path.name}: row {n}: building {r.building} has no unit {r.unit}")
        f = unit_floors(u[3], u[4], u[5])
        if r.floor_to > len(f):
            raise InputError(
                f"{path.name}: row {n}: unit {r.unit} of building {r.building} has {len(f)} floors, not {r.floor_to}"
            )
        out.append((r.code, r.building, r.unit, r.floor_from, r.floor_to, int(sum(f[r.floor_from - 1 : r.floor_to]))))
    conn.execute(
        sa.text(
            "DELETE FROM grid_share WHERE grid_id IN (SELECT id FROM grid WHERE valid_to IS NULL AND code = ANY(:c))"
        ),
        {"c": codes},
    )
    n = shares.insert(conn, pd.DataFrame(out, columns=shares.COLUMNS))
    return {"file": path.name, "level": "share", "rows": n, "micro_grids": len(codes)}


def export_csv(eng: Engine, out, *, at: datetime | None = None, encoding: str = "utf-8-sig") -> int:
    """Write the shares valid at ``at`` as a membership CSV (``encoding``: UTF-8 with a BOM by default)."""
    out = check_output(out, (".csv",))
    with eng.connect() as conn:
        frame = shares.of_grids(conn, at=at)
    frame = frame.rename(columns={"building_code": "building", "code": "micro_code"})
    write_csv(frame[[*COLUMNS, "households"]], out, encoding)
    return len(frame)
