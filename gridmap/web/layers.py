"""Layer definitions read from the project's ``layers/`` folder (editing a file adds a layer).

``levels.toml`` the grid levels, ``overlays.toml`` risk elements, risk shading and reports,
``basemap.toml`` the base map.  A bad entry is a ValueError naming the file, the entry and the key.
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from ..domain.levels import ALL_LEVELS
from ..domain.tiling import MAX_ZOOM

REQUIRED = ("level", "label", "colour", "fill", "weight", "fill_opacity", "min_zoom", "max_zoom", "show",
            "simplify_m")
OVERLAY_REQUIRED = ("name", "label", "source", "min_zoom", "max_zoom", "show", "group")
REPORT_REQUIRED = ("colour", "radius")
SOURCES = ("risk", "grid", "report", "building")
BASEMAP_CRS = ("wgs84", "gcj02")


def layers_dir() -> Path:
    """GRIDMAP_LAYERS, else the checkout's ``layers/``."""
    return Path(os.environ.get("GRIDMAP_LAYERS", Path(__file__).resolve().parents[2] / "layers"))


def _load(folder: Path, name: str) -> tuple[Path, dict]:
    path = Path(folder) / name
    try:
        with open(path, "rb") as f:
            return path, tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (layer definitions live in {folder})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


def _check_zooms(path, i, e):
    if not (0 <= e["min_zoom"] <= e["max_zoom"] <= MAX_ZOOM):
        raise ValueError(f"{path}: entry {i + 1} needs 0 <= min_zoom <= max_zoom <= {MAX_ZOOM}")


def _mtime(folder: Path, name: str) -> int:
    try:
        return (folder / name).stat().st_mtime_ns
    except OSError:
        return 0


def level_layers(folder: Path | None = None) -> tuple[dict, ...]:
    """The grid level layers in drawing order (re-read when the file changes)."""
    folder = Path(folder or layers_dir())
    return _level_layers(folder, _mtime(folder, "levels.toml"))


def overlay_layers(folder: Path | None = None) -> tuple[dict, ...]:
    """Risk, shading and report overlays in drawing order (re-read when the file changes)."""
    folder = Path(folder or layers_dir())
    return _overlay_layers(folder, _mtime(folder, "levels.toml"), _mtime(folder, "overlays.toml"))


@lru_cache(maxsize=8)
def _level_layers(folder: Path, _mtime_ns: int) -> tuple[dict, ...]:
    path, data = _load(folder, "levels.toml")
    entries = data.get("level", [])
    for i, e in enumerate(entries):
        missing = [k for k in REQUIRED if k not in e]
        if missing:
            raise ValueError(f"{path}: level entry {i + 1} lacks {', '.join(missing)}")
        if e["level"] not in ALL_LEVELS:
            raise ValueError(f"{path}: level entry {i + 1} names unknown level {e['level']!r}")
        _check_zooms(path, i, e)
    return tuple(entries)


@lru_cache(maxsize=8)
def _overlay_layers(folder: Path, _levels_mtime_ns: int, _mtime_ns: int) -> tuple[dict, ...]:
    path, data = _load(folder, "overlays.toml")
    entries = data.get("overlay", [])
    names = {e["level"] for e in level_layers(folder)}
    for i, e in enumerate(entries):
        missing = [k for k in OVERLAY_REQUIRED if k not in e]
        if missing:
            raise ValueError(f"{path}: overlay entry {i + 1} lacks {', '.join(missing)}")
        if e["source"] not in SOURCES:
            raise ValueError(f"{path}: overlay {e['name']!r} has source {e['source']!r}; use one of {', '.join(SOURCES)}")
        if e["source"] == "grid" and e.get("level") not in ALL_LEVELS:
            raise ValueError(f"{path}: overlay {e['name']!r} (source grid) needs a level, one of {', '.join(ALL_LEVELS)}")
        if e["source"] == "report" and [k for k in REPORT_REQUIRED if k not in e]:
            raise ValueError(f"{path}: overlay {e['name']!r} (source report) needs {' and '.join(REPORT_REQUIRED)}")
        if e["name"] in names:
            raise ValueError(f"{path}: overlay name {e['name']!r} is used twice (or by a level)")
        names.add(e["name"])
        _check_zooms(path, i, e)
    return tuple(entries)


def tile_layers() -> dict[str, dict]:
    """Every layer served as vector tiles, by name: the grid levels and the risk/grid overlays."""
    layers = {e["level"]: {**e, "name": e["level"], "source": "grid", "risk_only": False} for e in level_layers()}
    for e in overlay_layers():
        if e["source"] in ("risk", "grid", "building"):
            layers[e["name"]] = {**e, "risk_only": e["source"] == "grid"}
    return layers


def basemap() -> dict:
    """The base map: url ("" for none), crs (wgs84 or gcj02), attribution, max_zoom."""
    path, data = _load(layers_dir(), "basemap.toml")
    out = {"url": data.get("url", ""), "crs": data.get("crs", "wgs84"), "attribution": data.get("attribution", ""),
           "max_zoom": int(data.get("max_zoom", 19))}
    if os.environ.get("GRIDMAP_BASEMAP_URL") is not None:
        out["url"] = os.environ["GRIDMAP_BASEMAP_URL"]
    if os.environ.get("GRIDMAP_BASEMAP_CRS"):
        out["crs"] = os.environ["GRIDMAP_BASEMAP_CRS"]
    if out["crs"] not in BASEMAP_CRS:
        raise ValueError(f"{path}: base map crs {out['crs']!r}; use wgs84 or gcj02")
    return out


def layer_for(level: str) -> dict:
    return next(e for e in level_layers() if e["level"] == level)
