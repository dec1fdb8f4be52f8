"""SQL for buildings and their stairwell units: bulk writes, versions, and the reads the
partitioner, the gazetteer, validation and boundary edits need."""

from __future__ import annotations

from datetime import datetime

import lazy_loader
import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import close_versions, copy_frame, ewkb_hex
from .grids import as_of

pd = lazy_loader.load("pandas")


def current_codes(conn: Connection) -> set[str]:
    return set(conn.execute(sa.text("SELECT code FROM building WHERE valid_to IS NULL")).scalars())


def close(conn: Connection, codes, at: datetime) -> int:
    """End the current versions of buildings ``codes`` at ``at``. Returns how many were closed."""
    return close_versions(conn, "building", codes, at)


def insert(conn: Connection, frame: pd.DataFrame, valid_from: datetime) -> int:
    """Bulk-insert checked buildings and their units."""
    ids = (
        conn.execute(sa.text("SELECT nextval('building_id_seq') FROM generate_series(1, :n)"), {"n": len(frame)})
        .scalars()
        .all()
    )
    out = pd.DataFrame(
        {
            "id": ids,
            "code": frame["code"],
            "courtyard_code": frame["courtyard_code"],
            "name": frame["name"],
            "number": frame["number"],
            "floors": frame["floors"],
            "households": frame["households"],
            "geom": ewkb_hex(frame["geometry"]),
            "valid_from": valid_from.isoformat(),
        }
    )
    copy_frame(conn, "building", list(out.columns), out)
    counts = frame["units"].map(len).to_numpy()
    per_floor = frame["floor_households"] if "floor_households" in frame.columns else [None] * len(frame)
    floors, arrays = [], []
    for n_units, per, height in zip(counts, per_floor, frame["floors"]):
        for u in range(n_units):
            f = per[u] if per is not None else None
            floors.append(len(f) if f is not None else (int(height) if pd.notna(height) else None))
            arrays.append("{" + ",".join(str(int(h)) for h in f) + "}" if f is not None else None)
    units = pd.DataFrame(
        {
            "building_id": np.repeat(np.asarray(ids), counts),
            "number": np.concatenate([np.arange(1, c + 1) for c in counts]) if len(counts) else [],
            "households": np.concatenate([np.asarray(u, dtype="int64") for u in frame["units"]]) if len(counts) else [],
            "floors": pd.array(floors, dtype="Int64"),
            "floor_households": arrays,
        }
    )
    copy_frame(conn, "unit", list(units.columns), units)
    return len(out)


def move(conn: Connection, moves: dict[str, str], at: datetime) -> int:
    """New versions of buildings (and their units, floors and households a floor) under another courtyard."""
    n = 0
    for code, courtyard in moves.items():
        old = conn.execute(
            sa.text("UPDATE building SET valid_to = :at WHERE code = :c AND valid_to IS NULL RETURNING id"),
            {"at": at, "c": code},
        ).scalar_one_or_none()
        if old is None:
            continue
        new = conn.execute(
            sa.text("""
            INSERT INTO building (code, courtyard_code, name, number, floors, households, geom, valid_from)
            SELECT code, :y, name, number, floors, households, geom, :at FROM building WHERE id = :id
            RETURNING id"""),
            {"y": courtyard, "at": at, "id": old},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO unit (building_id, number, households, floors, floor_households) "
                "SELECT :new, number, households, floors, floor_households FROM unit WHERE building_id = :old"
            ),
            {"new": new, "old": old},
        )
        n += 1
    return n


def households_by_courtyard(eng: Engine, at: datetime | None = None) -> dict[str, int]:
    """Households of the buildings of each courtyard, summed from their units."""
    where, params = as_of(at, "b")
    sql = (
        f"SELECT b.courtyard_code, sum(u.households) FROM building b JOIN unit u ON u.building_id = b.id "
        f"WHERE {where} GROUP BY b.courtyard_code"
    )
    with eng.connect() as conn:
        return {code: int(n) for code, n in conn.execute(sa.text(sql), params)}


