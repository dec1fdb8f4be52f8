"""Lookup indexes persisted under the data folder (``GRIDMAP_HOME/index``), one folder per version set.

A folder holds one ``.npy`` file per array (memory-mapped on load, so a process starts answering
without reading the cell grid into its own memory) and ``meta.json``.  It is written under a
temporary name and renamed into place, so a reader never sees half of one; two processes writing
the same version set both succeed and one copy wins.  The least recently used folders beyond
:data:`KEEP` are removed.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

KEEP = 8
META = "meta.json"


def folder(home: Path) -> Path:
    return Path(home) / "index"


def load(home: Path, key: str, *, prefault: bool = False):
    """(metadata, arrays) of the index persisted as ``key``, or None when there is none (or it is
    unreadable: a damaged copy is ignored and rebuilt, never trusted).  ``prefault``: map every page
    into this process now (a server worker before its first request), not on the lookups that reach
    it: a worker's first seconds of lookups otherwise pay the faults of ~400 MB of arrays."""
    path = folder(home) / key
    try:
        meta = json.loads((path / META).read_text())
        arrays = {f.stem: np.load(f, mmap_mode="r", allow_pickle=False) for f in path.glob("*.npy")}
        if prefault:
            for array in arrays.values():
                _touch(array)
        os.utime(path)  # recently used
    except (OSError, ValueError):
        return None
    return meta, arrays


def _touch(array: np.ndarray) -> None:
    """Read one byte of every page of a memory-mapped array (the page cache is shared: nothing is
    copied, the process's page table is filled)."""
    if array.size:
        np.ascontiguousarray(array).reshape(-1).view(np.uint8)[:: mmap.PAGESIZE].sum()


def exists(home: Path, key: str) -> bool:
    """Whether the index ``key`` is persisted (whole: its metadata is written last, then renamed in)."""
    return (folder(home) / key / META).is_file()


def latest(home: Path, database: str):
    """(key, metadata) of the newest persisted index of the current grids of ``database`` (the
    highest epoch), or None."""
    best = None
    for path in folder(home).glob("[!.]*"):
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError):
            continue
        newer = best is None or meta["epoch"] > best[1]["epoch"]
        if meta.get("database") == database and meta.get("current") and newer:
            best = (path.name, meta)
    return best


def save(home: Path, key: str, meta: dict, arrays: dict) -> None:
    """Persist an index as ``key`` atomically (temporary folder, then rename); older ones beyond
    :data:`KEEP` are removed."""
    root = folder(home)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (tmp / META).write_text(json.dumps(meta))
        try:
            os.rename(tmp, root / key)
        except OSError:  # another process persisted the same version set first: theirs stands
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(root)


def discard(home: Path, key: str) -> None:
    """Remove the persisted index ``key`` (unreadable or of another format), so it can be written again."""
    shutil.rmtree(folder(home) / key, ignore_errors=True)


def _prune(root: Path) -> None:
    kept = sorted((p for p in root.glob("[!.]*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in kept[KEEP:]:
        shutil.rmtree(path, ignore_errors=True)
