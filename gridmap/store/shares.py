"""SQL for micro-grids' shares of buildings (``grid_share``: floor ranges of units per grid version) and
the units' floors they are checked against.

Shares hang on the grid *version* (``grid.id``), so they are dated exactly like the grid: a share is
current while its grid version is, and ``at=`` reads the shares of the versions valid then.
"""

from __future__ import annotations

from datetime import datetime

import lazy_loader
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .db import copy_frame
from .grids import as_of

pd = lazy_loader.load("pandas")

COLUMNS = ["code", "building_code", "unit", "floor_from", "floor_to", "households"]


def insert(conn: Connection, frame: pd.DataFrame) -> int:
    """Shares (COLUMNS) of the *current* versions of their grid codes; rows of unknown codes are an
    error of the caller (checked before)."""
    if not len(frame):
        return 0
    ids = dict(
        conn.execute(
            sa.text("SELECT code, id FROM grid WHERE valid_to IS NULL AND code = ANY(:codes)"),
            {"codes": sorted(set(frame["code"]))},
        ).all()
    )
    out = pd.DataFrame(
        {
            "grid_id": frame["code"].map(ids),
            "building_code": frame["building_code"],
            "unit": frame["unit"].astype("int64"),
            "floor_from": frame["floor_from"].astype("int64"),
            "floor_to": frame["floor_to"].astype("int64"),
            "households": frame["households"].astype("int64"),
        }
    )
    copy_frame(conn, "grid_share", list(out.columns), out)
    return len(out)


def of_grids(conn: Connection, *, codes=None, courtyards=None, at: datetime | None = None) -> pd.DataFrame:
    """Shares of the micro-grid versions valid at ``at`` (all, of ``codes``, or of grids in ``courtyards``):
    COLUMNS plus the grid's parent code and multipart flag."""
    where, params = as_of(at, "g")
    if codes is not None:
        where += " AND g.code = ANY(:codes)"
        params["codes"] = list(codes)
    if courtyards is not None:
        where += " AND g.parent_code = ANY(:yards)"
        params["yards"] = list(courtyards)
    rows = conn.execute(
        sa.text(f"""
        SELECT g.code, s.building_code, s.unit, s.floor_from, s.floor_to, s.households, g.parent_code, g.multipart
        FROM grid_share s JOIN grid g ON g.id = s.grid_id
        WHERE {where} ORDER BY g.code, s.building_code, s.unit, s.floor_from"""),
        params,
    )
    # plain tuples: pandas probes each Row object for named-tuple fields (3x the time at city scale)
    return pd.DataFrame([tuple(r) for r in rows.all()], columns=[*COLUMNS, "parent_code", "multipart"])


def digest(conn: Connection) -> tuple:
    """A digest of the current micro-grids' shares and the current buildings (count and a sum of row
    hashes; the buildings' count and newest version): equal digests, the same shares and footprints."""
    return tuple(
        conn.execute(
            sa.text("""
            SELECT s.n, s.h, b.n, b.newest FROM
              (SELECT count(*) AS n, coalesce(sum(hashtextextended(concat_ws(' ', g.code, s.building_code,
                      s.unit, s.floor_from, s.floor_to, s.households), 0)), 0) AS h
               FROM grid_share s JOIN grid g ON g.id = s.grid_id WHERE g.valid_to IS NULL) s,
              (SELECT count(*) AS n, max(id) AS newest FROM building WHERE valid_to IS NULL) b""")
        ).one()
    )


def change_count(conn: Connection) -> int:
    """How many statements have written shares or buildings (``share_change``, migration 0017)."""
    return conn.execute(sa.text("SELECT n FROM share_change WHERE id = 1")).scalar_one()


def any_current(conn: Connection, codes) -> bool:
    """Whether a current version of any grid of ``codes`` holds shares."""
    return conn.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM grid g JOIN grid_share s ON s.grid_id = g.id "
            "WHERE g.code = ANY(:codes) AND g.valid_to IS NULL)"
        ),
        {"codes": sorted(codes)},
    ).scalar_one()


def shared_under(conn: Connection, lon, lat) -> tuple[list[tuple[int, str]], pd.DataFrame | None]:
    """For a few points (storage lon/lat): (point index, building code) of every current building
    whose footprint covers the point and whose floors more than one current micro-grid holds, and
    those buildings' shares (COLUMNS; None when there is none, so that the usual answer does not load
    pandas).  What a command answering a few lookups needs, without reading the whole city's shares."""
    hits = conn.execute(
        sa.text("""
        SELECT p.i - 1, b.code
        FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
        JOIN building b ON b.valid_to IS NULL
         AND ST_Covers(b.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
        WHERE (SELECT count(DISTINCT g.code) FROM grid_share s JOIN grid g ON g.id = s.grid_id
               WHERE s.building_code = b.code AND g.valid_to IS NULL) > 1
        ORDER BY 1, 2"""),
        {"xs": [float(v) for v in lon], "ys": [float(v) for v in lat]},
    ).all()
    found = [(int(i), code) for i, code in hits]
    if not found:  # the usual answer: no second query
        return found, None
    return found, of_buildings(conn, sorted({code for _, code in found}))


def of_buildings(conn: Connection, codes) -> pd.DataFrame:
    """Shares (COLUMNS) of the current micro-grids in the buildings ``codes``."""
    rows = conn.execute(
        sa.text("""
        SELECT g.code, s.building_code, s.unit, s.floor_from, s.floor_to, s.households
        FROM grid_share s JOIN grid g ON g.id = s.grid_id
        WHERE g.valid_to IS NULL AND s.building_code = ANY(:codes)
        ORDER BY g.code, s.building_code, s.unit, s.floor_from"""),
        {"codes": list(codes)},
    ).all()
    return pd.DataFrame(rows, columns=COLUMNS)


def of_building(conn: Connection, building: str, at: datetime | None = None) -> list[tuple]:
    """(code, unit, floor_from, floor_to, households) of every micro-grid version valid at ``at`` holding
    floors of ``building``."""
    where, params = as_of(at, "g")
    return conn.execute(
        sa.text(f"""
        SELECT g.code, s.unit, s.floor_from, s.floor_to, s.households FROM grid_share s
        JOIN grid g ON g.id = s.grid_id WHERE s.building_code = :b AND {where}
        ORDER BY g.code, s.unit, s.floor_from"""),
        {**params, "b": building},
    ).all()


def units(conn: Connection, *, courtyards=None, at: datetime | None = None) -> list[tuple]:
    """Units of the building versions valid at ``at``: (building code, courtyard code, number, households,
    floors, floor households or None)."""
    where, params = as_of(at, "b")
    if courtyards is not None:
        where += " AND b.courtyard_code = ANY(:yards)"
        params["yards"] = list(courtyards)
    return conn.execute(
        sa.text(f"""
        SELECT b.code, b.courtyard_code, u.number, u.households, coalesce(u.floors, b.floors), u.floor_households
        FROM unit u JOIN building b ON b.id = u.building_id WHERE {where} ORDER BY b.code, u.number"""),
        params,
    ).all()
