"""SQL for boundary edits: locking current versions, reading an edit's family and the points it may
move, writing new versions, and the history of a grid."""
from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..domain.edits import Grid
from .grids import _ewkb_hex

_COLS = "id, code, name, level, kind, parent_code, households, population, ST_AsBinary(geom) AS wkb"


def _grids(rows) -> list[Grid]:
    return [Grid(code=r.code, name=r.name, level=r.level, parent_code=r.parent_code,
                 geom=shapely.from_wkb(bytes(r.wkb)), households=int(r.households), population=int(r.population),
                 kind=r.kind, version=int(r.id)) for r in rows]


def lock(conn: Connection, codes) -> dict[str, int]:
    """Lock the current versions of ``codes`` until the transaction ends; their version ids.
    Every edit locks its grids' parent too, so two edits in one parent run one after the other."""
    rows = conn.execute(sa.text("SELECT code, id FROM grid WHERE code = ANY(:codes) AND valid_to IS NULL "
                                "ORDER BY code FOR UPDATE"), {"codes": sorted(set(codes))}).all()
    return {code: int(i) for code, i in rows}


def current(conn: Connection, codes) -> dict[str, Grid]:
    rows = conn.execute(sa.text(f"SELECT {_COLS} FROM grid WHERE code = ANY(:codes) AND valid_to IS NULL"),
                        {"codes": list(codes)}).all()
    return {g.code: g for g in _grids(rows)}


def siblings(conn: Connection, parent_code: str | None, level: str) -> list[Grid]:
    """Current grids of ``level`` under ``parent_code`` (all districts for the top level)."""
    if parent_code is None:
        rows = conn.execute(sa.text(f"SELECT {_COLS} FROM grid WHERE level = :level AND valid_to IS NULL"),
                            {"level": level}).all()
    else:
        rows = conn.execute(sa.text(f"SELECT {_COLS} FROM grid WHERE parent_code = :p AND level = :level "
                                    "AND valid_to IS NULL"), {"p": parent_code, "level": level}).all()
    return _grids(rows)


def children(conn: Connection, parents) -> list[Grid]:
    rows = conn.execute(sa.text(f"SELECT {_COLS} FROM grid WHERE parent_code = ANY(:p) AND valid_to IS NULL "
                                "AND level <> 'special'"), {"p": list(parents)}).all()
    return _grids(rows)


def versions(conn: Connection, codes) -> dict[str, int]:
    rows = conn.execute(sa.text("SELECT code, id FROM grid WHERE code = ANY(:codes) AND valid_to IS NULL"),
                        {"codes": list(codes)}).all()
    return {code: int(i) for code, i in rows}


def codes_like(conn: Connection, prefix: str) -> set[str]:
    """Every code (any version) starting with ``prefix``: new codes must not reuse a retired one."""
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return set(conn.execute(sa.text("SELECT DISTINCT code FROM grid WHERE code LIKE :p"), {"p": like}).scalars())


def code_exists(conn: Connection, code: str) -> bool:
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM grid WHERE code = :c)"), {"c": code}).scalar_one()


def points_in(conn: Connection, area) -> dict[str, tuple]:
    """Residents, reports, risk elements and buildings whose (representative) point lies in ``area``:
    per table (ids, lon, lat)."""
    queries = {
        "residents": "SELECT id, geom AS p FROM resident",
        "reports": "SELECT id, geom AS p FROM report",
        "risk_elements": "SELECT id, ST_PointOnSurface(geom) AS p FROM risk_element "
                         "WHERE geom && ST_GeomFromWKB(:wkb, 4326)",
        "buildings": "SELECT code AS id, ST_PointOnSurface(geom) AS p FROM building "
                     "WHERE valid_to IS NULL AND geom && ST_GeomFromWKB(:wkb, 4326)",
    }
    out = {}
    for name, sql in queries.items():
        rows = conn.execute(sa.text(f"""
            SELECT id, ST_X(p), ST_Y(p) FROM ({sql}) s
            WHERE p && ST_GeomFromWKB(:wkb, 4326) AND ST_Covers(ST_GeomFromWKB(:wkb, 4326), p)
            ORDER BY id"""), {"wkb": shapely.to_wkb(area)}).all()
        out[name] = (np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=float),
                     np.array([r[2] for r in rows], dtype=float))
    return out


def buildings_in(conn: Connection, area) -> list[tuple]:
    """Current buildings meeting ``area``: (code, WKB footprint, unit households in order)."""
    return conn.execute(sa.text("""
        SELECT b.code, ST_AsBinary(b.geom), array_remove(array_agg(u.households ORDER BY u.number), NULL)
        FROM building b LEFT JOIN unit u ON u.building_id = b.id
        WHERE b.valid_to IS NULL AND b.geom && ST_GeomFromWKB(:wkb, 4326)
          AND ST_Intersects(b.geom, ST_GeomFromWKB(:wkb, 4326))
        GROUP BY b.id ORDER BY b.code"""), {"wkb": shapely.to_wkb(area)}).all()


def now(conn: Connection) -> datetime:
    return conn.execute(sa.text("SELECT now()")).scalar_one()


