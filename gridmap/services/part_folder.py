"""A partitioned output folder that is never half-written: parts go to a hidden temporary folder
beside it, each part renamed into place when whole (a retried task overwrites its part, never
appends), and the folder is swapped in only once every part is there, with a ``_gridmap.json``
manifest.  Parquet readers skip files starting with ``_`` or ``.``, so the manifest is no part."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from ..errors import InputError
from .files import temporary_beside

MANIFEST = "_gridmap.json"


def check_destination(dst: Path) -> Path:
    """``dst`` if a run may write it: its parent folder exists, and it is absent or an earlier
    run's output (with a manifest), never some other folder or a file.  InputError otherwise."""
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {dst}: no such folder {parent}")
    if dst.is_file():
        raise InputError(f"{dst} is a file; --engine dask writes a folder of Parquet parts")
    if dst.is_dir() and any(dst.iterdir()) and not (dst / MANIFEST).exists():
        raise InputError(f"{dst} is a folder gridmap did not write (no {MANIFEST}); name a new folder")
    return dst


def start(dst: Path) -> Path:
    """A new temporary folder beside ``dst`` (same file system, so the swap is a rename)."""
    return temporary_beside(dst, prefix=f".{dst.name}.gridmap-", folder=True)


def part_name(number: int) -> str:
    return f"part.{number:05d}.parquet"


def write_part(folder: Path, number: int, write) -> None:
    """Call ``write(path)`` on a unique temporary name, then rename it to the part's name."""
    final = folder / part_name(number)
    tmp = folder / f".{final.name}.{uuid.uuid4().hex}"
    try:
        write(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def finish(tmp: Path, dst: Path, manifest: dict) -> None:
    """Write the manifest and swap ``tmp`` in as ``dst`` (an earlier output is removed after)."""
    (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def abandon(tmp: Path) -> None:
    """Remove a failed run's temporary folder.  Tasks of the failed run may still be writing parts
    into it (a run fails at its first failed task, the others finish alone): the folder is renamed
    first, so no new part can appear in it (they name the old path, which is gone), then removed."""
    doomed = tmp.with_name(f"{tmp.name}.abandoned")
    try:
        os.replace(tmp, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)
