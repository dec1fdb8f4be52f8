"""SQL for grids, buildings, units and people: bulk writes, current-version reads, chains and stats."""
from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..geo import STORAGE_SRID


def _as_of(at: datetime | None) -> tuple[str, dict]:
    """WHERE fragment selecting the versions valid at ``at`` (None: the current ones)."""
    if at is None:
        return "valid_to IS NULL", {}
    return "valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)", {"at": at}


def count_grids(conn: Connection, *, level: str | None = None, at: datetime | None = None) -> int:
    where, params = _as_of(at)
    if level is not None:
        where += " AND level = :level"
        params["level"] = level
    return conn.execute(sa.text(f"SELECT count(*) FROM grid WHERE {where}"), params).scalar_one()


def current_codes(conn: Connection, level: str | None = None, table: str = "grid") -> set[str]:
    """Codes of current rows of ``table`` (grids optionally of one level)."""
    sql = f"SELECT code FROM {table} WHERE valid_to IS NULL"
    params = {}
    if level is not None:
        sql += " AND level = :level"
        params["level"] = level
    return set(conn.execute(sa.text(sql), params).scalars())


def _ewkb_hex(geoms) -> np.ndarray:
    return shapely.to_wkb(shapely.set_srid(np.asarray(geoms, dtype=object), STORAGE_SRID), hex=True,
                          include_srid=True)