# --- writes ---------------------------------------------------------------------------

def close(conn: Connection, codes, at: datetime) -> int:
    return conn.execute(sa.text("UPDATE grid SET valid_to = :at WHERE valid_to IS NULL AND code = ANY(:codes)"),
                        {"at": at, "codes": list(codes)}).rowcount


def open_versions(conn: Connection, grids: list[Grid], at: datetime) -> dict[str, int]:
    """Insert new versions (keeping each code's ``attrs``); their ids."""
    if not grids:
        return {}
    frame = pd.DataFrame({"code": [g.code for g in grids], "name": [g.name for g in grids],
                          "level": [g.level for g in grids], "kind": [g.kind for g in grids],
                          "parent_code": [g.parent_code for g in grids],
                          "households": [int(g.households) for g in grids],
                          "population": [int(g.population) for g in grids],
                          "geom": _ewkb_hex([g.geom for g in grids])})
    ids = {}
    for row in frame.itertuples(index=False):
        ids[row.code] = conn.execute(sa.text("""
            INSERT INTO grid (code, name, level, kind, parent_code, households, population, geom, valid_from, attrs)
            VALUES (:code, :name, :level, :kind, :parent_code, :households, :population, ST_GeomFromEWKB(
                    decode(:geom, 'hex')), :at,
                    coalesce((SELECT attrs FROM grid WHERE code = :code ORDER BY valid_from DESC LIMIT 1), '{}'))
            RETURNING id"""), {**row._asdict(), "at": at}).scalar_one()
    return ids


def reparent(conn: Connection, moves: dict[str, str], at: datetime) -> int:
    """New versions of children under their new parents (same geometry and counts)."""
    if not moves:
        return 0
    codes = list(moves)
    conn.execute(sa.text("""
        CREATE TEMP TABLE _moves (code text PRIMARY KEY, parent text) ON COMMIT DROP"""))
    conn.execute(sa.text("INSERT INTO _moves VALUES (:c, :p)"), [{"c": c, "p": p} for c, p in moves.items()])
    conn.execute(sa.text("""
        CREATE TEMP TABLE _old ON COMMIT DROP AS
        SELECT g.* FROM grid g WHERE g.code = ANY(:codes) AND g.valid_to IS NULL"""), {"codes": codes})
    close(conn, codes, at)
    return conn.execute(sa.text("""
        INSERT INTO grid (code, name, level, kind, parent_code, households, population, geom, valid_from, attrs)
        SELECT o.code, o.name, o.level, o.kind, m.parent, o.households, o.population, o.geom, :at, o.attrs
        FROM _old o JOIN _moves m ON m.code = o.code"""), {"at": at}).rowcount


def move_buildings(conn: Connection, moves: dict[str, str], at: datetime) -> int:
    """New versions of buildings (and their units) under another courtyard."""
    n = 0
    for code, courtyard in moves.items():
        old = conn.execute(sa.text("UPDATE building SET valid_to = :at WHERE code = :c AND valid_to IS NULL "
                                   "RETURNING id"), {"at": at, "c": code}).scalar_one_or_none()
        if old is None:
            continue
        new = conn.execute(sa.text("""
            INSERT INTO building (code, courtyard_code, name, number, floors, households, geom, valid_from)
            SELECT code, :y, name, number, floors, households, geom, :at FROM building WHERE id = :id
            RETURNING id"""), {"y": courtyard, "at": at, "id": old}).scalar_one()
        conn.execute(sa.text("INSERT INTO unit (building_id, number, households) "
                             "SELECT :new, number, households FROM unit WHERE building_id = :old"),
                     {"new": new, "old": old})
        n += 1
    return n


def log(conn: Connection, actor: str, action: str, reason: str | None, detail: dict) -> int:
    return conn.execute(sa.text("INSERT INTO edit_log (actor, action, reason, detail) VALUES (:a, :b, :r, :d) "
                                "RETURNING id"),
                        {"a": actor, "b": action, "r": reason,
                         "d": json.dumps(detail, ensure_ascii=False, default=str)}).scalar_one()


# --- history --------------------------------------------------------------------------

def history(conn: Connection, code: str) -> dict:
    """Every version of ``code`` (oldest first) and every logged edit that names it."""
    rows = conn.execute(sa.text("""
        SELECT id, name, level, kind, parent_code, households, population, valid_from, valid_to,
               ST_Area(ST_Transform(geom, 4547)) AS area_m2, ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS g
        FROM grid WHERE code = :code ORDER BY valid_from"""), {"code": code}).mappings().all()
    edits = conn.execute(sa.text("""
        SELECT id, at, actor, action, reason, detail->'codes' AS codes FROM edit_log
        WHERE detail->'codes' ? :code ORDER BY at, id"""), {"code": code}).mappings().all()
    return {"versions": [dict(r) for r in rows], "edits": [dict(r) for r in edits]}


def edit(conn: Connection, edit_id: int) -> dict | None:
    row = conn.execute(sa.text("SELECT id, at, actor, action, reason, detail FROM edit_log WHERE id = :i"),
                       {"i": edit_id}).mappings().first()
    return dict(row) if row else None

