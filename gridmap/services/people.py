"""The roster use cases: import people and party organisations, list posts as a role may see them,
move or end a post, and coverage and load.  All or nothing: a file with one bad row writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.engine import Connection

from ..domain import coverage as cover
from ..domain import party as party_domain
from ..domain import people as domain
from ..domain.roles import ROSTER, allows
from ..errors import InputError, NotFound
from ..ingest import Problems, read_csv
from ..store import party as party_store
from ..store import people as store
from ..store import risk as risk_store
from ..store import secrets
from ..store.grids import chain as grid_chain
from ..store.grids import log_edit

ID_CARD_SECRET = "id_card"
#: Dates without a zone in a street office's file are local dates.
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")
#: Who sees a phone number whole; everyone else (viewers, the public page) sees it masked.
PHONE_ROLE = "dispatcher"
PARTY_ROLES = ("party_member", "party_secretary")


def read_rows(path: Path, aliases) -> list[dict]:
    """The rows of a CSV (UTF-8 or GBK) or Excel file, columns renamed by ``aliases(columns)``;
    InputError for another file type or an empty file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = read_csv(path)
    elif suffix in (".xlsx", ".xlsm"):
        frame = pd.read_excel(path, dtype=str, engine="openpyxl").fillna("")
    else:
        raise InputError(f"unsupported file type {suffix or path.name!r} for {path.name}: use .csv or .xlsx")
    if frame.empty:
        raise InputError(f"{path.name}: no rows")
    return frame.rename(columns=aliases(frame.columns)).to_dict("records")


def _when(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"valid_from {value!r} is not a date such as 2026-03-01") from None
    return at if at.tzinfo else at.replace(tzinfo=LOCAL_ZONE)


def _reject(path: Path, problems: list[dict]) -> None:
    sink = Problems(path)
    for p in problems:
        sink.add(p["row"], p["problem"], p["code"])
    sink.raise_if_any()


def import_roster(conn: Connection, path, **kw) -> dict:
    """Import a roster file (CSV in UTF-8 or GBK, or Excel); see :func:`import_rows`."""
    path = Path(path)
    return import_rows(conn, read_rows(path, domain.canonical_columns), source=path, **kw)


def import_rows(conn: Connection, rows: list[dict], *, source: Path, replace: bool = False,
                at: datetime | None = None, actor: str = "cli") -> dict:  # fmt: skip
    """Check every roster row and write the posts; ImportRejected naming each bad row (unknown grid,
    building, unit or organisation, unknown role, duplicate, bad phone or ID number), nothing written.

    With ``replace``, the rows are the whole truth for the (role, place) pairs they name: current
    posts there held by someone not in the rows are closed at ``at`` (their history stays).
    """
    at = at or datetime.now(UTC)
    if not rows:
        raise InputError(f"{source.name}: no rows")
    columns = set().union(*(r.keys() for r in rows))
    if {"role", "name"} - columns or not {"grid", "building"} & columns:
        raise InputError(f"{source.name}: needs columns role, name and grid (or building); has {', '.join(columns)}")
    key = secrets.get_or_create(conn, ID_CARD_SECRET)
    places = domain.Places(store.grid_levels(conn), store.building_units(conn), frozenset(party_store.org_kinds(conn)))
    current = store.current_post_keys(conn)
    keys = [(w, r, g, b, None if pd.isna(u) else int(u)) for w, r, g, b, u in
            current[["who", "role", "grid_code", "building_code", "unit"]].itertuples(index=False)]  # fmt: skip
    checked, problems = domain.check_roster(rows, places, key, existing=[] if replace else keys)
    if problems:
        _reject(source, problems)
    return _write_posts(conn, checked, current, keys, replace=replace, at=at, actor=actor, source=source.name)


def _who(post: dict):
    return post["id_hash"] or (post["name"], post["phone"])


def _write_posts(conn, checked, current, keys, *, replace, at, actor, source) -> dict:
    """Persons first (found again by ID hash, else name and phone), then the posts not yet held."""
    ids = store.person_ids(conn)
    new_people = list({_who(p): p for p in checked if _who(p) not in ids}.values())
    for p in new_people:
        p["party_member"] = p["role"] in PARTY_ROLES
    ids.update(zip(map(_who, new_people), store.insert_persons(conn, new_people), strict=True))
    held = dict(zip(keys, current["id"], strict=True))
    closed = 0
    if replace:
        wanted = {domain.post_key(p) for p in checked}
        scope = {(p["role"], p["grid_code"], p["building_code"], p["unit"]) for p in checked}
        closed = store.close_posts(conn, [i for k, i in held.items() if k[1:] in scope and k not in wanted], at)
    fresh = [p for p in checked if domain.post_key(p) not in held]
    rows = [{"person_id": ids[_who(p)], "grid_code": p["grid_code"], "role": p["role"],
             "building_code": p["building_code"], "unit": p["unit"], "valid_from": _when(p["valid_from"], at)}
            for p in fresh]  # fmt: skip
    opened = store.insert_posts(conn, rows)
    store.mark_party_members(conn, {ids[_who(p)] for p in checked if p["role"] in PARTY_ROLES})
    party_store.set_secretaries(
        conn, {p["org_code"]: ids[_who(p)] for p in checked if p["role"] == "party_secretary" and p["org_code"]}
    )
    summary = {"file": source, "rows": len(checked), "people_added": len(new_people), "posts_opened": opened,
               "posts_kept": len(checked) - len(fresh), "posts_closed": closed}  # fmt: skip
    log_edit(conn, actor, "people_import", None, summary)
    return summary


