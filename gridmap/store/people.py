"""People, their dated posts on grids, party organisations over grids (tables of migration 0011).

Every statement about ``person``, ``grid_post``, ``party_org`` and ``party_org_grid`` is here.
Posts and organisation coverage are dated like grids: a change closes the current row at the
moment of the change and opens a new one, so "who served M1 on 1 March" stays answerable.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

POST_FIELDS = (
    "id",
    "person_id",
    "name",
    "phone",
    "role",
    "grid_code",
    "building_code",
    "unit",
    "valid_from",
    "valid_to",
)
_POSTS = """
SELECT p.id, p.person_id, pe.name, pe.phone, p.role, p.grid_code, p.building_code, p.unit, p.valid_from, p.valid_to
FROM grid_post p JOIN person pe ON pe.id = p.person_id
"""


def _valid(alias: str, at: datetime | None) -> tuple[str, dict]:
    """WHERE fragment for rows of ``alias`` valid at ``at`` (None: current)."""
    if at is None:
        return f"{alias}.valid_to IS NULL", {}
    return f"{alias}.valid_from <= :at AND ({alias}.valid_to IS NULL OR {alias}.valid_to > :at)", {"at": at}


# --- what a roster may point at -----------------------------------------------------------------


def grid_levels(conn: Connection) -> dict[str, str]:
    """Current grid codes → level."""
    return dict(conn.execute(sa.text("SELECT code, level FROM grid WHERE valid_to IS NULL")).all())


def building_units(conn: Connection) -> dict[str, tuple[str, list[int]]]:
    """Current building codes → (courtyard code, unit numbers)."""
    rows = conn.execute(
        sa.text(
            "SELECT b.code, b.courtyard_code, coalesce(array_agg(u.number ORDER BY u.number) "
            "FILTER (WHERE u.number IS NOT NULL), '{}') FROM building b LEFT JOIN unit u ON u.building_id = b.id "
            "WHERE b.valid_to IS NULL GROUP BY b.code, b.courtyard_code"
        )
    )
    return {code: (yard, list(units)) for code, yard, units in rows}


# --- people and posts ---------------------------------------------------------------------------


def person_ids(conn: Connection) -> dict:
    """Every person by who they are: ID-card hash when known, else (name, phone) → id."""
    out = {}
    for pid, name, phone, id_hash in conn.execute(sa.text("SELECT id, name, phone, id_card_hash FROM person")):
        out[id_hash or (name, phone)] = pid
    return out


def insert_persons(conn: Connection, people: list[dict]) -> list[int]:
    """Insert ``people`` (name, phone, id_hash, party_member); their new ids in order (taken from the
    sequence first, so the order does not rest on what INSERT … RETURNING happens to return)."""
    if not people:
        return []
    ids = list(
        conn.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence('person', 'id')) FROM generate_series(1, :n)"),
            {"n": len(people)},
        ).scalars()
    )
    conn.execute(
        sa.text(
            "INSERT INTO person (id, name, phone, id_card_hash, party_member) SELECT * FROM "
            "unnest(CAST(:i AS bigint[]), CAST(:n AS text[]), CAST(:p AS text[]), CAST(:h AS text[]), "
            "CAST(:m AS boolean[]))"
        ),
        {
            "i": ids,
            "n": [p["name"] for p in people],
            "p": [p["phone"] for p in people],
            "h": [p["id_hash"] for p in people],
            "m": [bool(p["party_member"]) for p in people],
        },
    )
    return ids


def mark_party_members(conn: Connection, ids) -> None:
    conn.execute(sa.text("UPDATE person SET party_member = true WHERE id = ANY(:ids)"), {"ids": list(ids)})


def insert_posts(conn: Connection, posts: list[dict]) -> int:
    """Insert posts (``person_id``, ``grid_code``, ``role``, ``building_code``, ``unit``, ``valid_from``)."""
    if not posts:
        return 0
    cols = ("person_id", "grid_code", "role", "building_code", "unit", "valid_from")
    conn.execute(
        sa.text(
            "INSERT INTO grid_post (person_id, grid_code, role, building_code, unit, valid_from) "
            "SELECT * FROM unnest(CAST(:person_id AS bigint[]), CAST(:grid_code AS text[]), CAST(:role AS text[]), "
            "CAST(:building_code AS text[]), CAST(:unit AS integer[]), CAST(:valid_from AS timestamptz[]))"
        ),
        {c: [p[c] for p in posts] for c in cols},
    )
    return len(posts)


def current_post_keys(conn: Connection, grid_codes=None) -> dict[tuple, int]:
    """Current posts (of ``grid_codes``, or all) by who holds which role where: (who — the ID hash,
    else (name, phone) —, role, grid code, building code, unit) → post id."""
    where = " AND p.grid_code = ANY(:codes)" if grid_codes is not None else ""
    rows = conn.execute(
        sa.text(
            "SELECT p.id, pe.id_card_hash, pe.name, pe.phone, p.role, p.grid_code, p.building_code, p.unit "
            f"FROM grid_post p JOIN person pe ON pe.id = p.person_id WHERE p.valid_to IS NULL{where}"
        ),
        {"codes": list(grid_codes or [])},
    )
    return {(h or (n, ph), r, g, b, u): i for i, h, n, ph, r, g, b, u in rows}


def close_posts(conn: Connection, ids, at: datetime) -> int:
    """End the current posts ``ids`` at ``at``; how many were closed."""
    res = conn.execute(
        sa.text("UPDATE grid_post SET valid_to = :at WHERE id = ANY(:ids) AND valid_to IS NULL"),
        {"ids": [int(i) for i in ids], "at": at},
    )
    return res.rowcount


def post(conn: Connection, post_id: int) -> dict | None:
    """One post with its person, None when unknown."""
    row = conn.execute(sa.text(_POSTS + " WHERE p.id = :id"), {"id": post_id}).first()
    return dict(zip(POST_FIELDS, row, strict=True)) if row else None


def posts(conn: Connection, *, grids=None, role=None, person_id=None, at=None, limit=None) -> list[dict]:
    """Posts valid at ``at`` (current when None), on any of ``grids``, of ``role``, of ``person_id``."""
    where, params = _valid("p", at)
    if grids is not None:
        where += " AND p.grid_code = ANY(:grids)"
        params["grids"] = list(grids)
    if role:
        where += " AND p.role = :role"
        params["role"] = role
    if person_id is not None:
        where += " AND p.person_id = :pid"
        params["pid"] = person_id
    sql = _POSTS + f" WHERE {where} ORDER BY p.grid_code, p.role, p.building_code, p.unit, p.id"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [dict(zip(POST_FIELDS, r, strict=True)) for r in conn.execute(sa.text(sql), params)]


def history(conn: Connection, person_id: int) -> list[dict]:
    """Every post a person has held, oldest first."""
    sql = _POSTS + " WHERE p.person_id = :pid ORDER BY p.valid_from, p.id"
    return [dict(zip(POST_FIELDS, r, strict=True)) for r in conn.execute(sa.text(sql), {"pid": person_id})]


def delete_person_data(conn: Connection) -> None:
    """Empty the people tables (``demo load --fresh``, tests)."""
    conn.execute(sa.text("TRUNCATE party_org_grid, party_org, grid_post, person RESTART IDENTITY CASCADE"))


# Coverage and load (see :mod:`gridmap.domain.coverage` for the rules), counted by PostGIS in two
# statements: the gaps, and each worker's load with the city's totals beside it.  A grid's community
# is found by walking down from every current community once (grids above communities have none).

COVERAGE_GAPS = """
WITH RECURSIVE below AS (
    SELECT code, code AS community FROM grid WHERE valid_to IS NULL AND level = 'community'
    UNION ALL
    SELECT g.code, below.community FROM grid g JOIN below ON g.parent_code = below.code
    WHERE g.valid_to IS NULL AND g.level <> 'community'
)
SELECT g.code, g.name, g.level, b.community, :no_worker AS problem
FROM grid g LEFT JOIN below b ON b.code = g.code
WHERE g.valid_to IS NULL AND g.level IN ('micro', 'special')
  AND NOT EXISTS (SELECT 1 FROM grid_post p WHERE p.grid_code = g.code AND p.valid_to IS NULL AND p.role = :worker)