def _copy(conn: Connection, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """COPY ``frame`` (columns in order) into ``table`` on the connection's transaction."""
    buf = io.StringIO()
    # \r\n ends rows, so the csv writer quotes a value holding a bare \r too (PostgreSQL ends a row there)
    frame.to_csv(buf, index=False, header=False, na_rep="\\N", lineterminator="\r\n")
    data = buf.getvalue()
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
        copy.write(data)


def close_current(conn: Connection, table: str, codes, at: datetime) -> int:
    """End the current versions of ``codes`` at ``at`` (history is kept). Returns how many were closed."""
    res = conn.execute(sa.text(f"UPDATE {table} SET valid_to = :at WHERE valid_to IS NULL AND code = ANY(:codes)"),
                       {"at": at, "codes": list(codes)})
    return res.rowcount


def insert_grids(conn: Connection, frame: pd.DataFrame, valid_from: datetime) -> int:
    """Bulk-insert checked grids (see ingest.read_grids) as versions starting at ``valid_from``."""
    out = pd.DataFrame({
        "code": frame["code"], "name": frame["name"], "level": frame["level"], "kind": frame["kind"],
        "parent_code": frame["parent_code"], "households": frame["households"],
        "population": frame["population"], "geom": _ewkb_hex(frame["geometry"]),
        "valid_from": valid_from.isoformat(),
    })
    _copy(conn, "grid", list(out.columns), out)
    return len(out)


def insert_buildings(conn: Connection, frame: pd.DataFrame, valid_from: datetime) -> int:
    """Bulk-insert checked buildings and their units."""
    ids = conn.execute(sa.text("SELECT nextval('building_id_seq') FROM generate_series(1, :n)"),
                       {"n": len(frame)}).scalars().all()
    out = pd.DataFrame({
        "id": ids, "code": frame["code"], "courtyard_code": frame["courtyard_code"], "name": frame["name"],
        "number": frame["number"], "floors": frame["floors"], "households": frame["households"],
        "geom": _ewkb_hex(frame["geometry"]), "valid_from": valid_from.isoformat(),
    })
    _copy(conn, "building", list(out.columns), out)
    counts = frame["units"].map(len).to_numpy()
    units = pd.DataFrame({
        "building_id": np.repeat(np.asarray(ids), counts),
        "number": np.concatenate([np.arange(1, c + 1) for c in counts]) if len(counts) else [],
        "households": np.concatenate([np.asarray(u, dtype="int64") for u in frame["units"]]) if len(counts) else [],
    })
    _copy(conn, "unit", list(units.columns), units)
    return len(out)


def insert_people(conn: Connection, frame: pd.DataFrame) -> int:
    _copy(conn, "grid_person", ["grid_code", "name", "role", "phone"], frame[["grid_code", "name", "role", "phone"]])
    return len(frame)


def log_edit(conn: Connection, actor: str, action: str, reason: str | None, detail: dict) -> None:
    conn.execute(sa.text("INSERT INTO edit_log (actor, action, reason, detail) VALUES (:a, :b, :r, :d)"),
                 {"a": actor, "b": action, "r": reason, "d": json.dumps(detail, ensure_ascii=False)})


def analyze(conn: Connection) -> None:
    for table in ("grid", "building", "unit", "grid_person", "risk_element", "risk_visit", "report"):
        conn.execute(sa.text(f"ANALYZE {table}"))


# --- reads --------------------------------------------------------------------

def grid_frame(eng: Engine, *, level: str | None = None, at: datetime | None = None) -> pd.DataFrame:
    """Grids valid at ``at`` (default now) with shapely geometries, for validation and export."""
    where, params = _as_of(at)
    if level is not None:
        where += " AND level = :level"
        params["level"] = level
    sql = (f"SELECT code, name, level, kind, parent_code, households, population, valid_from, valid_to, "
           f"ST_AsBinary(geom) AS wkb FROM grid WHERE {where} ORDER BY id")
    with eng.connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    frame = pd.DataFrame(rows, columns=["code", "name", "level", "kind", "parent_code", "households",
                                        "population", "valid_from", "valid_to", "wkb"])
    frame["geometry"] = shapely.from_wkb(frame.pop("wkb").map(bytes).to_numpy()) if len(frame) else []
    return frame


def building_households(eng: Engine, at: datetime | None = None) -> dict[str, int]:
    """Households of the buildings of each courtyard, summed from their units."""
    where, params = _as_of(at)
    sql = (f"SELECT b.courtyard_code, sum(u.households) FROM building b JOIN unit u ON u.building_id = b.id "
           f"WHERE {where.replace('valid_', 'b.valid_')} GROUP BY b.courtyard_code")
    with eng.connect() as conn:
        return {code: int(n) for code, n in conn.execute(sa.text(sql), params)}


def chain(conn: Connection, code: str, at: datetime | None = None) -> list[dict]:
    """The grid ``code`` and its ancestors, top first, as valid at ``at``."""
    where, params = _as_of(at)
    sql = f"""
    WITH RECURSIVE up AS (
        SELECT code, name, level, parent_code, 0 AS depth FROM grid WHERE code = :code AND {where}
        UNION ALL
        SELECT g.code, g.name, g.level, g.parent_code, up.depth + 1
        FROM grid g JOIN up ON g.code = up.parent_code
        WHERE {where.replace('valid_', 'g.valid_')} AND up.depth < 10
    )
    SELECT code, name, level FROM up ORDER BY depth DESC"""
    return [dict(r._mapping) for r in conn.execute(sa.text(sql), {"code": code, **params})]


def grid_feature(conn: Connection, code: str, at: datetime | None = None) -> dict | None:
    """One grid as a GeoJSON Feature (RFC 7946), with its people; None when unknown."""
    where, params = _as_of(at)
    row = conn.execute(sa.text(f"""
        SELECT id, code, name, level, kind, parent_code, households, population, valid_from, valid_to,
               ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS geometry,
               ST_Area(ST_Transform(geom, 4547)) AS area_m2
        FROM grid WHERE code = :code AND {where}"""), {"code": code, **params}).mappings().first()
    if row is None:
        return None
    props = {k: row[k] for k in ("code", "name", "level", "kind", "parent_code", "households", "population")}
    props["valid_from"] = row["valid_from"].isoformat()
    props["valid_to"] = row["valid_to"].isoformat() if row["valid_to"] else None
    props["area_m2"] = round(row["area_m2"], 1)
    props["version_id"] = row["id"]  # the web layer turns it into the version's ETag
    props["children"] = conn.execute(sa.text(
        f"SELECT count(*) FROM grid WHERE parent_code = :code AND {where}"), {"code": code, **params}).scalar_one()
    props["people"] = [dict(r._mapping) for r in conn.execute(sa.text(
        "SELECT name, role, phone FROM grid_person WHERE grid_code = :code ORDER BY id"), {"code": code})]
    return {"type": "Feature", "id": row["code"], "geometry": row["geometry"], "properties": props}


def level_collection(conn: Connection, level: str, *, simplify_m: float = 0.0, bbox=None) -> dict:
    """Current grids of ``level`` as a FeatureCollection, simplified by ``simplify_m`` metres for display."""
    params = {"level": level, "tol": simplify_m / 111_000.0}
    where = "valid_to IS NULL AND level = :level"
    if bbox is not None:
        where += " AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
        params.update(dict(zip(("x0", "y0", "x1", "y1"), bbox)))
    sql = f"""
    SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
        'type', 'Feature', 'id', code,
        'geometry', ST_AsGeoJSON(ST_ForcePolygonCCW(
            CASE WHEN :tol > 0 THEN ST_SimplifyPreserveTopology(geom, :tol) ELSE geom END), 6)::json,
        'properties', json_build_object('code', code, 'name', name, 'level', level, 'kind', kind,
                                        'households', households)) ORDER BY code), '[]'::json))
    FROM grid WHERE {where}"""
    return conn.execute(sa.text(sql), params).scalar_one()


def stats(conn: Connection) -> dict:
    """Counts and households per level of the current version, plus buildings and units."""
    rows = conn.execute(sa.text("""
        SELECT level, count(*) AS grids, coalesce(sum(households), 0) AS households,
               coalesce(sum(population), 0) AS population
        FROM grid WHERE valid_to IS NULL GROUP BY level""")).mappings().all()
    levels = {r["level"]: {"grids": r["grids"], "households": int(r["households"]),
                           "population": int(r["population"])} for r in rows}
    b = conn.execute(sa.text("""
        SELECT count(DISTINCT b.id) AS buildings, count(u.number) AS units, coalesce(sum(u.households), 0) AS hh
        FROM building b LEFT JOIN unit u ON u.building_id = b.id WHERE b.valid_to IS NULL""")).mappings().one()
    epoch = conn.execute(sa.text("SELECT epoch, changed_at FROM grid_epoch WHERE id = 1")).mappings().first()
    return {"levels": levels, "buildings": b["buildings"], "units": b["units"],
            "building_households": int(b["hh"]),
            "epoch": epoch["epoch"] if epoch else 0,
            "changed_at": epoch["changed_at"].isoformat() if epoch else None}


def extent(conn: Connection) -> tuple[float, float, float, float] | None:
    """Bounds (minx, miny, maxx, maxy) of the current grids, None when empty."""
    row = conn.execute(sa.text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT ST_Extent(geom) AS e FROM grid WHERE valid_to IS NULL) s"
    )).first()
    return None if row is None or row[0] is None else tuple(row)


