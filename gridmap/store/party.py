"""Party organisations and the grids they cover (``party_org``, ``party_org_grid``), dated."""

from __future__ import annotations

from datetime import datetime

import lazy_loader
import sqlalchemy as sa
from sqlalchemy.engine import Connection

pd = lazy_loader.load("pandas")


def org_kinds(conn: Connection) -> dict[str, str]:
    """Current party organisation codes → kind."""
    return dict(conn.execute(sa.text("SELECT code, kind FROM party_org WHERE valid_to IS NULL")).all())


ORG_FIELDS = ("code", "name", "kind", "parent_code", "parent_name", "secretary_name", "secretary_phone")


def upsert(conn: Connection, orgs: list[dict], at: datetime) -> dict:
    """Insert new organisations and update current ones (name, kind, parent); their coverage becomes
    exactly ``grids`` from ``at`` on (rows no longer covered are closed, history kept).  Parents
    first, so a file may name a parent defined further down.  Returns counts."""
    by_code = {o["code"]: o for o in orgs}
    order, seen = [], set()

    def visit(code):
        if code in seen or code not in by_code:
            return
        seen.add(code)
        visit(by_code[code]["parent_code"])
        order.append(by_code[code])

    for code in by_code:
        visit(code)
    created = 0
    for o in order:
        res = conn.execute(
            sa.text(
                "INSERT INTO party_org (code, name, kind, parent_code, valid_from) "
                "VALUES (:code, :name, :kind, :parent, :at) "
                "ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind, "
                "parent_code = excluded.parent_code RETURNING id, (xmax = 0)"
            ),
            {"code": o["code"], "name": o["name"], "kind": o["kind"], "parent": o["parent_code"], "at": at},
        ).first()
        created += bool(res[1])
        o["id"] = res[0]
    ids = [o["id"] for o in order]
    cover = pd.DataFrame([(o["id"], g) for o in order for g in o["grids"]], columns=["org_id", "grid_code"])
    closed = conn.execute(
        sa.text(
            "UPDATE party_org_grid SET valid_to = :at WHERE org_id = ANY(:ids) AND valid_to IS NULL "
            "AND (org_id, grid_code) NOT IN (SELECT * FROM unnest(CAST(:o AS bigint[]), CAST(:g AS text[])))"
        ),
        {"at": at, "ids": ids, "o": cover["org_id"].tolist(), "g": cover["grid_code"].tolist()},
    ).rowcount
    opened = conn.execute(
        sa.text(
            "INSERT INTO party_org_grid (org_id, grid_code, valid_from) "
            "SELECT o, g, :at FROM unnest(CAST(:o AS bigint[]), CAST(:g AS text[])) AS n(o, g) "
            "WHERE NOT EXISTS (SELECT 1 FROM party_org_grid c WHERE c.org_id = n.o AND c.grid_code = n.g "
            "AND c.valid_to IS NULL)"
        ),
        {"at": at, "o": cover["org_id"].tolist(), "g": cover["grid_code"].tolist()},
    ).rowcount
    return {"organisations": len(order), "created": created, "coverage_opened": opened, "coverage_closed": closed}


def set_secretaries(conn: Connection, secretary: dict[str, int]) -> None:
    """Name each organisation's secretary: org code → person id."""
    if secretary:
        conn.execute(
            sa.text(
                "UPDATE party_org o SET secretary_id = s.pid FROM unnest(CAST(:c AS text[]), CAST(:p AS bigint[])) "
                "AS s(code, pid) WHERE o.code = s.code"
            ),
            {"c": list(secretary), "p": list(secretary.values())},
        )


def covering(conn: Connection, codes, at: datetime | None = None) -> list[dict]:
    """Organisations covering any of the grid ``codes`` at ``at`` (current when None), smallest kind
    first, each with its parent's name and its secretary's name and phone."""
    valid = "g.valid_to IS NULL" if at is None else "g.valid_from <= :at AND (g.valid_to IS NULL OR g.valid_to > :at)"
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT o.code, o.name, o.kind, o.parent_code, parent.name, s.name, s.phone, "
            "array_position(ARRAY['group', 'branch', 'general_branch', 'committee'], o.kind) AS rank "
            "FROM party_org_grid g JOIN party_org o ON o.id = g.org_id AND o.valid_to IS NULL "
            "LEFT JOIN party_org parent ON parent.code = o.parent_code LEFT JOIN person s ON s.id = o.secretary_id "
            f"WHERE g.grid_code = ANY(:codes) AND {valid} ORDER BY rank, o.code"
        ),
        {"codes": list(codes), "at": at},
    )
    return [dict(zip(ORG_FIELDS, r[:-1], strict=True)) for r in rows]


def list_orgs(conn: Connection) -> list[dict]:
    """Current organisations with the grids they cover, by code."""
    rows = conn.execute(
        sa.text(
            "SELECT o.code, o.name, o.kind, o.parent_code, s.name, "
            "coalesce(array_agg(g.grid_code ORDER BY g.grid_code) FILTER (WHERE g.grid_code IS NOT NULL), '{}') "
            "FROM party_org o LEFT JOIN party_org_grid g ON g.org_id = o.id AND g.valid_to IS NULL "
            "LEFT JOIN person s ON s.id = o.secretary_id WHERE o.valid_to IS NULL "
            "GROUP BY o.id, s.name ORDER BY o.code"
        )
    )
    return [dict(zip(("code", "name", "kind", "parent_code", "secretary_name", "grids"), r, strict=True)) for r in rows]
