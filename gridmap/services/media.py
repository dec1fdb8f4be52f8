"""Photos of cases: uploaded files checked by their first bytes (JPEG, PNG, WebP) and size, kept
under the project's data folder by content hash (the same photo twice is one file), and found
again for readers with a role.  A photo is written only once its action has passed every check (the
case exists, the caller may act on it, the loop allows it): a refused request leaves nothing on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import InputError, PayloadTooLarge
from ..store import cases

#: A photo can be no larger than the request that carries it: the request-body limit (``gridmap serve
#: --max-body``, GRIDMAP_MAX_BODY; 413 at the front door beyond it), and never more than this.
MAX_BYTES = 10 * 1024 * 1024
#: At most this many photos on one action.
MAX_FILES = 9
#: Accepted types by their magic numbers (the client's Content-Type is not trusted).
TYPES = (("image/jpeg", "jpg", b"\xff\xd8\xff"), ("image/png", "png", b"\x89PNG\r\n\x1a\n"))
FIELDS = {"before": "before", "after": "after", "photo": "other"}


def _kind(head: bytes) -> tuple[str, str] | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "webp"
    return next(((t, ext) for t, ext, magic in TYPES if head.startswith(magic)), None)


def folder(settings) -> Path:
    return Path(settings.home) / "media"


def check_uploads(settings, case_id: int, files) -> tuple[list[dict], list[tuple[Path, bytes]]]:
    """The photos of a request's ``before``/``after``/``photo`` file fields, checked and held in memory:
    (their media items, as the case log stores them; the files to :func:`write` once the action is
    accepted).  InputError for a file that is not a JPEG, PNG or WebP image or a field of another name
    or more than :data:`MAX_FILES` photos, PayloadTooLarge over the request-body limit (at most 10 MB)."""
    limit = min(MAX_BYTES, settings.max_body)
    unknown = [name for name in files if name not in FIELDS]
    if unknown:
        raise InputError(f"unknown file field {unknown[0][:60]!r} (use before, after or photo)")
    items = [(name, item) for name in files for item in files.getlist(name)]
    if len(items) > MAX_FILES:
        raise InputError(f"{len(items)} photos sent; at most {MAX_FILES} are allowed on one action")
    out, writes = [], []
    for name, item in items:
        data = item.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"{item.filename or name}: larger than the limit of {limit} bytes")
        kind = _kind(data[:16])
        if kind is None:
            raise InputError(f"{(item.filename or name)[:60]}: not a JPEG, PNG or WebP image")
        sha = hashlib.sha256(data).hexdigest()
        rel = Path(str(case_id)) / f"{sha}.{kind[1]}"
        out.append(
            {"stage": FIELDS[name], "path": str(rel), "content_type": kind[0], "bytes": len(data), "sha256": sha}
        )
        writes.append((folder(settings) / rel, data))
    return out, writes


def write(files) -> None:
    """Write the checked photos (:func:`check_uploads`) of an accepted action; one already there (the
    same photo sent before) is kept."""
    for target, data in files:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(data)


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
