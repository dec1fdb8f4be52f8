"""Files the user names for output: checked before any work is done."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import lazy_loader

from ..errors import InputError

pd = lazy_loader.load("pandas")

#: CSV encodings gridmap writes; the default carries a BOM so Excel on Chinese Windows reads UTF-8.
CSV_ENCODINGS = ("utf-8-sig", "utf-8", "gbk", "gb18030")


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


def temporary_beside(path, *, prefix: str = ".gridmap-", suffix: str = "", folder: bool = False) -> Path:
    """A new empty file (or ``folder``) with a unique hidden name beside ``path``: on the same file
    system, so it can be renamed over ``path``.  Made with the permissions a plain open() (mkdir)
    gives, 0666 (0777) less the umask; tempfile's 0600 (0700) would stay with the renamed output."""
    path = Path(path)
    tmp = (path.parent if str(path.parent) else Path(".")) / f"{prefix}{uuid.uuid4().hex}{suffix}"
    if folder:
        tmp.mkdir()
    else:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def write_csv(frame: pd.DataFrame, path, encoding: str = "utf-8-sig") -> None:
    """Write ``frame`` to ``path`` whole or not at all (a temporary file renamed).  InputError for
    an unknown encoding, or a value the encoding cannot hold (naming its row and column)."""
    if encoding not in CSV_ENCODINGS:
        raise InputError(f"unknown CSV encoding {encoding!r}: choose one of {', '.join(CSV_ENCODINGS)}")
    path = Path(path)
    if encoding in ("gbk", "gb18030"):
        _check_encodable(frame, encoding)
    tmp = temporary_beside(path, suffix=".csv")
    try:
        frame.to_csv(tmp, index=False, encoding=encoding)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_encodable(frame: pd.DataFrame, encoding: str) -> None:
    for column in frame.columns:
        for row, value in enumerate(frame[column]):
            if isinstance(value, str):
                try:
                    value.encode(encoding)
                except UnicodeEncodeError as exc:
                    raise InputError(
                        f"row {row + 1}, column {column}: {value[exc.start : exc.end]!r} cannot be written in "
                        f"{encoding}; use --encoding utf-8-sig"
                    ) from None