def truncate_all(conn: Connection) -> None:
    """Empty every data table (tests and `demo load --fresh`)."""
    conn.execute(sa.text("TRUNCATE grid, grid_person, building, unit, edit_log, resident, report, risk_visit, "
                         "risk_element, grid_risk RESTART IDENTITY"))


# --- lookup support -------------------------------------------------------------------

def epoch(conn: Connection) -> int:
    """The grid change counter (bumped by every write to ``grid``)."""
    return conn.execute(sa.text("SELECT epoch FROM grid_epoch WHERE id = 1")).scalar_one()


def epoch_raw(dbapi_conn) -> int:
    """The grid epoch over a plain psycopg connection (prepared; the lookup hot path)."""
    return dbapi_conn.execute("SELECT epoch FROM grid_epoch WHERE id = 1", prepare=True).fetchone()[0]


def index_frame(conn: Connection, at: datetime | None = None) -> pd.DataFrame:
    """Grids valid at ``at`` for the lookup index: every level's code, name, parent; geometry of
    micro-grids and special grids only (the chain above comes from parent links)."""
    where, params = _as_of(at)
    rows = conn.execute(sa.text(
        f"SELECT code, name, level, parent_code, CASE WHEN level IN ('micro', 'special') "
        f"THEN ST_AsBinary(geom) END AS wkb FROM grid WHERE {where}"), params).all()
    frame = pd.DataFrame(rows, columns=["code", "name", "level", "parent_code", "wkb"])
    frame["geometry"] = shapely.from_wkb(frame.pop("wkb").map(lambda b: None if b is None else bytes(b)).to_numpy())
    return frame


def people_by_grid(conn: Connection, level: str = "micro") -> dict[str, list[dict]]:
    """People responsible for the current grids of ``level``, by grid code."""
    out: dict[str, list[dict]] = {}
    rows = conn.execute(sa.text(
        "SELECT p.grid_code, p.name, p.role, p.phone FROM grid_person p JOIN grid g "
        "ON g.code = p.grid_code AND g.valid_to IS NULL AND g.level = :level ORDER BY p.id"), {"level": level})
    for code, name, role, phone in rows:
        out.setdefault(code, []).append({"name": name, "role": role, "phone": phone})
    return out