def import_orgs(conn: Connection, path, *, at: datetime | None = None, actor: str = "cli") -> dict:
    """Check and write a party organisation file (code, name, kind, parent, grids); ImportRejected
    naming each bad row (unknown grid, kind or parent, duplicate code, a parent of a smaller kind)."""
    path, at = Path(path), at or datetime.now(UTC)
    rows = read_rows(path, party_domain.canonical_columns)
    orgs, problems = party_domain.check_orgs(rows, store.grid_levels(conn), party_store.org_kinds(conn))
    if problems:
        _reject(path, problems)
    summary = {"file": path.name, **party_store.upsert(conn, orgs, at)}
    log_edit(conn, actor, "party_org_import", None, summary)
    return summary


def present(post: dict, role: str | None) -> dict:
    """A post as ``role`` may see it: the phone whole for dispatchers and above and the roster keeper,
    masked otherwise."""
    out = {k: post[k] for k in ("id", "person_id", "name", "role", "grid_code", "building_code", "unit")}
    out["role_label"] = domain.LABELS[post["role"]]
    whole = allows(role, PHONE_ROLE) or allows(role, ROSTER)
    out["phone"] = post["phone"] if whole else domain.mask_phone(post["phone"])
    out["phone_masked"] = not whole
    for k in ("valid_from", "valid_to"):
        out[k] = post[k].astimezone(LOCAL_ZONE).isoformat() if post[k] else None
    return out


def list_posts(
    conn: Connection, role: str | None, *, grids=None, post_role=None, person_id=None, at=None, limit=None
) -> list[dict]:
    """Posts (current, or valid at ``at``) as ``role`` may see them."""
    if post_role:
        post_role = domain.check_role(post_role)
    found = store.posts(conn, grids=grids, role=post_role, person_id=person_id, at=at, limit=limit)
    return [present(p, role) for p in found]


def person_history(conn: Connection, person_id: int, role: str | None) -> list[dict]:
    """Every post a person held, oldest first; NotFound for an unknown person."""
    found = store.history(conn, person_id)
    if not found:
        raise NotFound(f"no person {person_id}")
    return [present(p, role) for p in found]


def move_post(
    conn: Connection, post_id: int, grid_code: str, *, at: datetime | None = None, actor: str = "api"
) -> dict:
    """Move a current post to another grid: the old post ends at ``at``, a new one starts (history
    stays); NotFound for an unknown or ended post, InputError for a grid the role may not hold."""
    at = at or datetime.now(UTC)
    old = store.post(conn, post_id)
    if old is None or old["valid_to"] is not None:
        raise NotFound(f"no current post {post_id}")
    if old["building_code"]:
        raise InputError("a building or unit lead moves by a roster import naming the new building")
    levels = store.grid_levels(conn)
    domain.check_row({"grid": grid_code, "role": old["role"], "name": old["name"]}, domain.Places(levels, {}), b"")
    store.close_posts(conn, [post_id], at)
    new = {"person_id": old["person_id"], "grid_code": grid_code, "role": old["role"], "building_code": None,
           "unit": None, "valid_from": at}  # fmt: skip
    store.insert_posts(conn, [new])
    log_edit(conn, actor, "post_move", None, {"post": post_id, "from": old["grid_code"], "to": grid_code})
    return {"ended": post_id, "person_id": old["person_id"], "from": old["grid_code"], "to": grid_code}


def end_post(conn: Connection, post_id: int, *, at: datetime | None = None, actor: str = "api") -> dict:
    """End a current post at ``at``; NotFound when there is no such current post."""
    if not store.close_posts(conn, [post_id], at or datetime.now(UTC)):
        raise NotFound(f"no current post {post_id}")
    log_edit(conn, actor, "post_end", None, {"post": post_id})
    return {"ended": post_id}


def coverage(conn: Connection, rules, *, at: datetime | None = None, max_households: int = cover.MAX_HOUSEHOLDS):
    """(summary, gaps, load) for the whole city now: grids without a worker or a party organisation,
    and each worker's load (see :mod:`gridmap.domain.coverage`)."""
    at = at or datetime.now(UTC)
    grids, posts, counts = store.coverage_frames(conn, risk_store.overdue_sql(rules, "e"), at)
    gaps = cover.gaps(grids, posts, party_store.org_grids(conn))
    load = cover.load(grids, posts, counts, max_households)
    return cover.summary(grids, gaps, load), gaps, load


def organisations(conn: Connection, code: str, role: str | None) -> list[dict]:
    """The party organisations covering grid ``code`` or a grid above it, smallest kind first, the
    secretary's phone as ``role`` may see it; NotFound for an unknown grid."""
    chain = [g["code"] for g in grid_chain(conn, code)]
    if not chain:
        raise NotFound(f"no current grid {code!r}")
    whole = allows(role, PHONE_ROLE) or allows(role, ROSTER)
    return [{**o, "kind_label": party_domain.ORG_KINDS[o["kind"]],
             "secretary_phone": o["secretary_phone"] if whole else domain.mask_phone(o["secretary_phone"])}
            for o in party_store.covering(conn, chain)]  # fmt: skip
