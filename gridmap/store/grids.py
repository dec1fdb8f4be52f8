"""SQL for grids: versions (as of a date, lock, close, open, re-parent, history),
current-version reads, chains, search, statistics and the lookup index's inputs.

This is the only module that closes or opens grid versions.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

import lazy_loader
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..domain.boundaries import Grid
from ..domain.levels import ALL_LEVELS
from ..errors import Conflict
from .db import close_versions, copy_frame, ewkb_hex, iso

pd = lazy_loader.load("pandas")

_COLS = "id, code, name, level, kind, parent_code, households, population, ST_AsBinary(geom) AS wkb"


def as_of(at: datetime | None, alias: str = "") -> tuple[str, dict]:
    """WHERE fragment selecting the versions valid at ``at`` (None: the current ones)."""
    p = f"{alias}." if alias else ""
    if at is None:
        return f"{p}valid_to IS NULL", {}
    return f"{p}valid_from <= :at AND ({p}valid_to IS NULL OR {p}valid_to > :at)", {"at": at}


def _grids(rows) -> list[Grid]:
    return [
        Grid(
            code=r.code,
            name=r.name,
            level=r.level,
            parent_code=r.parent_code,
            geom=shapely.from_wkb(bytes(r.wkb)),
            households=int(r.households),
            population=int(r.population),
            kind=r.kind,
            version=int(r.id),
        )
        for r in rows
    ]


# --- versions ---------------------------------------------------------------------------


def lock(conn: Connection, codes) -> dict[str, int]:
    """Lock the current versions of ``codes`` until the transaction ends; their version ids.
    Every edit locks its grids' parent too, so two edits in one parent run one after the other."""
    rows = conn.execute(
        sa.text("SELECT code, id FROM grid WHERE code = ANY(:codes) AND valid_to IS NULL ORDER BY code FOR UPDATE"),
        {"codes": sorted(set(codes))},
    ).all()
    return {code: int(i) for code, i in rows}


def close(conn: Connection, codes, at: datetime) -> int:
    """End the current versions of ``codes`` at ``at`` (history is kept). Returns how many were closed."""
    return close_versions(conn, "grid", codes, at)


def insert(conn: Connection, frame: pd.DataFrame, valid_from: datetime) -> int:
    """Bulk-insert checked grids (see ingest.read_grids) as versions starting at ``valid_from``."""
    out = pd.DataFrame(
        {
            "code": frame["code"],
            "name": frame["name"],
            "level": frame["level"],
            "kind": frame["kind"],
            "parent_code": frame["parent_code"],
            "households": frame["households"],
            "population": frame["population"],
            "geom": ewkb_hex(frame["geometry"]),
            "valid_from": valid_from.isoformat(),
        }
    )
    with code_rules():
        copy_frame(conn, "grid", list(out.columns), out)
    return len(out)


def set_multipart(conn: Connection, codes) -> int:
    """Declare the current versions of ``codes`` allowed in several pieces (a grid across a road)."""
    codes = list(codes)
    if not codes:
        return 0
    return conn.execute(
        sa.text("UPDATE grid SET multipart = true WHERE valid_to IS NULL AND code = ANY(:codes)"), {"codes": codes}
    ).rowcount


def open_versions(conn: Connection, grids: list[Grid], at: datetime) -> dict[str, int]:
    """Insert new versions (keeping each code's ``attrs`` and multipart flag); their ids."""
    if not grids:
        return {}
    frame = pd.DataFrame(
        {
            "code": [g.code for g in grids],
            "name": [g.name for g in grids],
            "level": [g.level for g in grids],
            "kind": [g.kind for g in grids],
            "parent_code": [g.parent_code for g in grids],
            "households": [int(g.households) for g in grids],
            "population": [int(g.population) for g in grids],
            "geom": ewkb_hex([g.geom for g in grids]),
        }
    )
    ids = {}
    for row in frame.itertuples(index=False):
        with code_rules():
            ids[row.code] = _insert_version(conn, row, at)
    return ids