UNION ALL
SELECT g.code, g.name, g.level, g.code, :no_org
FROM grid g
WHERE g.valid_to IS NULL AND g.level = 'community'
  AND NOT EXISTS (
    SELECT 1 FROM below b
    JOIN party_org_grid og ON og.grid_code = b.code AND og.valid_to IS NULL
    JOIN party_org o ON o.id = og.org_id AND o.valid_to IS NULL
    WHERE b.community = g.code)
ORDER BY code
"""

# Each worker (a person; the name joined to the rows kept) over the current grids they serve; a
# grid's households are shared between its workers; heaviest first, then most open cases.  Every row
# carries the totals (workers, overloaded), so a LIMIT keeps them.
COVERAGE_LOAD = """
WITH w AS (
    SELECT DISTINCT person_id, grid_code FROM grid_post WHERE valid_to IS NULL AND role = :worker),
s AS (SELECT grid_code, count(*) AS sharing FROM w GROUP BY grid_code),
r AS (SELECT micro_code AS code, count(*) AS n, count(*) FILTER (WHERE {overdue}) AS o
      FROM risk_element e WHERE micro_code IS NOT NULL GROUP BY micro_code),
c AS (SELECT micro_code AS code, count(*) AS n FROM report
      WHERE status = 'open' AND micro_code IS NOT NULL GROUP BY micro_code),
