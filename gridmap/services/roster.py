"""Roster imports: people and their posts, and party organisations, from a street office's CSV
(UTF-8 or GBK) or Excel export, or JSON rows.  All or nothing: one bad row and nothing is written,
every bad row named.  ``write_*`` work on the caller's transaction (the demo loads in one)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lazy_loader
from sqlalchemy.engine import Connection, Engine

from ..domain import party as party_domain
from ..domain import people as domain
from ..domain.values import shown
from ..errors import InputError
from ..store import audit, secrets
from ..store import party as party_store
from ..store import people as store
from .ingest import Problems, read_csv

pd = lazy_loader.load("pandas")

ID_CARD_SECRET = "id_card"
#: Dates without a zone in a street office's file are local dates (the settings' timezone, GRIDMAP_TZ).
LOCAL_ZONE = "Asia/Shanghai"
PARTY_ROLES = ("party_member", "party_secretary")


def read_rows(path: Path, aliases) -> list[dict]:
    """The rows of a CSV (UTF-8 or GBK) or Excel file, columns renamed by ``aliases(columns)``;
    InputError for another file type, an unreadable file or an empty one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = read_csv(path)
    elif suffix in (".xlsx", ".xlsm"):
        try:
            frame = pd.read_excel(path, dtype=str, engine="openpyxl").fillna("")
        except Exception as exc:  # zipfile/openpyxl raise many types; all mean "cannot read this file"
            raise InputError(f"cannot read {path.name}: {str(exc).strip().splitlines()[0]}") from None
    else:
        raise InputError(f"unsupported file type {shown(suffix or path.name)} for {path.name}: use .csv or .xlsx")
    if frame.empty:
        raise InputError(f"{path.name}: no rows")
    return frame.rename(columns=aliases(frame.columns)).to_dict("records")


def zone_of(name: str | None) -> ZoneInfo:
    """The zone called ``name`` (default Asia/Shanghai); InputError for an unknown one."""
    try:
        return ZoneInfo(name or LOCAL_ZONE)
    except (ValueError, KeyError):
        raise InputError(f"unknown time zone {shown(name)} (GRIDMAP_TZ): use a name such as Asia/Shanghai") from None


def local_time(value: str | None, zone: str | None = None) -> datetime | None:
    """A date or date-time as written in a roster or on the command line, in ``zone`` when it names
    none; None when empty; InputError when malformed."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{shown(value)} is not a date such as 2026-03-01") from None
    return at if at.tzinfo else at.replace(tzinfo=zone_of(zone))


def _reject(path: Path, problems: list[dict]) -> None:
    sink = Problems(path)
    for p in problems:
        sink.add(p["row"], p["problem"], p["code"])
    sink.raise_if_any()


def import_roster(eng: Engine, path, **kw) -> dict:
    """Import a roster file (CSV in UTF-8 or GBK, or Excel) in one transaction; see :func:`write_roster`."""
    path = Path(path)
    rows = read_rows(path, domain.canonical_columns)
    with eng.begin() as conn:
        return write_roster(conn, rows, source=path, **kw)


def import_rows(eng: Engine, rows: list[dict], **kw) -> dict:
    """Import roster rows given as JSON in one transaction; see :func:`write_roster`."""
    with eng.begin() as conn:
        return write_roster(conn, rows, source=Path("request body"), **kw)


def write_roster(
    conn: Connection,
    rows: list[dict],
    *,
    source: Path,
    replace: bool = False,
    at: datetime | None = None,
    actor: str = "cli",
    zone: str | None = None,
) -> dict:
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
    held = store.current_post_keys(conn)
    checked, problems = domain.check_roster(rows, places, key, existing=[] if replace else held)
    if problems:
        _reject(source, problems)
    return _write_posts(conn, checked, held, replace=replace, at=at, actor=actor, source=source.name, zone=zone)


def _who(post: dict):
    return post["id_hash"] or (post["name"], post["phone"])


def _write_posts(conn, checked, held, *, replace, at, actor, source, zone) -> dict:
    """Persons first (found again by ID hash, else name and phone), then the posts not yet held."""
    ids = store.person_ids(conn)
    new_people = list({_who(p): p for p in checked if _who(p) not in ids}.values())
    for p in new_people:
        p["party_member"] = p["role"] in PARTY_ROLES
    ids.update(zip(map(_who, new_people), store.insert_persons(conn, new_people), strict=True))
    closed = 0
    if replace:
        wanted = {domain.post_key(p) for p in checked}
        scope = {(p["role"], p["grid_code"], p["building_code"], p["unit"]) for p in checked}
        closed = store.close_posts(conn, [i for k, i in held.items() if k[1:] in scope and k not in wanted], at)
    fresh = [p for p in checked if domain.post_key(p) not in held]
    rows = [
        {
            "person_id": ids[_who(p)],
            "grid_code": p["grid_code"],
            "role": p["role"],
            "building_code": p["building_code"],
            "unit": p["unit"],
            "valid_from": local_time(p["valid_from"], zone) or at,
        }
        for p in fresh
    ]
    opened = store.insert_posts(conn, rows)
    store.mark_party_members(conn, {ids[_who(p)] for p in checked if p["role"] in PARTY_ROLES})
    party_store.set_secretaries(
        conn, {p["org_code"]: ids[_who(p)] for p in checked if p["role"] == "party_secretary" and p["org_code"]}
    )
    summary = {
        "file": source,
        "rows": len(checked),
        "people_added": len(new_people),
        "posts_opened": opened,
        "posts_kept": len(checked) - len(fresh),
        "posts_closed": closed,
    }
    audit.log(conn, actor, "people import", None, summary, {p["grid_code"] for p in checked})
    return summary


def import_orgs(eng: Engine, path, **kw) -> dict:
    """Import a party organisation file in one transaction; see :func:`write_orgs`."""
    path = Path(path)
    rows = read_rows(path, party_domain.canonical_columns)
    with eng.begin() as conn:
        return write_orgs(conn, rows, source=path, **kw)


def write_orgs(
    conn: Connection, rows: list[dict], *, source: Path, at: datetime | None = None, actor: str = "cli"
) -> dict:
    """Check and write party organisations (code, name, kind, parent, grids); ImportRejected naming
    each bad row (unknown grid, kind or parent, duplicate code, a parent of a smaller kind)."""
    at = at or datetime.now(UTC)
    if not rows:
        raise InputError(f"{source.name}: no rows")
    orgs, problems = party_domain.check_orgs(rows, store.grid_levels(conn), party_store.org_kinds(conn))
    if problems:
        _reject(source, problems)
    summary = {"file": source.name, **party_store.upsert(conn, orgs, at)}
    audit.log(conn, actor, "party organisation import", None, summary, {g for o in orgs for g in o["grids"]})
    return summary
