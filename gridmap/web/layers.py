"""Layer definitions read from the project's ``layers/`` folder (editing a file adds a layer)."""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from ..domain.levels import ALL_LEVELS

LAYERS_DIR = Path(os.environ.get("GRIDMAP_LAYERS", Path(__file__).resolve().parents[2] / "layers"))
REQUIRED = ("level", "label", "colour", "fill", "weight", "fill_opacity", "min_zoom", "max_zoom", "show",
            "simplify_m")


@lru_cache(maxsize=4)
def level_layers(folder: Path = LAYERS_DIR) -> tuple[dict, ...]:
    """The grid level layers in drawing order; ValueError naming the file and the bad entry."""
    path = Path(folder) / "levels.toml"
    with open(path, "rb") as f:
        entries = tomllib.load(f).get("level", [])
    for i, e in enumerate(entries):
        missing = [k for k in REQUIRED if k not in e]
        if missing:
            raise ValueError(f"{path}: level entry {i + 1} lacks {', '.join(missing)}")
        if e["level"] not in ALL_LEVELS:
            raise ValueError(f"{path}: level entry {i + 1} names unknown level {e['level']!r}")
    return tuple(entries)


def layer_for(level: str) -> dict:
    return next(e for e in level_layers() if e["level"] == level)