def _insert_version(conn: Connection, row, at: datetime) -> int:
    return conn.execute(
        sa.text("""
            INSERT INTO grid (code, name, level, kind, parent_code, households, population, geom, valid_from, attrs,
                              multipart)
            VALUES (:code, :name, :level, :kind, :parent_code, :households, :population, ST_GeomFromEWKB(
                    decode(:geom, 'hex')), :at,
                    coalesce((SELECT attrs FROM grid WHERE code = :code ORDER BY valid_from DESC LIMIT 1), '{}'),
                    coalesce((SELECT multipart FROM grid WHERE code = :code ORDER BY valid_from DESC LIMIT 1), false))
            RETURNING id"""),
        {**row._asdict(), "at": at},
    ).scalar_one()


def reparent(conn: Connection, moves: dict[str, str], at: datetime, counts: dict | None = None) -> int:
    """New versions of children under their new parents (same geometry and multipart flag; same counts
    unless ``counts`` gives a child's (households, population))."""
    if not moves:
        return 0
    codes = list(moves)
    counts = counts or {}
    conn.execute(
        sa.text("""
        CREATE TEMP TABLE _moves (code text PRIMARY KEY, parent text, households int, population int)
        ON COMMIT DROP""")
    )
    conn.execute(
        sa.text("INSERT INTO _moves VALUES (:c, :p, :h, :n)"),
        [
            {"c": c, "p": p, "h": counts.get(c, (None, None))[0], "n": counts.get(c, (None, None))[1]}
            for c, p in moves.items()
        ],
    )
    conn.execute(
        sa.text("""
        CREATE TEMP TABLE _old ON COMMIT DROP AS
        SELECT g.* FROM grid g WHERE g.code = ANY(:codes) AND g.valid_to IS NULL"""),
        {"codes": codes},
    )
    close(conn, codes, at)
    return conn.execute(
        sa.text("""
        INSERT INTO grid (code, name, level, kind, parent_code, households, population, geom, valid_from, attrs,
                          multipart)
        SELECT o.code, o.name, o.level, o.kind, m.parent, coalesce(m.households, o.households),
               coalesce(m.population, o.population), o.geom, :at, o.attrs, o.multipart
        FROM _old o JOIN _moves m ON m.code = o.code"""),
        {"at": at},
    ).rowcount


