"""People, their dated posts on grids, party organisations over grids (tables of migration 0011).

Every statement about ``person``, ``grid_post``, ``party_org`` and ``party_org_grid`` is here.
Posts and organisation coverage are dated like grids: a change closes the current row at the
moment of the change and opens a new one, so "who served M1 on 1 March" stays answerable.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
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


def frame(result, columns) -> pd.DataFrame:
    """Rows as a frame, through plain tuples (pandas inspects Row objects one by one: seconds per 100k)."""
    return pd.DataFrame([tuple(r) for r in result], columns=columns)


COVERAGE_COUNTS = """
WITH r AS (SELECT micro_code AS code, count(*) AS n, count(*) FILTER (WHERE {overdue}) AS o
           FROM risk_element e WHERE micro_code IS NOT NULL GROUP BY micro_code),
     c AS (SELECT micro_code AS code, count(*) AS n FROM report
           WHERE status = 'open' AND micro_code IS NOT NULL GROUP BY micro_code)
SELECT coalesce(r.code, c.code), coalesce(r.n, 0), coalesce(r.o, 0), coalesce(c.n, 0)
FROM r FULL JOIN c ON c.code = r.code
"""


def coverage_frames(conn: Connection, overdue_sql: str, at: datetime) -> tuple[pd.DataFrame, ...]:
    """What coverage and load are computed from, all current: grids (``code``, ``name``, ``level``,
    ``parent_code``, ``households``), posts (``person_id``, ``name``, ``role``, ``grid_code``), and per
    micro-grid counts (``code``, ``risk_elements``, ``overdue_visits``, ``open_cases``).
    ``overdue_sql``: SQL boolean over the risk element ``e`` (bind ``:at``)."""
    grids = frame(
        conn.execute(sa.text("SELECT code, name, level, parent_code, households FROM grid WHERE valid_to IS NULL")),
        ["code", "name", "level", "parent_code", "households"],
    )
    posts = frame(
        conn.execute(
            sa.text(
                "SELECT p.person_id, pe.name, p.role, p.grid_code "
                "FROM grid_post p JOIN person pe ON pe.id = p.person_id "
                "WHERE p.valid_to IS NULL AND p.role = 'grid_worker'"
            )
        ),
        ["person_id", "name", "role", "grid_code"],
    )
    counts = frame(
        conn.execute(sa.text(COVERAGE_COUNTS.format(overdue=overdue_sql)), {"at": at}),
        ["code", "risk_elements", "overdue_visits", "open_cases"],
    )
    return grids, posts, counts


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