def lookup_sql(conn: Connection, lon: float, lat: float, at: datetime | None = None) -> dict | None:
    """One point answered by PostGIS alone, in one statement (``ST_Covers`` on the GiST index, lowest
    code wins): micro-grid, chain top first and special grids; None outside.  The reference for the
    in-memory index, and the HTTP benchmark's competitor."""
    where, params = _as_of(at)
    g_where = where.replace("valid_", "g.valid_")
    row = conn.execute(sa.text(f"""
        WITH RECURSIVE pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS p),
        micro AS (
            SELECT g.code FROM grid g, pt WHERE g.level = 'micro' AND {g_where} AND ST_Covers(g.geom, pt.p)
            ORDER BY g.code LIMIT 1),
        up AS (
            SELECT g.code, g.name, g.level, g.parent_code, 0 AS depth FROM grid g JOIN micro m ON g.code = m.code
            WHERE {g_where}
            UNION ALL
            SELECT g.code, g.name, g.level, g.parent_code, up.depth + 1 FROM grid g JOIN up ON g.code = up.parent_code
            WHERE {g_where} AND up.depth < 10)
        SELECT (SELECT code FROM micro),
               (SELECT json_agg(json_build_object('level', level, 'code', code, 'name', name) ORDER BY depth DESC)
                FROM up),
               (SELECT coalesce(json_agg(json_build_object('code', g.code, 'name', g.name) ORDER BY g.code), '[]')
                FROM grid g, pt WHERE g.level = 'special' AND {g_where} AND ST_Covers(g.geom, pt.p))"""),
        {"lon": lon, "lat": lat, **params}).one()
    if row[0] is None:
        return None
    return {"micro": row[0], "chain": row[1], "specials": row[2]}


def gazetteer_rows(conn: Connection):
    """(courtyards, buildings) for the address gazetteer: courtyard code, name, community and street
    names; building code, courtyard code, number text, unit count and an interior point."""
    courtyards = conn.execute(sa.text("""
        SELECT y.code, y.name, c.name, s.name FROM grid y
        LEFT JOIN grid c ON c.code = y.parent_code AND c.valid_to IS NULL
        LEFT JOIN grid s ON s.code = c.parent_code AND s.valid_to IS NULL
        WHERE y.level = 'courtyard' AND y.valid_to IS NULL""")).all()
    buildings = conn.execute(sa.text("""
        SELECT b.code, b.courtyard_code, b.number, count(u.number), ST_X(p), ST_Y(p)
        FROM building b LEFT JOIN unit u ON u.building_id = b.id,
             LATERAL ST_PointOnSurface(b.geom) AS p
        WHERE b.valid_to IS NULL GROUP BY b.id, p""")).all()
    return courtyards, buildings


def courtyard_inputs(conn: Connection, *, courtyards=None, community: str | None = None) -> tuple[list, list]:
    """Current courtyards (code, name, parent, WKB, households, population) chosen by codes, by
    community, or all; and their
    current buildings (code, courtyard code, floors, WKB, unit households in unit order)."""
    where, params = "level = 'courtyard' AND valid_to IS NULL", {}
    if courtyards is not None:
        where += " AND code = ANY(:codes)"
        params["codes"] = list(courtyards)
    if community is not None:
        where += " AND parent_code = :community"
        params["community"] = community
    yards = conn.execute(sa.text(f"SELECT code, name, parent_code, ST_AsBinary(geom), households, population FROM grid "
                                 f"WHERE {where} "
                                 "ORDER BY code"), params).all()
    buildings = conn.execute(sa.text("""
        SELECT b.code, b.courtyard_code, b.floors, ST_AsBinary(b.geom),
               array_remove(array_agg(u.households ORDER BY u.number), NULL)
        FROM building b LEFT JOIN unit u ON u.building_id = b.id
        WHERE b.valid_to IS NULL AND b.courtyard_code = ANY(:codes)
        GROUP BY b.id ORDER BY b.courtyard_code, b.code"""), {"codes": [y[0] for y in yards]}).all()
    return yards, buildings


def current_children(conn: Connection, parents, level: str = "micro") -> list[str]:
    """Codes of the current grids of ``level`` under ``parents``."""
    return conn.execute(sa.text("SELECT code FROM grid WHERE level = :level AND valid_to IS NULL "
                                "AND parent_code = ANY(:parents) ORDER BY code"),
                        {"level": level, "parents": list(parents)}).scalars().all()