def versions_of(conn: Connection, code: str) -> list[dict]:
    """Every version of ``code``, oldest first, with its area (m², EPSG:4547) and outline as GeoJSON."""
    rows = (
        conn.execute(
            sa.text("""
        SELECT id, name, level, kind, parent_code, households, population, valid_from, valid_to,
               ST_Area(ST_Transform(geom, 4547)) AS area_m2, ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS g
        FROM grid WHERE code = :code ORDER BY valid_from"""),
            {"code": code},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def versions(conn: Connection, codes) -> dict[str, int]:
    """The current version id of each of ``codes``."""
    rows = conn.execute(
        sa.text("SELECT code, id FROM grid WHERE code = ANY(:codes) AND valid_to IS NULL"), {"codes": list(codes)}
    ).all()
    return {code: int(i) for code, i in rows}


# --- current grids as domain objects ----------------------------------------------------


def current(conn: Connection, codes) -> dict[str, Grid]:
    rows = conn.execute(
        sa.text(f"SELECT {_COLS} FROM grid WHERE code = ANY(:codes) AND valid_to IS NULL"), {"codes": list(codes)}
    ).all()
    return {g.code: g for g in _grids(rows)}


def siblings(conn: Connection, parent_code: str | None, level: str) -> list[Grid]:
    """Current grids of ``level`` under ``parent_code`` (all districts for the top level)."""
    if parent_code is None:
        rows = conn.execute(
            sa.text(f"SELECT {_COLS} FROM grid WHERE level = :level AND valid_to IS NULL"), {"level": level}
        ).all()
    else:
        rows = conn.execute(
            sa.text(f"SELECT {_COLS} FROM grid WHERE parent_code = :p AND level = :level AND valid_to IS NULL"),
            {"p": parent_code, "level": level},
        ).all()
    return _grids(rows)


def children(conn: Connection, parents) -> list[Grid]:
    """The current children of ``parents`` (not their special grids)."""
    return _under(conn, parents, special=False)


def specials_of(conn: Connection, parents) -> list[Grid]:
    """The current special grids (schools, markets, …) of the communities ``parents``."""
    return _under(conn, parents, special=True)


def _under(conn: Connection, parents, *, special: bool) -> list[Grid]:
    level = "level = 'special'" if special else "level <> 'special'"
    rows = conn.execute(
        sa.text(f"SELECT {_COLS} FROM grid WHERE parent_code = ANY(:p) AND valid_to IS NULL AND {level}"),
        {"p": list(parents)},
    ).all()
    return _grids(rows)


def current_children(conn: Connection, parents, level: str = "micro") -> list[str]:
    """Codes of the current grids of ``level`` under ``parents``."""
    return (
        conn.execute(
            sa.text(
                "SELECT code FROM grid WHERE level = :level AND valid_to IS NULL "
                "AND parent_code = ANY(:parents) ORDER BY code"
            ),
            {"level": level, "parents": list(parents)},
        )
        .scalars()
        .all()
    )


def current_codes(conn: Connection, level: str | None = None) -> set[str]:
    """Codes of current grids (optionally of one level)."""
    sql = "SELECT code FROM grid WHERE valid_to IS NULL"
    params = {}
    if level is not None:
        sql += " AND level = :level"
        params["level"] = level
    return set(conn.execute(sa.text(sql), params).scalars())


def last_numbers(conn: Connection, prefixes, width: int) -> dict[str, int]:
    """For each prefix, the highest ``width``-digit number ever issued after it (0 when none)."""
    rows = conn.execute(
        sa.text("""
        SELECT left(code, length(code) - :w) AS prefix, max(right(code, :w)::int) AS n
        FROM grid_code
        WHERE left(code, length(code) - :w) = ANY(:prefixes) AND right(code, :w) ~ ('^[0-9]{' || :w || '}$')
        GROUP BY 1"""),
        {"w": width, "prefixes": sorted(set(prefixes))},
    ).all()
    found = {p: int(n) for p, n in rows}
    return {p: found.get(p, 0) for p in prefixes}


def issued(conn: Connection, codes) -> dict[str, tuple[str, datetime | None]]:
    """Codes of ``codes`` ever issued: their level and when they were retired (None: still live)."""
    rows = conn.execute(
        sa.text("SELECT code, level, retired_at FROM grid_code WHERE code = ANY(:c)"), {"c": sorted(set(codes))}
    ).all()
    return {c: (level, retired) for c, level, retired in rows}


def _like(text: str) -> str:
    """``text`` with LIKE's wildcards escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def code_exists(conn: Connection, code: str) -> bool:
    """Whether ``code`` was ever issued (current or retired)."""
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM grid_code WHERE code = :c)"), {"c": code}).scalar_one()


@contextmanager
def code_rules():
    """Turn the database's refusal of a retired code, or of a code issued for another level
    (migration 0007's trigger), into Conflict (409) with the trigger's message."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint in ("grid_code_retired", "grid_code_level"):
            raise Conflict(str(getattr(exc.orig.diag, "message_primary", "") or exc.orig)) from None
        raise


# --- reads ------------------------------------------------------------------------------


def count(conn: Connection, *, level: str | None = None, at: datetime | None = None) -> int:
    where, params = as_of(at)
    if level is not None:
        where += " AND level = :level"
        params["level"] = level
    return conn.execute(sa.text(f"SELECT count(*) FROM grid WHERE {where}"), params).scalar_one()


def frame(eng: Engine, *, level: str | None = None, at: datetime | None = None) -> pd.DataFrame:
    """Grids valid at ``at`` (default now) with shapely geometries, for validation and export."""
    where, params = as_of(at)
    if level is not None:
        where += " AND level = :level"
        params["level"] = level
    sql = (
        f"SELECT code, name, level, kind, parent_code, households, population, multipart, valid_from, valid_to, "
        f"ST_AsBinary(geom) AS wkb FROM grid WHERE {where} ORDER BY id"
    )
    with eng.connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    out = pd.DataFrame(
        rows,
        columns=[
            "code",
            "name",
            "level",
            "kind",
            "parent_code",
            "households",
            "population",
            "multipart",
            "valid_from",
            "valid_to",
            "wkb",
        ],
    )
    out["geometry"] = shapely.from_wkb(out.pop("wkb").map(bytes).to_numpy()) if len(out) else []
    return out


def chain(conn: Connection, code: str, at: datetime | None = None) -> list[dict]:
    """The grid ``code`` and its ancestors, top first, as valid at ``at``."""
    where, params = as_of(at)
    g_where, _ = as_of(at, "g")
    sql = f"""
    WITH RECURSIVE up AS (
        SELECT code, name, level, parent_code, 0 AS depth FROM grid WHERE code = :code AND {where}
        UNION ALL
        SELECT g.code, g.name, g.level, g.parent_code, up.depth + 1
        FROM grid g JOIN up ON g.code = up.parent_code
        WHERE {g_where} AND up.depth < 10
    )
    SELECT code, name, level FROM up ORDER BY depth DESC"""
    return [dict(r._mapping) for r in conn.execute(sa.text(sql), {"code": code, **params})]


def feature(conn: Connection, code: str, at: datetime | None = None, *, last: bool = False) -> dict | None:
    """One grid as a GeoJSON Feature (RFC 7946); None when unknown.  ``last``: its latest version,
    current or not (a retired grid's last state).  (Its people are personal data: the services add
    them from :mod:`.people` and the web layer shows them as the caller's role may see them.)"""
    where, params = ("TRUE", {}) if last else as_of(at)
    row = (
        conn.execute(
            sa.text(f"""
        SELECT id, code, name, level, kind, parent_code, households, population, valid_from, valid_to,
               ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS geometry,
               ST_Area(ST_Transform(geom, 4547)) AS area_m2
        FROM grid WHERE code = :code AND {where} ORDER BY valid_from DESC LIMIT 1"""),
            {"code": code, **params},
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    props = {k: row[k] for k in ("code", "name", "level", "kind", "parent_code", "households", "population")}
    props["valid_from"] = iso(conn, row["valid_from"])
    props["valid_to"] = iso(conn, row["valid_to"])
    props["area_m2"] = round(row["area_m2"], 1)
    props["version_id"] = row["id"]  # the web layer turns it into the version's ETag
    if not last:
        props["children"] = conn.execute(
            sa.text(f"SELECT count(*) FROM grid WHERE parent_code = :code AND {where}"), {"code": code, **params}
        ).scalar_one()
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


def search(conn: Connection, q: str, limit: int = 10) -> list[dict]:
    """Current grids whose code starts with ``q`` or whose name contains it, best first, with bounds."""
    rows = (
        conn.execute(
            sa.text("""
        SELECT code, name, level, kind, ST_XMin(b) AS x0, ST_YMin(b) AS y0, ST_XMax(b) AS x1, ST_YMax(b) AS y1
        FROM (SELECT code, name, level, kind, geom::box2d AS b,
                     CASE WHEN code = :q THEN 0 WHEN name = :q THEN 1 WHEN code LIKE :prefix THEN 2 ELSE 3 END AS rank
              FROM grid WHERE valid_to IS NULL AND (code LIKE :prefix OR name LIKE :contains)) s
        ORDER BY rank, length(name), code LIMIT :limit"""),
            {"q": q, "prefix": _like(q) + "%", "contains": "%" + _like(q) + "%", "limit": limit},
        )
        .mappings()
        .all()
    )
    return [
        {
            "code": r["code"],
            "name": r["name"],
            "level": r["level"],
            "kind": r["kind"],
            "bbox": [r["x0"], r["y0"], r["x1"], r["y1"]],
        }
        for r in rows
    ]


def successors(conn: Connection, code: str, min_m2: float = 1.0) -> list[dict]:
    """Current grids of the same level holding part of ``code``'s last version: where a retired grid's
    area went, largest share first (pieces under ``min_m2`` m², EPSG:4547, are ignored)."""
    rows = conn.execute(
        sa.text("""
        WITH last AS (SELECT geom, level FROM grid WHERE code = :code ORDER BY valid_from DESC LIMIT 1)
        SELECT code, name, area_m2 FROM (
            SELECT g.code, g.name, ST_Area(ST_Transform(ST_Intersection(g.geom, l.geom), 4547)) AS area_m2
            FROM grid g, last l
            WHERE g.valid_to IS NULL AND g.level = l.level AND g.code <> :code AND g.geom && l.geom
              AND ST_Intersects(g.geom, l.geom)) s
        WHERE area_m2 > :min ORDER BY area_m2 DESC, code"""),
        {"code": code, "min": min_m2},
    ).all()
    return [{"code": c, "name": n, "area_m2": round(float(a), 1)} for c, n, a in rows]


def search_retired(conn: Connection, q: str, limit: int = 10) -> list[dict]:
    """Retired grids whose code starts with ``q``: their last name and bounds, when they were retired."""
    rows = conn.execute(
        sa.text("""
        SELECT c.code, c.level, c.retired_at, l.name, l.kind,
               ST_XMin(l.b) AS x0, ST_YMin(l.b) AS y0, ST_XMax(l.b) AS x1, ST_YMax(l.b) AS y1
        FROM grid_code c
        CROSS JOIN LATERAL (SELECT name, kind, geom::box2d AS b FROM grid g WHERE g.code = c.code
                            ORDER BY valid_from DESC LIMIT 1) l
        WHERE c.retired_at IS NOT NULL AND c.code LIKE :prefix
        ORDER BY c.code = :q DESC, c.code LIMIT :limit"""),
        {"q": q, "prefix": _like(q) + "%", "limit": limit},
    ).mappings()
    return [
        {
            "code": r["code"],
            "name": r["name"],
            "level": r["level"],
            "kind": r["kind"],
            "retired_at": iso(conn, r["retired_at"]),
            "bbox": [r["x0"], r["y0"], r["x1"], r["y1"]],
        }
        for r in rows
    ]


def micro_households(conn: Connection, at: datetime | None = None) -> list[int]:
    """Households of every micro-grid current (or valid at ``at``): the statistics panel's histogram."""
    when, params = as_of(at)
    return [
        r[0] for r in conn.execute(sa.text(f"SELECT households FROM grid WHERE {when} AND level = 'micro'"), params)
    ]


def labels(conn: Connection, level: str, bbox, at: datetime | None = None, limit: int = 500) -> list[dict]:
    """Code, name and a point inside each grid of ``level`` meeting ``bbox`` (current, or valid at ``at``),
    largest first, at most ``limit``: where the map writes grid names."""
    when, params = as_of(at)
    rows = conn.execute(
        sa.text(f"""
        SELECT code, name, ST_X(p) AS lon, ST_Y(p) AS lat FROM (
            SELECT code, name, ST_PointOnSurface(geom) AS p, ST_Area(geom) AS a FROM grid
            WHERE {when} AND level = :level AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)) s
        ORDER BY a DESC, code LIMIT :limit"""),
        {**params, "level": level, "limit": limit, **dict(zip(("x0", "y0", "x1", "y1"), bbox))},
    ).mappings()
    return [dict(r) for r in rows]


def first_valid_from(conn: Connection) -> datetime | None:
    """When the oldest stored grid version begins (None without grids): no boundaries exist before it."""
    return conn.execute(sa.text("SELECT min(valid_from) FROM grid")).scalar_one()


def stats(conn: Connection, at: datetime | None = None) -> dict:
    """Counts and households per level of the current version (or the one valid at ``at``), plus
    buildings and units."""
    when, params = as_of(at)
    rows = (
        conn.execute(
            sa.text(f"""
        SELECT level, count(*) AS grids, coalesce(sum(households), 0) AS households,
               coalesce(sum(population), 0) AS population
        FROM grid WHERE {when} GROUP BY level"""),
            params,
        )
        .mappings()
        .all()
    )
    found = {r["level"]: r for r in rows}
    levels = {  # district → micro, then special
        level: {"grids": r["grids"], "households": int(r["households"]), "population": int(r["population"])}
        for level in ALL_LEVELS
        if (r := found.get(level)) is not None
    }
    b = (
        conn.execute(
            sa.text(f"""
        SELECT count(DISTINCT b.id) AS buildings, count(u.number) AS units, coalesce(sum(u.households), 0) AS hh
        FROM building b LEFT JOIN unit u ON u.building_id = b.id WHERE {as_of(at, "b")[0]}"""),
            params,
        )
        .mappings()
        .one()
    )
    epoch = conn.execute(sa.text("SELECT epoch, changed_at FROM grid_epoch WHERE id = 1")).mappings().first()
    return {
        "levels": levels,
        "buildings": b["buildings"],
        "units": b["units"],
        "building_households": int(b["hh"]),
        "epoch": epoch["epoch"] if epoch else 0,
        "changed_at": iso(conn, epoch["changed_at"]) if epoch else None,
    }


def extent(conn: Connection) -> tuple[float, float, float, float] | None:
    """Bounds (minx, miny, maxx, maxy) of the current grids, None when empty."""
    row = conn.execute(
        sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM grid WHERE valid_to IS NULL) s"
        )
    ).first()
    return None if row is None or row[0] is None else tuple(row)


def courtyards(conn: Connection, *, codes=None, community: str | None = None) -> list:
    """Current courtyards (code, name, parent, WKB, households, population) chosen by codes, by
    community, or all."""
    where, params = "level = 'courtyard' AND valid_to IS NULL", {}
    if codes is not None:
        where += " AND code = ANY(:codes)"
        params["codes"] = list(codes)
    if community is not None:
        where += " AND parent_code = :community"
        params["community"] = community
    return conn.execute(
        sa.text(
            f"SELECT code, name, parent_code, ST_AsBinary(geom), households, population "
            f"FROM grid WHERE {where} ORDER BY code"
        ),
        params,
    ).all()


# --- lookup support -------------------------------------------------------------------


def epoch(conn: Connection) -> int:
    """The grid change counter (bumped by every write to ``grid``)."""
    return conn.execute(sa.text("SELECT epoch FROM grid_epoch WHERE id = 1")).scalar_one()


def epoch_raw(dbapi_conn) -> int:
    """The grid epoch over a plain psycopg connection (prepared; the lookup hot path)."""
    return dbapi_conn.execute("SELECT epoch FROM grid_epoch WHERE id = 1", prepare=True).fetchone()[0]


def index_frame(conn: Connection, at: datetime | None = None, codes=None) -> pd.DataFrame:
    """Grids valid at ``at`` for the lookup index: every level's code, name, parent; geometry of
    micro-grids and special grids only (the chain above comes from parent links).  ``codes``: only
    these grids (an index's update)."""
    where, params = as_of(at)
    if codes is not None:
        where += " AND code = ANY(:codes)"
        params["codes"] = list(codes)
    rows = conn.execute(
        sa.text(
            f"SELECT id, code, name, level, parent_code, CASE WHEN level IN ('micro', 'special') "
            f"THEN ST_AsBinary(geom) END AS wkb FROM grid WHERE {where}"
        ),
        params,
    ).all()
    out = pd.DataFrame(rows, columns=["id", "code", "name", "level", "parent_code", "wkb"])
    out["geometry"] = shapely.from_wkb(out.pop("wkb").map(lambda b: None if b is None else bytes(b)).to_numpy())
    return out


def empty_index_frame() -> pd.DataFrame:
    """:func:`index_frame`'s columns without rows (before the first version)."""
    return pd.DataFrame({c: [] for c in ("id", "code", "name", "level", "parent_code", "geometry")})


def version_digest(conn: Connection, at: datetime | None = None) -> str:
    """A digest of the grid versions valid at ``at`` (their ids and start times), and of the database
    they live in: equal digests, equal grids, however ``at`` was written.  The versions enter as an
    order-free XOR of PostgreSQL's 64-bit hashes of each (id, start), with their count: for the current
    ones an index-only scan (migration 0020), ~13 ms on the bench city where an md5 of every version
    in id order, read from the table, took ~110 ms of every fresh process's first lookup."""
    where, params = as_of(at)
    return conn.execute(
        sa.text(
            "SELECT md5((SELECT oid::text FROM pg_database WHERE datname = current_database()) || ':' || "
            "count(*) || ':' || coalesce(bit_xor(hashint8extended(id, 0) "
            "# timestamp_hash_extended(valid_from AT TIME ZONE 'UTC', id)), 0)) "
            f"FROM grid WHERE {where}"
        ),
        params,
    ).scalar_one()


def current_versions(conn: Connection, skip) -> tuple[list[str], list[int]]:
    """(codes, version ids) of the current grids, by code, leaving out the codes ``skip``."""
    rows = conn.execute(
        sa.text('SELECT code, id FROM grid WHERE valid_to IS NULL AND NOT code = ANY(:skip) ORDER BY code COLLATE "C"'),
        {"skip": list(skip)},
    ).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def version_instants(conn: Connection) -> list[datetime]:
    """Every instant a grid version started or ended, ascending: the versions in force are the same
    from one instant until the next."""
    rows = conn.execute(
        sa.text("SELECT valid_from FROM grid UNION SELECT valid_to FROM grid WHERE valid_to IS NOT NULL ORDER BY 1")
    )
    return [r[0] for r in rows]


def database_id(conn: Connection) -> str:
    """Which database this is (server address, name and oid), for persisted indexes."""
    return conn.execute(
        sa.text(
            "SELECT coalesce(inet_server_addr()::text, 'local') || ':' || coalesce(inet_server_port(), 0) || '/' "
            "|| current_database() || '#' || (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    ).scalar_one()


def lookup_sql(conn: Connection, lon: float, lat: float, at: datetime | None = None) -> dict | None:
    """One point answered by PostGIS alone, in one statement (``ST_Covers`` on the GiST index, lowest
    code wins): micro-grid, chain top first and special grids; None outside.  The reference for the
    in-memory index, and the HTTP benchmark's competitor."""
    g_where, params = as_of(at, "g")
    row = conn.execute(
        sa.text(f"""
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
        {"lon": lon, "lat": lat, **params},
    ).one()
    if row[0] is None:
        return None
    return {"micro": row[0], "chain": row[1], "specials": row[2]}


def inside_point(conn: Connection) -> tuple[float, float] | None:
    """A point (lon, lat) inside the current micro-grid of lowest code; None when there is none."""
    row = conn.execute(
        sa.text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid "
            "WHERE level = 'micro' AND valid_to IS NULL ORDER BY code LIMIT 1) AS first"
        )
    ).first()
    return (row[0], row[1]) if row else None


#: The channel ``grid_bump_epoch()`` announces every new grid epoch on (its payload: the epoch).
EPOCH_CHANNEL = "gridmap_grids"

#: The channel migration 0018's triggers announce each epoch's box on: "<epoch> <xmin> <ymin> <xmax>
#: <ymax>" (lon/lat of every grid row the statement touched, old versions and new), "<epoch> -" (no
#: row), "<epoch> *" (a grid of another level than micro or special: no box).
BOX_CHANNEL = "gridmap_grid_boxes"

#: An announced box: nothing changed.
NO_CHANGE = ()


def listen_epoch(dbapi_conn) -> int:
    """LISTEN for new grid epochs (and their boxes) on a plain autocommit psycopg connection; the
    epoch now (read after the LISTEN, so no bump between the two is missed)."""
    dbapi_conn.execute(f"LISTEN {EPOCH_CHANNEL}")
    dbapi_conn.execute(f"LISTEN {BOX_CHANNEL}")
    return epoch_raw(dbapi_conn)


def announced(dbapi_conn) -> tuple[list[int], list[tuple[int, tuple | None]]]:
    """The epochs announced on a listening connection since the last call, without waiting, and the
    boxes announced with them: (epoch, (xmin, ymin, xmax, ymax)), (epoch, NO_CHANGE) for a statement
    that touched no row, (epoch, None) for one no box describes."""
    epochs, boxes = [], []
    for n in dbapi_conn.notifies(timeout=0):
        if n.channel == EPOCH_CHANNEL:
            epochs.append(int(n.payload))
        elif n.channel == BOX_CHANNEL:
            epoch, _, rest = n.payload.partition(" ")
            parts = rest.split()
            box = NO_CHANGE if parts == ["-"] else tuple(map(float, parts)) if len(parts) == 4 else None
            boxes.append((int(epoch), box))
    return epochs, boxes


def register_listener(dbapi_conn, epoch: int) -> datetime:
    """Enter a listening connection in ``epoch_listener`` as having heard of ``epoch`` (rows of
    backends no longer running are deleted first); its backend's start time, which with its pid
    names the row.  Acknowledgements need no durability: the session commits without waiting for
    the log, and a backend whose client vanished without closing (a machine gone) is found out by
    TCP keepalives within half a minute."""
    dbapi_conn.execute(
        "SET synchronous_commit = off; SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
        "SET tcp_keepalives_count = 3"
    )
    dbapi_conn.execute(
        "DELETE FROM epoch_listener l WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
        "WHERE a.pid = l.pid AND a.backend_start = l.backend_start)"
    )
    return dbapi_conn.execute(
        "INSERT INTO epoch_listener (pid, backend_start, epoch) SELECT pid, backend_start, %s "
        "FROM pg_stat_activity WHERE pid = pg_backend_pid() ON CONFLICT (pid, backend_start) "
        "DO UPDATE SET epoch = EXCLUDED.epoch, seen_at = now() RETURNING backend_start",
        (epoch,),
    ).fetchone()[0]


def acknowledge_epoch(dbapi_conn, backend_start: datetime, epoch: int) -> None:
    """A listening connection has heard of ``epoch`` (and is alive now: ``seen_at``); its row is
    written again if it was removed."""
    dbapi_conn.execute(
        "INSERT INTO epoch_listener (pid, backend_start, epoch) VALUES (pg_backend_pid(), %s, %s) "
        "ON CONFLICT (pid, backend_start) DO UPDATE SET epoch = GREATEST(epoch_listener.epoch, EXCLUDED.epoch), "
        "seen_at = now()",
        (backend_start, epoch),
        prepare=True,
    )


def listeners_behind(conn: Connection, epoch: int, fresh_s: float) -> list[int]:
    """The pids of the running listening backends that have not yet acknowledged ``epoch``, among
    those seen alive in the last ``fresh_s`` seconds (read in a statement of its own: run it on an
    autocommit connection, as ``pg_stat_activity`` is otherwise one snapshot per transaction)."""
    return list(
        conn.execute(
            sa.text(
                "SELECT l.pid FROM epoch_listener l JOIN pg_stat_activity a "
                "ON a.pid = l.pid AND a.backend_start = l.backend_start "
                "WHERE l.epoch < :epoch AND l.seen_at > now() - make_interval(secs => :fresh) ORDER BY l.pid"
            ),
            {"epoch": epoch, "fresh": fresh_s},
        ).scalars()
    )
