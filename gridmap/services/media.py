"""Photos of cases: uploaded files checked by their first bytes (JPEG, PNG, WebP) and size, kept
under the project's data folder by content hash (the same photo twice is one file), and found
again for readers with a role.  A file written for an action that is then refused stays, unnamed
by any case; nothing refers to it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import InputError, PayloadTooLarge
from ..store import cases

MAX_BYTES = 10 * 1024 * 1024
#: Accepted types by their magic numbers (the client's Content-Type is not trusted).
TYPES = (("image/jpeg", "jpg", b"\xff\xd8\xff"), ("image/png", "png", b"\x89PNG\r\n\x1a\n"))
FIELDS = {"before": "before", "after": "after", "photo": "other"}


def _kind(head: bytes) -> tuple[str, str] | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "webp"
    return next(((t, ext) for t, ext, magic in TYPES if head.startswith(magic)), None)


def folder(settings) -> Path:
    return Path(settings.home) / "media"


def save_uploads(settings, case_id: int, files) -> list[dict]:
    """Store the photos of a request's ``before``/``after``/``photo`` file fields; InputError for a file that
    is not a JPEG, PNG or WebP image or a field of another name, PayloadTooLarge over 10 MB."""
    out = []
    for name in files:
        if name not in FIELDS:
            raise InputError(f"unknown file field {name!r} (use before, after or photo)")
        for item in files.getlist(name):
            data = item.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise PayloadTooLarge(f"{item.filename or name}: larger than {MAX_BYTES // (1024 * 1024)} MB")
            kind = _kind(data[:16])
            if kind is None:
                raise InputError(f"{item.filename or name}: not a JPEG, PNG or WebP image")
            sha = hashlib.sha256(data).hexdigest()
            rel = Path(str(case_id)) / f"{sha}.{kind[1]}"
            target = folder(settings) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.write_bytes(data)
            out.append(
                {"stage": FIELDS[name], "path": str(rel), "content_type": kind[0], "bytes": len(data), "sha256": sha}
            )
    return out


def stored(centre, settings, case_id: int, media_id: int) -> dict | None:
    """The file and type of a stored photo of the case, or None."""
    with centre.engine.connect() as conn:
        item = cases.media_item(conn, media_id)
    if item is None or item["report_id"] != case_id or not item["path"]:
        return None
    path = (folder(settings) / item["path"]).resolve()
    if folder(settings).resolve() not in path.parents or not path.exists():
        return None
    return {"file": path, "content_type": item["content_type"]}