def in_courtyards(conn: Connection, codes) -> list:
    """Current buildings of the courtyards ``codes``: (code, courtyard code, floors, WKB, unit
    households in unit order)."""
    return conn.execute(
        sa.text("""
        SELECT b.code, b.courtyard_code, b.floors, ST_AsBinary(b.geom),
               array_remove(array_agg(u.households ORDER BY u.number), NULL)
        FROM building b LEFT JOIN unit u ON u.building_id = b.id
        WHERE b.valid_to IS NULL AND b.courtyard_code = ANY(:codes)
        GROUP BY b.id ORDER BY b.courtyard_code, b.code"""),
        {"codes": list(codes)},
    ).all()


def with_floors(conn: Connection, codes) -> list:
    """Current buildings of the courtyards ``codes`` with their units' floors: (code, courtyard code,
    floors, WKB, [[unit number, households, floors or None, floor households or None], ...])."""
    return conn.execute(
        sa.text("""
        SELECT b.code, b.courtyard_code, b.floors, ST_AsBinary(b.geom),
               coalesce(json_agg(json_build_array(u.number, u.households, u.floors, u.floor_households)
                                 ORDER BY u.number) FILTER (WHERE u.number IS NOT NULL), '[]')
        FROM building b LEFT JOIN unit u ON u.building_id = b.id
        WHERE b.valid_to IS NULL AND b.courtyard_code = ANY(:codes)
        GROUP BY b.id ORDER BY b.courtyard_code, b.code"""),
        {"codes": list(codes)},
    ).all()


def footprints(conn: Connection, at: datetime | None = None, codes=None) -> dict:
    """Footprints (lon/lat) of the building versions valid at ``at`` (all, or ``codes``), by code."""
    where, params = as_of(at)
    if codes is not None:
        where += " AND code = ANY(:codes)"
        params["codes"] = list(codes)
    rows = conn.execute(sa.text(f"SELECT code, ST_AsBinary(geom) FROM building WHERE {where}"), params).all()
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


def meeting(conn: Connection, area) -> list[tuple]:
    """Current buildings meeting ``area``: (code, WKB footprint, unit households in order)."""
    return conn.execute(
        sa.text("""
        SELECT b.code, ST_AsBinary(b.geom), array_remove(array_agg(u.households ORDER BY u.number), NULL)
        FROM building b LEFT JOIN unit u ON u.building_id = b.id
        WHERE b.valid_to IS NULL AND b.geom && ST_GeomFromWKB(:wkb, 4326)
          AND ST_Intersects(b.geom, ST_GeomFromWKB(:wkb, 4326))
        GROUP BY b.id ORDER BY b.code"""),
        {"wkb": shapely.to_wkb(area)},
    ).all()


def gazetteer_rows(conn: Connection):
    """(courtyards, buildings) for the address gazetteer: courtyard code, name, community and street
    names; building code, courtyard code, number text, unit count and an interior point."""
    courtyards = conn.execute(
        sa.text("""
        SELECT y.code, y.name, c.name, s.name FROM grid y
        LEFT JOIN grid c ON c.code = y.parent_code AND c.valid_to IS NULL
        LEFT JOIN grid s ON s.code = c.parent_code AND s.valid_to IS NULL
        WHERE y.level = 'courtyard' AND y.valid_to IS NULL""")
    ).all()
    buildings = conn.execute(
        sa.text("""
        SELECT b.code, b.courtyard_code, b.number, count(u.number), ST_X(p), ST_Y(p)
        FROM building b LEFT JOIN unit u ON u.building_id = b.id,
             LATERAL ST_PointOnSurface(b.geom) AS p
        WHERE b.valid_to IS NULL GROUP BY b.id, p""")
    ).all()
    return courtyards, buildings
