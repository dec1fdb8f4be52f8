"""The map's layer definitions, read from the layers folder (editing a file adds a layer).

``levels.toml`` the grid levels, ``overlays.toml`` risk elements, risk shading and reports,
``basemap.toml`` the base map.  A bad entry is an InputError naming the file, the entry and the key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..domain.levels import ALL_LEVELS
from ..domain.tiling import MAX_ZOOM
from ..errors import InputError
from ..settings import Settings
from .resources import mtime, read_toml

REQUIRED = ("level", "label", "colour", "fill", "weight", "fill_opacity", "min_zoom", "max_zoom", "show", "simplify_m")
OVERLAY_REQUIRED = ("name", "label", "source", "min_zoom", "max_zoom", "show", "group")
REPORT_REQUIRED = ("colour", "radius")
SOURCES = ("risk", "grid", "report", "building")
BASEMAP_CRS = ("wgs84", "gcj02")


def _load(folder: Path, name: str) -> tuple[Path, dict]:
    path = Path(folder) / name
    return path, read_toml(path, "layer definitions")


def _check_zooms(path, i, e):
    if not (0 <= e["min_zoom"] <= e["max_zoom"] <= MAX_ZOOM):
        raise InputError(f"{path}: entry {i + 1} needs 0 <= min_zoom <= max_zoom <= {MAX_ZOOM}")
    labels = e.get("label_zooms")
    if labels is not None and not (
        isinstance(labels, list)
        and len(labels) == 2
        and all(isinstance(z, int) for z in labels)
        and 0 <= labels[0] <= labels[1] <= MAX_ZOOM
    ):
        raise InputError(f"{path}: entry {i + 1} needs label_zooms = [from, to] with 0 <= from <= to <= {MAX_ZOOM}")


def level_layers(folder: Path) -> tuple[dict, ...]:
    """The grid level layers in drawing order (re-read when the file changes)."""
    folder = Path(folder)
    return _level_layers(folder, mtime(folder / "levels.toml"))


def overlay_layers(folder: Path) -> tuple[dict, ...]:
    """Risk, shading and report overlays in drawing order (re-read when the file changes)."""
    folder = Path(folder)
    return _overlay_layers(folder, mtime(folder / "levels.toml"), mtime(folder / "overlays.toml"))


@lru_cache(maxsize=8)
def _level_layers(folder: Path, _mtime_ns: int) -> tuple[dict, ...]:
    path, data = _load(folder, "levels.toml")
    entries = data.get("level", [])
    for i, e in enumerate(entries):
        missing = [k for k in REQUIRED if k not in e]
        if missing:
            raise InputError(f"{path}: level entry {i + 1} lacks {', '.join(missing)}")
        if e["level"] not in ALL_LEVELS:
            raise InputError(f"{path}: level entry {i + 1} names unknown level {e['level']!r}")
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
            raise InputError(f"{path}: overlay entry {i + 1} lacks {', '.join(missing)}")
        if e["source"] not in SOURCES:
            raise InputError(
                f"{path}: overlay {e['name']!r} has source {e['source']!r}; use one of {', '.join(SOURCES)}"
            )
        if e["source"] == "grid" and e.get("level") not in ALL_LEVELS:
            raise InputError(
                f"{path}: overlay {e['name']!r} (source grid) needs a level, one of {', '.join(ALL_LEVELS)}"
            )
        if e["source"] == "report" and [k for k in REPORT_REQUIRED if k not in e]:
            raise InputError(f"{path}: overlay {e['name']!r} (source report) needs {' and '.join(REPORT_REQUIRED)}")
        if e["name"] in names:
            raise InputError(f"{path}: overlay name {e['name']!r} is used twice (or by a level)")
        names.add(e["name"])
        _check_zooms(path, i, e)
    return tuple(entries)


def tile_layers(folder: Path) -> dict[str, dict]:
    """Every layer served as vector tiles, by name: the grid levels and the risk/grid overlays."""
    layers = {e["level"]: {**e, "name": e["level"], "source": "grid", "risk_only": False} for e in level_layers(folder)}
    for e in overlay_layers(folder):
        if e["source"] in ("risk", "grid", "building"):
            layers[e["name"]] = {**e, "risk_only": e["source"] == "grid"}
    return layers


def basemap(settings: Settings) -> dict:
    """The base map: url ("" for none), crs (wgs84 or gcj02), attribution, max_zoom; GRIDMAP_BASEMAP_URL
    and GRIDMAP_BASEMAP_CRS override the file (re-read when it changes)."""
    folder = Path(settings.layers_dir)
    out = dict(_basemap(folder, mtime(folder / "basemap.toml")))
    if settings.basemap_url is not None:
        out["url"] = settings.basemap_url
    if settings.basemap_crs:
        out["crs"] = settings.basemap_crs
    if out["crs"] not in BASEMAP_CRS:
        raise InputError(f"{folder / 'basemap.toml'}: base map crs {out['crs']!r}; use wgs84 or gcj02")
    return out


@lru_cache(maxsize=8)
def _basemap(folder: Path, _mtime_ns: int) -> dict:
    _, data = _load(folder, "basemap.toml")
    return {
        "url": data.get("url", ""),
        "crs": data.get("crs", "wgs84"),
        "attribution": data.get("attribution", ""),
        "max_zoom": int(data.get("max_zoom", 19)),
    }


def layer_for(folder: Path, level: str) -> dict:
    return next(e for e in level_layers(folder) if e["level"] == level)
