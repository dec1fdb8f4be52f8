"""QR codes for grids, buildings and unit entrances: signed URLs, printed sheets, single images,
and the check of a scanned code.  The signing key lives in ``app_secret`` (``qr``; ``qr.vN`` for a
newer key version), so every server on one database signs and verifies alike."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection

from ..domain import qr
from ..domain.levels import LABELS as LEVEL_LABELS
from ..domain.people import mask_phone
from ..errors import InputError, NotFound
from ..store import labels as label_store
from ..store import secrets
from . import qr_sheets

SECRET = "qr"
KIND_LABELS = {**LEVEL_LABELS, "building": "楼栋", "unit": "单元"}


def keys(conn: Connection) -> dict[int, bytes]:
    """Every QR key version (version 1 is made on first use)."""
    secrets.get_or_create(conn, SECRET)
    return secrets.versions(conn, SECRET)


def current_version(found: dict[int, bytes]) -> int:
    return max(found)


def sign_url(conn: Connection, kind: str, code: str, base: str = "") -> str:
    """The URL a new code for ``code`` holds, signed with the newest key."""
    found = keys(conn)
    version = current_version(found)
    return qr.url(qr.Target(kind, code, version), found[version], base)


def sheet_labels(
    conn: Connection, communities=None, *, base: str = "", kinds=("g", "b", "u"), since: datetime | None = None
) -> list[tuple[str, list[qr_sheets.Label]]]:
    """(community code, its labels) for each community (all when None) with something to print."""
    found = keys(conn)
    version = current_version(found)
    secret = found[version]
    out: dict[str, list] = {}
    for row in label_store.labels(conn, communities, kinds=kinds, since=since):
        url = qr.url(qr.Target(row["kind"], row["code"], version), secret, base)
        label = qr_sheets.Label(url, row["name"], row["code"], KIND_LABELS[row["level"]], mask_phone(row["phone"]))
        out.setdefault(row["community"], []).append(label)
    return list(out.items())


def sheet(
    conn: Connection, community: str, out: Path, *, base: str = "", kinds=("g", "b", "u"), since: datetime | None = None
) -> dict:
    """Write the A4 sheets of one community to ``out``; NotFound for an unknown community,
    InputError when nothing changed since ``since``."""
    if not label_store.community_exists(conn, community):
        raise NotFound(f"no current community {community!r}")
    groups = sheet_labels(conn, [community], base=base, kinds=kinds, since=since)
    if not groups:
        raise InputError(f"nothing to print for community {community}" + (f" since {since.date()}" if since else ""))
    ((path, count),) = qr_sheets.write_sheets([(Path(out), groups[0][1], f"{community} 网格二维码")])
    pages = -(-count // qr_sheets.PER_PAGE)
    return {"file": path, "community": community, "codes": count, "pages": pages}


def city_sheets(
    conn: Connection,
    out_dir: Path,
    *,
    base: str = "",
    kinds=("g", "b", "u"),
    since: datetime | None = None,
    workers: int = 1,
) -> dict:
    """One PDF per community into ``out_dir``, ``workers`` processes at a time."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = sheet_labels(conn, None, base=base, kinds=kinds, since=since)
    done = qr_sheets.write_sheets([(out_dir / f"{c}.pdf", labels, f"{c} 网格二维码") for c, labels in groups], workers)
    return {"files": len(done), "codes": sum(n for _, n in done)}


def image(conn: Connection, kind: str, code: str, fmt: str, *, base: str = "") -> bytes:
    """One code as SVG or PNG; NotFound when ``code`` is not a current grid, building or unit."""
    if kind not in qr.KINDS:
        raise InputError(f"unknown QR kind {kind!r}: one of {', '.join(qr.KINDS)}")
    if not label_store.exists(conn, kind, code):
        raise NotFound(f"no current {qr.KINDS[kind]} {code!r}")
    return qr_sheets.code_image(sign_url(conn, kind, code, base), fmt)


def verify(conn: Connection, code: str, args) -> qr.Target:
    """The target of a scanned link; InputError for a malformed one, BadSignature (403) for a code
    that was forged, copied to another grid, or signed with a retired key."""
    target, sig = qr.parse(code, args)
    return qr.verify(target, sig, keys(conn))