per AS (
    SELECT w.person_id, count(*) AS grids,
           sum(coalesce(g.households, 0))::bigint AS households,
           sum(coalesce(r.n, 0))::bigint AS risk_elements, sum(coalesce(r.o, 0))::bigint AS overdue_visits,
           sum(coalesce(c.n, 0))::bigint AS open_cases,
           round(sum(coalesce(g.households, 0)::numeric / s.sharing), 1)::float8 AS households_share
    FROM w JOIN grid g ON g.code = w.grid_code AND g.valid_to IS NULL
    JOIN s ON s.grid_code = w.grid_code
    LEFT JOIN r ON r.code = w.grid_code LEFT JOIN c ON c.code = w.grid_code
    GROUP BY w.person_id),
top AS (
    SELECT per.*, count(*) OVER () AS workers,
           count(*) FILTER (WHERE per.households_share > :most) OVER () AS overloaded_n
    FROM per ORDER BY households_share DESC, open_cases DESC, person_id LIMIT :limit)
SELECT top.person_id, pe.name, top.grids, top.households, top.risk_elements, top.overdue_visits, top.open_cases,
       top.households_share, top.households_share > :most, top.workers, top.overloaded_n
FROM top JOIN person pe ON pe.id = top.person_id
ORDER BY top.households_share DESC, top.open_cases DESC, top.person_id
"""
LOAD_FIELDS = (
    "person_id",
    "name",
    "grids",
    "households",
    "risk_elements",
    "overdue_visits",
    "open_cases",
    "households_share",
    "overloaded",
)


def coverage_gaps(conn: Connection, worker: str, no_worker: str, no_org: str) -> list[dict]:
    """Current micro and special grids with no current ``worker`` post (``problem`` = ``no_worker``)
    and current communities that no current party organisation covers, itself or a grid inside it
    (``no_org``): ``code``, ``name``, ``level``, ``community``, ``problem``, by code."""
    rows = conn.execute(sa.text(COVERAGE_GAPS), {"worker": worker, "no_worker": no_worker, "no_org": no_org})
    return [dict(zip(("code", "name", "level", "community", "problem"), r, strict=True)) for r in rows]


def coverage_load(
    conn: Connection, worker: str, overdue_sql: str, at: datetime, most: int, limit: int | None
) -> tuple[list[dict], dict]:
    """The ``limit`` (all when None) heaviest workers' load (:data:`LOAD_FIELDS`; overloaded: a
    households share above ``most``) and the totals: ``workers``, ``overloaded``, ``needing`` (current
    micro and special grids), ``communities``.  ``overdue_sql``: SQL boolean over the risk element
    ``e`` (bind ``:at``)."""
    conn.execute(sa.text("SELECT set_config('jit', 'off', true)"))  # compiling cost more than it saved
    rows = conn.execute(
        sa.text(COVERAGE_LOAD.format(overdue=overdue_sql)),
        {"worker": worker, "at": at, "most": most, "limit": None if limit is None else max(limit, 1)},
    ).all()
    needing, communities = conn.execute(
        sa.text(
            "SELECT count(*) FILTER (WHERE level IN ('micro', 'special')), count(*) FILTER (WHERE level = 'community') "
            "FROM grid WHERE valid_to IS NULL"
        )
    ).one()
    workers, overloaded = rows[0][len(LOAD_FIELDS) :] if rows else (0, 0)  # LIMIT 1 at least keeps them
    totals = {"workers": workers, "overloaded": overloaded, "needing": needing, "communities": communities}
    load = [dict(zip(LOAD_FIELDS, r[: len(LOAD_FIELDS)], strict=True)) for r in rows]
    return load if limit is None else load[:limit], totals


def workers_by_grid(conn: Connection, level: str = "micro", codes=None) -> dict[str, list[dict]]:
    """The current grid workers of the current grids of ``level`` (only ``codes``, when given) — name,
    role, phone as stored — by grid code.  Callers show them through the web layer's privacy rule."""
    out: dict[str, list[dict]] = {}
    only = "" if codes is None else " AND g.code = ANY(:codes)"
    rows = conn.execute(
        sa.text(
            "SELECT p.grid_code, pe.name, p.role, pe.phone FROM grid_post p JOIN person pe ON pe.id = p.person_id "
            f"JOIN grid g ON g.code = p.grid_code AND g.valid_to IS NULL AND g.level = :level{only} "
            "WHERE p.valid_to IS NULL AND p.role = 'grid_worker' ORDER BY p.id"
        ),
        {"level": level, "codes": list(codes or [])},
    )
    for code, name, role, phone in rows:
        out.setdefault(code, []).append({"name": name, "role": role, "phone": phone})
    return out
