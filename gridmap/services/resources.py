"""Files gridmap ships and reads: layer definitions (``layers/*.toml``), the risk rules, and the demo
city's real boundaries (``data/zhengzhou``).  They are package data under ``gridmap/resources``,
found with :mod:`importlib.resources`, so an installed gridmap has them too; ``GRIDMAP_LAYERS``
points at another layers folder.

A file that is missing or not valid TOML is one InputError line naming the file and the problem
(TOML errors say the line and column).
"""

from __future__ import annotations

import csv
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import shapely

from .. import geo
from ..domain.risk import Rules, parse_rules
from ..errors import InputError

#: The demo city's real data (district outlines, street and community lists, with their licences).
DEMO_DATA = resources.files("gridmap") / "resources" / "data" / "zhengzhou"


def read_toml(path: Path, what: str = "file") -> dict:
    """The TOML file ``path`` as a dict; InputError naming the file when it is missing or malformed."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: missing ({what} live in {path.parent})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


def mtime(path: Path) -> int:
    """``path``'s modification time in ns (0 when missing): cache keys that follow edits."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def load_rules(path: Path) -> Rules:
    """The risk rules in ``path`` (a risk.toml, or a folder holding one), re-read when the file changes.

    InputError naming the file (and the key) for a missing, malformed or ill-typed file.
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".toml":
        path = path / "risk.toml"
    if not path.exists():
        raise InputError(f"{path}: no such risk rules file")
    return _rules(str(path.resolve()), mtime(path))


@lru_cache(maxsize=8)
def _rules(path: str, _mtime_ns: int) -> Rules:  # the mtime in the key: an edited file is re-read
    data = read_toml(Path(path), "risk rules")
    try:
        return parse_rules(data, path)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def demo_districts(codes=None) -> dict[str, dict]:
    """The real district outlines (GCJ-02 as shipped, and WGS84) and names, by code."""
    with (DEMO_DATA / "districts.csv").open(encoding="utf-8") as f:
        names = {r["code"]: r["name"] for r in csv.DictReader(f)}
    out = {}
    for code in codes or names:
        gcj = shapely.from_geojson((DEMO_DATA / "districts_gcj02" / f"{code}.geojson").read_text())
        wgs = geo.transform_geoms(np.array([gcj], dtype=object), "gcj02")[0]
        out[code] = {"code": code, "name": names[code], "gcj02": gcj, "wgs84": wgs}
    return out


def demo_divisions(name: str) -> list[dict]:
    """Rows of one of the shipped division lists (``zhengzhou_streets.csv``, ``guancheng_communities.csv``)."""
    with (DEMO_DATA / "divisions" / name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))
