"""The grid people, a post moved or ended, and coverage and load.

Names and phones are personal data and come from here as stored; who sees them, and phones whole or
masked (138****5678), is the web layer's one privacy rule (:mod:`gridmap.web.privacy`); the CLI
masks phones unless asked (``people list --phones``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from ..domain import coverage as cover
from ..domain import party as party_domain
from ..domain import people as domain
from ..domain.values import shown
from ..errors import InputError, NotFound
from ..store import audit
from ..store import party as party_store
from ..store import people as store
from ..store import risk as risk_store
from ..store.grids import chain as grid_chain
from .roster import zone_of


def present(post: dict, zone: str | None = None) -> dict:
    """A post for an answer: who, which role (with its Chinese label), where, when (in ``zone``)."""
    out = {k: post[k] for k in ("id", "person_id", "name", "role", "grid_code", "building_code", "unit")}
    out["role_label"] = domain.LABELS[post["role"]]
    out["phone"] = post["phone"]
    for k in ("valid_from", "valid_to"):
        out[k] = post[k].astimezone(zone_of(zone)).isoformat() if post[k] else None
    return out


def list_posts(eng: Engine, *, grids=None, post_role=None, at=None, limit=None, zone: str | None = None) -> list[dict]:
    """Posts (current, or valid at ``at``), times in ``zone`` (default Asia/Shanghai); InputError for
    an unknown role."""
    if post_role:
        post_role = domain.check_role(post_role)
    with eng.connect() as conn:
        found = store.posts(conn, grids=grids, role=post_role, at=at, limit=limit)
    return [present(p, zone) for p in found]


def person_history(eng: Engine, person_id: int, zone: str | None = None) -> list[dict]:
    """Every post a person held, oldest first; NotFound for an unknown person."""
    with eng.connect() as conn:
        found = store.history(conn, person_id)
    if not found:
        raise NotFound(f"no person {person_id}")
    return [present(p, zone) for p in found]


def move_post(eng: Engine, post_id: int, grid_code: str, *, at: datetime | None = None, actor: str = "api") -> dict:
    """Move a current post to another grid: the old post ends at ``at``, a new one starts (history
    stays); NotFound for an unknown or ended post, InputError for a grid the role may not hold."""
    at = at or datetime.now(UTC)
    with eng.begin() as conn:
        old = store.post(conn, post_id)
        if old is None or old["valid_to"] is not None:
            raise NotFound(f"no current post {post_id}")
        if old["building_code"]:
            raise InputError("a building or unit lead moves by a roster import naming the new building")
        places = domain.Places(store.grid_levels(conn), {})
        domain.check_row({"grid": grid_code, "role": old["role"], "name": old["name"]}, places, b"")
        store.close_posts(conn, [post_id], at)
        new = {
            "person_id": old["person_id"],
            "grid_code": grid_code,
            "role": old["role"],
            "building_code": None,
            "unit": None,
            "valid_from": at,
        }
        store.insert_posts(conn, [new])
        audit.log(
            conn,
            actor,
            "post move",
            None,
            {"post": post_id, "from": old["grid_code"], "to": grid_code},
            {old["grid_code"], grid_code},
        )
    return {"ended": post_id, "person_id": old["person_id"], "from": old["grid_code"], "to": grid_code}


def end_post(eng: Engine, post_id: int, *, at: datetime | None = None, actor: str = "api") -> dict:
    """End a current post at ``at``; NotFound when there is no such current post."""
    with eng.begin() as conn:
        old = store.post(conn, post_id)
        if old is None or not store.close_posts(conn, [post_id], at or datetime.now(UTC)):
            raise NotFound(f"no current post {post_id}")
        audit.log(conn, actor, "post end", None, {"post": post_id}, {old["grid_code"]})
    return {"ended": post_id}


def coverage(
    eng: Engine,
    rules,
    *,
    at: datetime | None = None,
    max_households: int = cover.MAX_HOUSEHOLDS,
    limit: int | None = None,
) -> tuple[dict, list[dict], list[dict]]:
    """(summary, gaps, load) for the whole city now: grids without a worker or a party organisation
    (all of them, by code), and the ``limit`` heaviest workers' load (all when None), heaviest first
    (see :mod:`gridmap.domain.coverage`)."""
    at = at or datetime.now(UTC)
    with eng.connect() as conn:
        gaps = store.coverage_gaps(conn, cover.WORKER, cover.NO_WORKER, cover.NO_ORG)
        load, totals = store.coverage_load(
            conn, cover.WORKER, risk_store.overdue_sql(rules, "e"), at, max_households, limit
        )
    return cover.summary(gaps, totals), gaps, load


def organisations(eng: Engine, code: str) -> list[dict]:
    """The party organisations covering grid ``code`` or a grid above it, smallest kind first, with
    their secretary's name and phone; NotFound for an unknown grid."""
    with eng.connect() as conn:
        chain = [g["code"] for g in grid_chain(conn, code)]
        if not chain:
            raise NotFound(f"no current grid {shown(code)}")
        found = party_store.covering(conn, chain)
    return [{**o, "kind_label": party_domain.ORG_KINDS[o["kind"]]} for o in found]
