"""SQL for departments, their members and the grid workers who handle a micro-grid's cases.

A department row is one kind of department (``categories`` holds the catalogue's kind codes,
e.g. ``{cg}``) at one grid (``grid_code``) of its level.  Grid workers are the current
``grid_worker`` posts of a grid (``grid_post``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def for_grids(conn: Connection, codes) -> dict[tuple[str, str], str]:
    """(kind, grid code) → department code, for the active departments of ``codes``."""
    rows = conn.execute(
        sa.text("""SELECT kind, d.grid_code, d.code FROM department d, unnest(d.categories) AS kind
                   WHERE d.active AND d.grid_code = ANY(:codes)"""),
        {"codes": list(codes)},
    )
    return {(kind, grid): code for kind, grid, code in rows}


def workers_for(conn: Connection, codes) -> dict[str, tuple[str, ...]]:
    """Grid code → ids (``person:N``) of its current grid workers, lowest id first."""
    rows = conn.execute(
        sa.text("""SELECT grid_code, array_agg('person:' || person_id ORDER BY person_id) FROM grid_post
                   WHERE role = 'grid_worker' AND valid_to IS NULL AND grid_code = ANY(:codes) GROUP BY grid_code"""),
        {"codes": list(codes)},
    )
    return {grid: tuple(ids) for grid, ids in rows}


def of_user(conn: Connection, user_id: int) -> list[tuple[str, str | None]]:
    """(department code, grid code) of every active department the user belongs to."""
    rows = conn.execute(
        sa.text("""SELECT d.code, d.grid_code FROM department d JOIN department_member m ON m.department_id = d.id
                   WHERE m.user_id = :user AND d.active ORDER BY d.code"""),
        {"user": user_id},
    )
    return [tuple(r) for r in rows]


def get(conn: Connection, code: str) -> dict | None:
    row = conn.execute(sa.text("SELECT * FROM department WHERE code = :code"), {"code": code}).mappings().first()
    return dict(row) if row else None


def insert_many(conn: Connection, rows: list[dict]) -> int:
    """Departments (code, name, level, grid_code, categories); an existing code is updated."""
    if not rows:
        return 0
    conn.execute(
        sa.text("""INSERT INTO department (code, name, level, grid_code, categories)
                   VALUES (:code, :name, :level, :grid_code, :categories)
                   ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level,
                       grid_code = EXCLUDED.grid_code, categories = EXCLUDED.categories, active = true"""),
        rows,
    )
    return len(rows)


def add_member(conn: Connection, code: str, user_id: int) -> bool:
    """Put a user in a department; False when the department does not exist."""
    res = conn.execute(
        sa.text("""INSERT INTO department_member (department_id, user_id)
                   SELECT id, :user FROM department WHERE code = :code ON CONFLICT DO NOTHING"""),
        {"code": code, "user": user_id},
    )
    return res.rowcount > 0 or get(conn, code) is not None


def remove_member(conn: Connection, code: str, user_id: int) -> bool:
    """Take a user out of a department; False when they were not in it."""
    res = conn.execute(
        sa.text("""DELETE FROM department_member m USING department d
                   WHERE m.department_id = d.id AND d.code = :code AND m.user_id = :user"""),
        {"code": code, "user": user_id},
    )
    return res.rowcount > 0


def listing(conn: Connection, grid_code: str | None = None) -> list[dict]:
    """Departments (all, or of one grid) with their member counts, by level and code."""
    rows = conn.execute(
        sa.text("""SELECT d.code, d.name, d.level, d.grid_code, d.categories, d.active,
                          (SELECT count(*) FROM department_member m WHERE m.department_id = d.id) AS members
                   FROM department d WHERE CAST(:grid AS text) IS NULL OR d.grid_code = :grid
                   ORDER BY d.level, d.code"""),
        {"grid": grid_code},
    ).mappings()
    return [dict(r) for r in rows]


def of_user_name(conn: Connection, name: str) -> list[tuple[str, str | None]]:
    """(department code, grid code) of every active department the user called ``name`` belongs to."""
    rows = conn.execute(
        sa.text("""SELECT d.code, d.grid_code FROM department d JOIN department_member m ON m.department_id = d.id
                   JOIN app_user u ON u.id = m.user_id WHERE u.name = :name AND d.active ORDER BY d.code"""),
        {"name": name},
    )
    return [tuple(r) for r in rows]


def grids_with_departments(conn: Connection) -> list[dict]:
    """Current community, street and district grids (code, level, name): where departments sit."""
    rows = conn.execute(
        sa.text("""SELECT code, level, name FROM grid WHERE valid_to IS NULL
                   AND level IN ('community', 'street', 'district') ORDER BY code""")
    ).mappings()
    return [dict(r) for r in rows]


def micro_chains(conn: Connection) -> list[dict]:
    """Every current micro-grid with its chain's codes and a point inside it (lon, lat)."""
    rows = conn.execute(
        sa.text("""SELECT m.code AS micro_code, y.code AS courtyard_code, c.code AS community_code,
                          s.code AS street_code, d.code AS district_code,
                          ST_X(ST_PointOnSurface(m.geom)) AS lon, ST_Y(ST_PointOnSurface(m.geom)) AS lat
                   FROM grid m
                   JOIN grid y ON y.code = m.parent_code AND y.valid_to IS NULL
                   JOIN grid c ON c.code = y.parent_code AND c.valid_to IS NULL
                   JOIN grid s ON s.code = c.parent_code AND s.valid_to IS NULL
                   JOIN grid d ON d.code = s.parent_code AND d.valid_to IS NULL
                   WHERE m.level = 'micro' AND m.valid_to IS NULL ORDER BY m.code""")
    ).mappings()
    return [dict(r) for r in rows]
