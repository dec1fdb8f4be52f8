"""QR codes for grids, buildings and unit entrances: signed URLs, printed sheets, single images,
and the check of a scanned code.  The signing key lives in ``app_secret`` (``qr``; ``qr.vN`` for a
newer key version), so every server on one database signs and verifies alike; each process keeps
the keys for ``KEY_TTL_S`` seconds, so a scan costs no query for them and a new key version is
seen within a minute."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from ..domain import qr
from ..domain.levels import LABELS as LEVEL_LABELS
from ..domain.people import mask_phone
from ..domain.values import shown
from ..errors import InputError, NotFound
from ..store import labels as label_store
from ..store import secrets
from . import qr_sheets

SECRET = "qr"
KEY_TTL_S = 60.0
KIND_LABELS = {**LEVEL_LABELS, "building": "楼栋", "unit": "单元"}
_keys: dict[str, tuple[float, dict[int, bytes]]] = {}
_lock = threading.Lock()


def keys(conn: Connection) -> dict[int, bytes]:
    """Every QR key version (version 1 is made on first use), cached per database for a minute."""
    where = str(conn.engine.url)
    with _lock:
        hit = _keys.get(where)
    if hit and time.monotonic() - hit[0] < KEY_TTL_S:
        return hit[1]
    found = secrets.versions(conn, SECRET)
    if 1 not in found:
        secrets.get_or_create(conn, SECRET)
        found = secrets.versions(conn, SECRET)
    with _lock:
        _keys[where] = (time.monotonic(), found)
    return found


def sign_url(conn: Connection, kind: str, code: str, base: str = "") -> str:
    """The URL a new code for ``code`` holds, signed with the newest key."""
    found = keys(conn)
    version = max(found)
    return qr.url(qr.Target(kind, code, version), found[version], base)


def verify(conn: Connection, code: str, args) -> qr.Target:
    """The target of a scanned link; InputError for a malformed one, BadSignature (403) for a code
    that was forged, copied to another grid, or signed with a retired key."""
    target, sig = qr.parse(code, args)
    return qr.verify(target, sig, keys(conn))


def labels(eng: Engine, communities, *, base: str, kinds, since) -> list[tuple[str, list[qr_sheets.Label]]]:
    """(community code, its labels) for each community (all when None) with something to print."""
    with eng.begin() as conn:
        found = keys(conn)
        rows = label_store.labels(conn, communities, kinds=kinds, since=since)
    version = max(found)
    out: dict[str, list] = {}
    for row in rows:
        url = qr.url(qr.Target(row["kind"], row["code"], version), found[version], base)
        label = qr_sheets.Label(url, row["name"], row["code"], KIND_LABELS[row["level"]], mask_phone(row["phone"]))
        out.setdefault(row["community"], []).append(label)
    return list(out.items())


def _check_base(base: str) -> str:
    if not base.startswith(("http://", "https://")):
        raise InputError(
            f"the public address {shown(base)} must start with http:// or https:// (GRIDMAP_PUBLIC_URL or --base)"
        )
    return base


def sheet(
    eng: Engine, community: str, out: Path, *, base: str, kinds=("g", "b", "u"), since: datetime | None = None
) -> dict:
    """Write the A4 sheets of one community to ``out``; NotFound for an unknown community,
    InputError when nothing changed since ``since`` or ``base`` is not an http(s) address."""
    with eng.connect() as conn:
        if not label_store.community_exists(conn, community):
            raise NotFound(f"no current community {shown(community)}")
    _check_base(base)
    groups = labels(eng, [community], base=base, kinds=kinds, since=since)
    if not groups:
        raise InputError(f"nothing to print for community {community}" + (f" since {since.date()}" if since else ""))
    ((path, count),) = qr_sheets.write_sheets([(Path(out), groups[0][1], f"{community} 网格二维码")])
    return {"file": path, "community": community, "codes": count, "pages": -(-count // qr_sheets.PER_PAGE)}


def city_sheets(
    eng: Engine, out_dir: Path, *, base: str, kinds=("g", "b", "u"), since: datetime | None = None, workers: int = 1
) -> dict:
    """One PDF per community into ``out_dir``, ``workers`` processes at a time; counts."""
    _check_base(base)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = labels(eng, None, base=base, kinds=kinds, since=since)
    jobs = [(out_dir / f"{c}.pdf", found, f"{c} 网格二维码") for c, found in groups]
    done = qr_sheets.write_sheets(jobs, workers)
    return {"files": len(done), "codes": sum(n for _, n in done)}


def image(eng: Engine, kind: str, code: str, fmt: str, *, base: str) -> bytes:
    """One code as SVG or PNG; NotFound when ``code`` is not a current grid, building or unit (checked
    before ``base``, so an unknown code is named as such whatever the address)."""
    if kind not in qr.KINDS:
        raise InputError(f"unknown QR kind {shown(kind)}: one of {', '.join(qr.KINDS)}")
    with eng.begin() as conn:
        if not label_store.exists(conn, kind, code):
            raise NotFound(f"no current {qr.KINDS[kind]} {shown(code)}")
        _check_base(base)
        url = sign_url(conn, kind, code, base)
    return qr_sheets.code_image(url, fmt)
