"""Files the user names for output: checked before any work is done."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def check_output(path, suffixes=None) -> Path:
    """``path`` if it can be written: its folder exists and, when given, its suffix is one of
    ``suffixes``; InputError otherwise."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: no such folder {folder}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{path.name}: the file name should end in {' or '.join(suffixes)}")
    return path
