"""Point -> micro-grid -> whole chain, exact and fast, for one version of the grids.

How it works.  Grids nest and tile, so one exact hit at micro level gives the
whole chain through parent links.  To find the micro-grid without a polygon test
for most points, a regular grid of cells (``cell_m`` metres) covers the city:

* every cell that any micro-grid ring passes through is *mixed*: found exactly by
  walking each ring segment's crossings of the cell lines (a segment can enter a
  cell only through a crossing, or start in it), with the cells on both sides of
  each crossing marked, and both rows or columns when it falls on a cell corner;
* every other cell lies wholly inside one micro-grid or wholly outside them all.
  Such *pure* cells form connected regions that no ring crosses, so one test of
  one cell centre per region labels the region (``scipy.ndimage.label``).

A point in a pure cell is answered by one array read; a point in a mixed cell by
an exact ``intersects`` test against the micro-grids (STRtree).  Boundary rule:
``covers`` semantics (a point on an edge belongs to the grids on both sides) and
then the **lowest code wins**, so a point on a shared edge or vertex resolves to
exactly one micro-grid, deterministically.  Special grids are tested only for
points in cells that a special grid's bounding box touches.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import lazy_loader
import numpy as np
import shapely

from .. import geo
from . import cell_edges
from .cells import segment_cells
from .levels import LEVELS, SPECIAL
from .nearest import Nearest

pd = lazy_loader.load("pandas")

MIXED = -2
OUTSIDE = -1
#: Special grids are looked for only in blocks of this many cells a side that their bounds touch.
SPECIAL_BLOCK = 8
#: Version of the persisted form (:meth:`GridIndex.state`): another is rebuilt, never read.
STATE_FORMAT = 4
#: Chain levels above the micro-grid, top first.
CHAIN = LEVELS


#: The problems a point can have: one wording for the API, the CLI and files (issue #15 item 13).
NOT_NUMBERS = "lon and lat must be numbers"
NOT_A_POINT = "each point must be an object with lon and lat, or with address"
#: Decimals of the WGS84 lon/lat in answers: 1e-7° is about 1 cm.
DECIMALS = 7
SWAPPED = "coordinates look like swapped lat/lon: lon must come first"
OUT_OF_RANGE = "coordinates out of range (lon -180..180, lat -90..90)"
OUTSIDE_CHINA = "coordinates outside China (check crs)"


def looks_swapped(lon: float, lat: float) -> bool:
    """Whether degrees ``lon``, ``lat`` are a place in China only the other way round (:data:`SWAPPED`)."""
    lo_x, lo_y, hi_x, hi_y = geo.CHINA_BOUNDS
    return lo_y <= lon <= hi_y and lo_x <= lat <= hi_x


def check_point(lon: float, lat: float, crs: str = "EPSG:4326") -> tuple[float, float, str | None]:
    """:func:`check_points` for one point, without array overhead (the HTTP hot path)."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return lon, lat, NOT_NUMBERS
    lo_x, lo_y, hi_x, hi_y = geo.CHINA_BOUNDS
    if geo.is_geographic(crs):
        if looks_swapped(lon, lat):
            return lon, lat, SWAPPED
        if abs(lon) > 180 or abs(lat) > 90:
            return lon, lat, OUT_OF_RANGE
    if crs == f"EPSG:{geo.STORAGE_SRID}":
        x, y = lon, lat
    else:
        xs, ys = geo.transform_xy([lon], [lat], crs)
        x, y = float(xs[0]), float(ys[0])
    if not (lo_x <= x <= hi_x and lo_y <= y <= hi_y):
        return x, y, OUTSIDE_CHINA
    return x, y, None


def check_points(lon, lat, crs: str = "EPSG:4326"):
    """Validate and convert points to storage lon/lat; returns (lon, lat, problem strings or None).

    A row's problem names it: not a number, out of range, swapped lat/lon, outside China.
    """
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    problems = np.full(len(lon), None, dtype=object)
    nan = ~np.isfinite(lon) | ~np.isfinite(lat)
    problems[nan] = NOT_NUMBERS
    geographic = geo.is_geographic(crs)
    lo_x, lo_y, hi_x, hi_y = geo.CHINA_BOUNDS
    if geographic:
        swapped = ~nan & (lon >= lo_y) & (lon <= hi_y) & (lat >= lo_x) & (lat <= hi_x)
        problems[swapped] = SWAPPED
        out_of_range = ~nan & ~swapped & ((np.abs(lon) > 180) | (np.abs(lat) > 90))
        problems[out_of_range] = OUT_OF_RANGE
    bad = problems != None  # noqa: E711
    x, y = geo.transform_xy(
        np.where(bad, 114.0 if geographic else 0.0, lon), np.where(bad, 34.0 if geographic else 0.0, lat), crs
    )
    outside = ~bad & ~((x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y))
    problems[outside] = OUTSIDE_CHINA
    return x, y, problems


@dataclass
class Located:
    """Answers for an array of points: micro-grid number per point (-1 outside), and the special
    grids as pairs (point number, special number)."""

    micro: np.ndarray
    special_points: np.ndarray
    special_ids: np.ndarray


def _parent_rows(code: np.ndarray, parent_code: np.ndarray) -> np.ndarray:
    """Row of each row's parent (-1: none, or not among the rows), by a binary search of the ascending
    codes as fixed-width text, compared in C: a dict of 68,000 codes took ~110 ms of each persisted
    index's load and of each update that changes the tree; this ~20 ms from a persisted index's text,
    ~45 ms from object arrays (their conversion to text included).  ValueError when the codes are not
    ascending (an index of another version)."""
    if len(code) > 1 and not np.all(code[1:] >= code[:-1]):
        raise ValueError("index rows not in ascending code order")
    if not len(code):
        return np.full(len(parent_code), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(code, parent_code), len(code) - 1)
    return np.where(code[pos] == parent_code, pos, -1).astype(np.int64)


class GridIndex:
    """The in-memory index of one version of the grids (see the module docstring).

    ``key`` names the version set it was built from (the persisted copy's name); ``epoch`` the grid
    epoch it is true at.  Built from a frame of grids (``code``, ``name``, ``level``,
    ``parent_code``, ``geometry`` of micro and special grids), or loaded by :meth:`from_state`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        cell_m: float = 25.0,
        max_cells: int = 24_000_000,
        epoch=None,
        at=None,
        people: dict | None = None,
        key: str | None = None,
    ):
        self.epoch, self.at, self.key, self.database = epoch, at, key, None
        self.source = "built"  # or "disk" (from_state), "updated" (index_update)
        self.cell_m, self.max_cells = cell_m, max_cells
        self.people, self.people_loaded = people or {}, people is not None
        frame = frame.sort_values("code", kind="stable").reset_index(drop=True)
        self._set_rows(frame["code"], frame["name"], frame["level"], frame["parent_code"])
        self.version = frame["id"].to_numpy(dtype=np.int64) if "id" in frame else np.zeros(len(frame), np.int64)
        geoms = np.asarray(frame["geometry"].to_numpy(), dtype=object)
        self._set_geoms(geoms[self.micro], geoms[self.special])
        self._build_cells()

    # --- rows, chains, geometries ---------------------------------------------------------
    def _set_rows(self, code, name, level, parent_code, text=None):
        """Row arrays (ascending code), micro and special row numbers, and every micro-grid's chain.
        ``text``: the codes and parent codes as fixed-width text ("" for none) when the caller has them
        (a persisted index)."""
        self.code = np.asarray(code, dtype=object)
        self.name = np.asarray(name, dtype=object)
        self.level = np.asarray(level, dtype=object)
        self.parent_code = np.asarray(parent_code, dtype=object)
        if text is None:
            text = self.code.astype(str), np.where(self.parent_code == None, "", self.parent_code).astype(str)  # noqa: E711
        parent = _parent_rows(*text)
        self.micro = np.flatnonzero(self.level == "micro")  # ascending code: lowest code first
        self.special = np.flatnonzero(self.level == SPECIAL)
        # chain rows for every micro-grid, one array per level (-1 when missing)
        self.chain = {"micro": self.micro}
        cur = self.micro
        for lv in reversed(CHAIN[:-1]):
            cur = np.where(cur >= 0, parent[np.maximum(cur, 0)], -1)
            self.chain[lv] = np.where((cur >= 0) & (self.level[np.maximum(cur, 0)] == lv), cur, -1)
        self._categories = None
        # chains answered so far, by micro number: new rows, new chains (an index updated from another
        # is a shallow copy of it, and must not answer from the other's names and numbers)
        self._chains = {}

    def _set_geoms(self, micro_geom, special_geom, wkb=None):
        """The micro and special grids' geometries; or, from a persisted index, ``wkb`` (a byte buffer
        holding micro-grid ``n``'s WKB at ``starts[n]:ends[n]``; an updated index carries its base's),
        decoded grid by grid as lookups reach them: a command answering a few points decodes a few
        polygons, not the city's, and a server's update after an edit decodes the grids near it."""
        self._micro_geom = np.asarray(micro_geom, dtype=object)
        self._micro_wkb = wkb
        self.special_geom = np.asarray(special_geom, dtype=object)
        self._micro_tree = self._special_tree = self._nearest = self._nearest_pending = None
        # held while this index finds or brings along its outer segments (its own: another index
        # finding its segments from scratch, ~40 s at city scale, must not hold this one's up)
        self._nearest_lock = threading.Lock()
        self._edges = None  # :mod:`.cell_edges`, made with the persisted form, loaded with it

    @property
    def micro_geom(self) -> np.ndarray:
        """Every micro-grid's geometry (all decoded on first use when loaded from disk)."""
        if self._micro_wkb is not None:
            self._decode(np.flatnonzero(shapely.is_missing(self._micro_geom)))
            self._micro_wkb = None
        return self._micro_geom

    def geoms(self, numbers) -> np.ndarray:
        """The geometries of micro-grids ``numbers``, decoding only those (see :meth:`_set_geoms`)."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if self._micro_wkb is not None and len(numbers):
            self._decode(np.unique(numbers[shapely.is_missing(self._micro_geom[numbers])]))
        return self._micro_geom[numbers]

    def _decode(self, numbers) -> None:
        buffer, starts, ends = self._micro_wkb
        numbers = np.asarray(numbers, dtype=np.int64)
        if len(numbers):
            # slices of a memoryview, not of a np.memmap (each of those makes a memmap object: 3x the time)
            view = memoryview(np.asarray(buffer))
            a, b = np.asarray(starts)[numbers], np.asarray(ends)[numbers]
            numbers, a, b = numbers[b > a], a[b > a], b[b > a]  # none: a grid without geometry
            chunks = [view[i:j].tobytes() for i, j in zip(a.tolist(), b.tolist())]
            self._micro_geom[numbers] = shapely.from_wkb(chunks) if chunks else []

    @property
    def micro_tree(self) -> shapely.STRtree:
        """STRtree of the micro-grids, built on first use (a loaded index rarely needs it)."""
        if self._micro_tree is None:
            self._micro_tree = shapely.STRtree(self.micro_geom)
        return self._micro_tree

    @property
    def special_tree(self) -> shapely.STRtree:
        if self._special_tree is None:
            self._special_tree = shapely.STRtree(self.special_geom)
        return self._special_tree

    def _prepared(self, numbers) -> np.ndarray:
        """Micro-grids ``numbers``, prepared for point tests (only those a lookup reaches, once)."""
        geoms = self.geoms(numbers)
        todo = ~shapely.is_prepared(geoms)
        if todo.any():
            shapely.prepare(geoms[todo])
        return geoms

    # --- cells ----------------------------------------------------------------------
    def _frame_cells(self, bounds):
        """Cell size and origin for micro-grids within ``bounds``: the origin snapped to whole cells
        and the size to the half-degree of latitude, so an index updated in place and one rebuilt
        after the same edit share their cells."""
        x0, y0, x1, y1 = bounds
        lat = round((y0 + y1) / 2 * 2) / 2
        dx = self.cell_m / (111_320.0 * np.cos(np.radians(lat)))
        dy = self.cell_m / 110_574.0
        while ((x1 - x0) / dx + 4) * ((y1 - y0) / dy + 4) > self.max_cells:
            dx, dy = dx * 1.25, dy * 1.25
        self.x0 = (np.floor(x0 / dx) - 1) * dx
        self.y0 = (np.floor(y0 / dy) - 1) * dy
        self.dx, self.dy = dx, dy
        return int(np.ceil((x1 - self.x0) / dx)) + 2, int(np.ceil((y1 - self.y0) / dy)) + 2

    def _build_cells(self):
        if not len(self.micro):
            self.x0 = self.y0 = 0.0
            self.dx = self.dy = 1.0
            self.cells = np.full((1, 1), OUTSIDE, dtype=np.int32)
            self.special_blocks = np.zeros((1, 1), dtype=bool)
            self.mixed_cells = self.cand_start = np.zeros(1, dtype=np.int32)
            self.cand = np.zeros(0, dtype=np.int32)
            return
        nx, ny = self._frame_cells(shapely.total_bounds(self.micro_geom))
        cell, grid = self.ring_cells(np.arange(len(self.micro)), (0, 0, nx, ny), (ny, nx))
        self._set_candidates(cell, grid)
        # 2 bytes a cell while micro-grids are fewer than 65,534 (MIXED and OUTSIDE wrap to the top)
        dtype = np.uint16 if len(self.micro) < 65_534 else np.int32
        mixed = np.zeros(ny * nx, dtype=bool)
        mixed[self.mixed_cells] = True
        self.cells = self.label_window(mixed.reshape(ny, nx), 0, 0).astype(dtype)
        self._set_special_blocks()

    def ring_cells(self, numbers, window, shape):
        """(flat cell, micro number) pairs, sorted and unique: every cell inside ``window`` (col0, row0,
        col1, row1) of a grid of ``shape`` (rows, cols) that the rings of micro-grids ``numbers`` pass
        through, with those grids and every one of them covering the cell's centre.  The latter are
        the grids that may hold a whole crossed cell: overlapping grids (a tower two micro-grids share)
        must be candidates there too, or the lowest code could be missed."""
        ny, nx = shape
        numbers = np.asarray(numbers, dtype=np.int64)
        parts, part_of = shapely.get_parts(self.geoms(numbers), return_index=True)
        rings, ring_of_part = shapely.get_rings(parts, return_index=True)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        owner = numbers[part_of[ring_of_part[ring_of]]]
        gx = (coords[:, 0] - self.x0) / self.dx
        gy = (coords[:, 1] - self.y0) / self.dy
        same = ring_of[:-1] == ring_of[1:]
        cell, grid = segment_cells(gx[:-1][same], gy[:-1][same], gx[1:][same], gy[1:][same], owner[:-1][same], nx, ny)
        c0, r0, c1, r1 = window
        cy, cx = np.divmod(cell, nx)
        inside = (cx >= c0) & (cx < c1) & (cy >= r0) & (cy < r1)
        cell, grid = cell[inside], grid[inside]
        crossed = np.unique(cell)
        cy, cx = np.divmod(crossed, nx)
        centres = shapely.points(self.x0 + (cx + 0.5) * self.dx, self.y0 + (cy + 0.5) * self.dy)
        whole = len(numbers) == len(self.micro)
        tree = self.micro_tree if whole else shapely.STRtree(self.geoms(numbers))
        at, holder = tree.query(centres, predicate="intersects")
        n = np.int64(max(len(self.micro), 1))
        key = np.concatenate([cell * n + grid, crossed[at] * n + (holder if whole else numbers[holder])])
        key.sort()  # sort-based dedupe: several times faster here than np.unique's hashing
        key = key[np.concatenate(([True], key[1:] != key[:-1]))] if len(key) else key
        return np.divmod(key, n)

    def _set_candidates(self, cell, grid):
        """Candidates of each mixed cell (CSR, by cell then micro number = lowest code first)."""
        starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1]))) if len(cell) else np.zeros(0, int)
        self.mixed_cells = cell[starts].astype(np.int32)
        self.cand_start = np.append(starts, len(grid)).astype(np.int32)
        self.cand = grid.astype(np.int32)

    def label_window(self, mixed, row0, col0, numbers=None) -> np.ndarray:
        """Cell values for a window of the grid whose mixed cells are ``mixed`` (bool, rows x cols,
        its top-left cell at ``row0``, ``col0``): MIXED, or the micro number (OUTSIDE) of each pure
        region, found by one exact test of its first cell in raster order (against the micro-grids
        ``numbers`` only, when given: those meeting the window)."""
        ny, nx = mixed.shape
        from scipy import ndimage  # deferred: its import costs a loaded index's start about 0.3 s

        labels, n = ndimage.label(~mixed)
        # first cell of each region in raster order; blocks bottom-up, reversed, so the first write wins last
        first = np.full(n + 1, -1, dtype=np.int64)
        for r in range(((ny - 1) // 256) * 256, -1, -256):
            block = labels[r : r + 256].ravel()
            first[block[::-1]] = r * nx + np.arange(block.size - 1, -1, -1)
        cy, cx = np.divmod(first[1:], nx)
        px = self.x0 + (col0 + cx + 0.5) * self.dx
        py = self.y0 + (row0 + cy + 0.5) * self.dy
        region = np.concatenate([[MIXED], self._exact(px, py, numbers)])  # one exact test per pure region
        return region[labels]

    def _set_special_blocks(self):
        """Blocks of SPECIAL_BLOCK x SPECIAL_BLOCK cells that a special grid's bounding box touches."""
        ny, nx = self.cells.shape
        self.special_blocks = np.zeros((ny // SPECIAL_BLOCK + 1, nx // SPECIAL_BLOCK + 1), dtype=bool)
        for bx0, by0, bx1, by1 in shapely.bounds(self.special_geom):
            if not np.isfinite(bx0):
                continue
            i0, j0 = int((bx0 - self.x0) // self.dx) // SPECIAL_BLOCK, int((by0 - self.y0) // self.dy) // SPECIAL_BLOCK
            i1, j1 = int((bx1 - self.x0) // self.dx) // SPECIAL_BLOCK, int((by1 - self.y0) // self.dy) // SPECIAL_BLOCK
            self.special_blocks[max(j0, 0) : j1 + 1, max(i0, 0) : i1 + 1] = True

    def name_of(self, code: str) -> str | None:
        """The name of grid ``code`` in this index (None when it has no such grid)."""
        i = int(np.searchsorted(self.code, code))  # codes are sorted (see __init__)
        return self.name[i] if i < len(self.code) and self.code[i] == code else None

    @property
    def nbytes(self) -> int:
        """Bytes held by the cell arrays (geometries are extra)."""
        return (
            self.cells.nbytes
            + self.special_blocks.nbytes
            + self.mixed_cells.nbytes
            + self.cand.nbytes
            + self.cand_start.nbytes
        )

    def stats(self) -> dict:
        pure = 1.0 - len(self.mixed_cells) / self.cells.size
        return {
            "micro_grids": int(len(self.micro)),
            "cells": int(self.cells.size),
            "pure_share": round(pure, 4),
            "cell_deg": [self.dx, self.dy],
            "epoch": self.epoch,
            "source": self.source,
        }

    # --- persistence (arrays in, arrays out; the files are the store's business) -------------
    STATE_ARRAYS = ("cells", "special_blocks", "mixed_cells", "cand_start", "cand")

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-ready metadata, named arrays) that :meth:`from_state` turns back into this index."""
        arrays = {name: getattr(self, name) for name in self.STATE_ARRAYS}
        for name in ("code", "name", "level", "parent_code"):
            arrays[name] = np.array([v if isinstance(v, str) else "" for v in getattr(self, name)], dtype=str)
        arrays["version"] = self.version
        wkb = shapely.to_wkb(self.micro_geom)
        arrays["micro_wkb_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in wkb])]).astype(np.int64)
        arrays["micro_wkb"] = np.frombuffer(b"".join(wkb), dtype=np.uint8)
        if len(self.special_geom):
            kind, coords, offsets = shapely.to_ragged_array(self.special_geom)
            arrays["special_coords"] = coords
            for k, o in enumerate(offsets):
                arrays[f"special_offsets{k}"] = o
        nearest_meta, nearest_arrays = self.nearest_index().state()
        arrays.update({f"nearest_{k}": v for k, v in nearest_arrays.items()})
        arrays.update(self.cell_edges().state())
        meta = {
            "format": STATE_FORMAT,
            "nearest": nearest_meta,
            "epoch": self.epoch,
            "key": self.key,
            "cell_m": self.cell_m,
            "max_cells": self.max_cells,
            "origin": [self.x0, self.y0, self.dx, self.dy],
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays) -> GridIndex:
        """The index :meth:`state` described (``arrays`` may be memory-mapped); ValueError when they
        are of another format or incomplete."""
        needed = {"code", "version", "micro_wkb", "micro_wkb_offsets", *cls.STATE_ARRAYS}
        needed |= {f"edges_{name}" for name in cell_edges.ARRAYS}
        if meta.get("format") != STATE_FORMAT or not needed <= set(arrays):
            raise ValueError("not a lookup index of this version")
        self = cls.__new__(cls)
        self.epoch, self.key, self.at, self.database = meta["epoch"], meta["key"], None, meta.get("database")
        self.source = "disk"
        self.people, self.people_loaded = {}, False
        self.cell_m, self.max_cells = meta["cell_m"], meta["max_cells"]
        self.x0, self.y0, self.dx, self.dy = meta["origin"]
        text = np.asarray(arrays["code"]), np.asarray(arrays["parent_code"])
        parent = text[1].astype(object)
        parent[parent == ""] = None
        self._set_rows(text[0].astype(object), arrays["name"].astype(object), arrays["level"], parent, text)
        self.version = np.asarray(arrays["version"])
        special = np.zeros(0, dtype=object)
        if "special_coords" in arrays:
            offsets = tuple(arrays[f"special_offsets{k}"] for k in range(3))
            special = shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, arrays["special_coords"], offsets)
        micro = np.full(len(self.micro), None, dtype=object)
        offsets = arrays["micro_wkb_offsets"]
        self._set_geoms(micro, special, wkb=(arrays["micro_wkb"], offsets[:-1], offsets[1:]))
        for name in cls.STATE_ARRAYS:
            setattr(self, name, arrays[name])
        near = {k[len("nearest_") :]: v for k, v in arrays.items() if k.startswith("nearest_")}
        self._nearest = Nearest.from_state(meta["nearest"], near)
        self._edges = cell_edges.CellEdges.from_state(arrays)
        return self

    def cell_edges(self) -> cell_edges.CellEdges:
        """The mixed cells' own segments (:mod:`.cell_edges`), made on first use (persisting)."""
        if self._edges is None:
            shape = self.cells.shape
            self._edges = cell_edges.build(
                self.micro_geom, self.x0, self.y0, self.dx, self.dy, shape, self.mixed_cells, self.cand_start, self.cand
            )
        return self._edges

    # --- lookups ----------------------------------------------------------------------
    def _exact(self, x, y, numbers=None) -> np.ndarray:
        """Micro-grid number (index into self.micro) covering each point, lowest code first; -1 if
        none.  ``numbers``: only these micro-grids (ascending) can cover the points."""
        out = np.full(len(x), OUTSIDE, dtype=np.int64)
        if not len(x) or not len(self.micro):
            return out
        if numbers is None:
            pts, grids = self.micro_tree.query(shapely.points(x, y), predicate="intersects")
        else:
            numbers = np.asarray(numbers, dtype=np.int64)
            pts, grids = shapely.STRtree(self.geoms(numbers)).query(shapely.points(x, y), predicate="intersects")
            grids = numbers[grids]
        if len(pts):
            best = np.full(len(x), np.iinfo(np.int64).max)
            np.minimum.at(best, pts, grids)
            hit = best != np.iinfo(np.int64).max
            out[hit] = best[hit]
        return out

    def locate(self, x, y) -> Located:
        """Micro-grid numbers for storage lon/lat arrays, and the special grids covering them."""
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        ny, nx = self.cells.shape
        finite = np.isfinite(x) & np.isfinite(y)
        cx = np.floor((np.where(finite, x, self.x0 - self.dx) - self.x0) / self.dx).astype(np.int64)
        cy = np.floor((np.where(finite, y, self.y0 - self.dy) - self.y0) / self.dy).astype(np.int64)
        inside = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
        micro = np.full(len(x), OUTSIDE, dtype=np.int64)
        micro[inside] = self.cells[cy[inside], cx[inside]]
        if self.cells.dtype == np.uint16:  # undo the wrap of the negative markers
            micro[micro >= 65_534] -= 65_536
        mixed = np.flatnonzero(micro == MIXED)
        if len(mixed):
            micro[mixed] = self._in_mixed_cells(mixed, cy[mixed] * nx + cx[mixed], x, y)
        sp, sid = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        near = np.flatnonzero(inside)
        near = near[self.special_blocks[cy[near] // SPECIAL_BLOCK, cx[near] // SPECIAL_BLOCK]]
        if len(near) and len(self.special):
            p, sid = self.special_tree.query(shapely.points(x[near], y[near]), predicate="intersects")
            sp = near[p]
        return Located(micro, sp, sid)

    def _in_mixed_cells(self, pts, cells, x, y) -> np.ndarray:
        """Test points of mixed cells against their cells' candidates only (:meth:`_first_covering`):
        from the cells' own segments when the index has them (:meth:`_edge_test`), else with prepared
        polygons."""
        slot = np.searchsorted(self.mixed_cells, cells.astype(self.mixed_cells.dtype, copy=False))  # see candidates_one
        lo, hi = self.cand_start[slot], self.cand_start[slot + 1]
        px, py = x[pts], y[pts]
        if self._edges is not None:
            return self._first_covering(lo, hi, self._edge_test(cells, px, py))

        def test(todo, pair):
            return shapely.intersects_xy(self._prepared(self.cand[pair]), px[todo], py[todo])

        out = self._first_covering(lo, hi, test)
        # no candidate covers it: only a grid wholly containing the cell could (overlapping data)
        miss = np.flatnonzero(out == OUTSIDE)
        if len(miss):
            out[miss] = self._exact(px[miss], py[miss])
        return out

    def _first_covering(self, lo, hi, test) -> np.ndarray:
        """Per point, the first of its candidates ``cand[lo:hi]`` that ``test(points, pairs)`` says
        covers it (OUTSIDE when none).  Candidates are in ascending code order, so the first is the
        answer: round k tests the k-th candidate of the points still unanswered (vectorised, about
        1.5 tests a point)."""
        lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        out = np.full(len(lo), OUTSIDE, dtype=np.int64)
        todo = np.arange(len(lo))
        k = 0
        while len(todo):
            todo = todo[lo[todo] + k < hi[todo]]
            if not len(todo):
                break
            pair = lo[todo] + k
            hit = test(todo, pair)
            out[todo[hit]] = self.cand[pair[hit]]
            todo = todo[~hit]
            k += 1
        return out

    def _edge_test(self, cells, px, py):
        """The test of :meth:`_first_covering` from the cells' own segments (:mod:`.cell_edges`),
        without a polygon; the few points whose answer is uncertain there get the exact GEOS test.
        No fallback for points no candidate covers: the candidates of a crossed cell include every
        grid covering its centre, so a grid covering the whole cell is one of them."""
        nx = self.cells.shape[1]
        cy, cx = np.divmod(np.asarray(cells, dtype=np.int64), nx)
        fx = (px - self.x0) / self.dx - cx
        fy = (py - self.y0) / self.dy - cy
        centre_x = self.x0 + (cx + 0.5) * self.dx  # as cell_edges.build computed them: the same floats
        centre_y = self.y0 + (cy + 0.5) * self.dy

        def test(todo, pair):
            hit, unsure = self._edges.covers(
                pair, px[todo], py[todo], centre_x[todo], centre_y[todo], fx[todo], fy[todo]
            )  # fmt: skip
            if unsure.any():
                u = np.flatnonzero(unsure)
                hit[u] = shapely.intersects_xy(self._prepared(self.cand[pair[u]]), px[todo[u]], py[todo[u]])
            return hit

        return test

    def nearest(self, x, y):
        """Nearest micro-grid number and distance in metres (EPSG:4547) for points outside every grid
        (:mod:`gridmap.domain.nearest`; its outer segments are found on first use)."""
        return self.nearest_index().query(x, y)

    @property
    def nearest_ready(self) -> bool:
        """Whether the outer segments are found (a lookup outside every grid then finds nothing first)."""
        return self._nearest is not None

    def settle(self) -> None:
        """Bring the outer segments along now if an update left that to their first use (a server,
        once the update is in force: the chain of bases stops here)."""
        if self._nearest_pending is not None:
            self.nearest_index()

    def nearest_index(self) -> Nearest:
        """The outer segments of the micro-grids, found on first use; an updated index's are brought
        along from its base's (:func:`.index_update.updated` leaves that to the first use, so the
        update itself is in force sooner)."""
        if self._nearest is None:
            with self._nearest_lock:  # two lookups at once make it once
                if self._nearest is None:
                    pending, self._nearest_pending = self._nearest_pending, None
                    near = pending() if pending is not None else None
                    self._nearest = near if near is not None else Nearest(self.micro_geom)
        return self._nearest

    def categories(self):
        """(code dtype, name dtype, name number per row) for categorical chain columns, made once."""
        if self._categories is None:
            names, name_id = np.unique(self.name.astype(str), return_inverse=True)
            self._categories = (
                pd.CategoricalDtype(pd.Index(self.code.astype(str))),
                pd.CategoricalDtype(pd.Index(names)),
                name_id,
            )
        return self._categories

    def level_values(self, level: str):
        """(position of each row among the rows of ``level``, -1 for other rows; their codes;
        number of each one's name among the level's distinct names; those names), made once:
        per-level dictionaries for columnar answers."""
        cache = self.__dict__.setdefault("_level_values", {})
        if level not in cache:
            rows = np.flatnonzero(self.level == level)
            pos = np.full(len(self.code) + 1, -1, dtype=np.int64)  # the extra slot answers row -1
            pos[rows] = np.arange(len(rows))
            names, name_of = np.unique(self.name[rows].astype(str), return_inverse=True)
            cache[level] = (pos, self.code[rows].astype(str), name_of, names)
        return cache[level]

    def chain_rows(self, micro_numbers: np.ndarray) -> dict[str, np.ndarray]:
        """Row numbers (into code/name) of each level of the chain; -1 where absent."""
        if not len(self.micro):  # no grids in this version: nothing is inside
            return {level: np.full(len(micro_numbers), -1, dtype=np.int64) for level in CHAIN}
        ok = micro_numbers >= 0
        safe = np.maximum(micro_numbers, 0)
        return {level: np.where(ok, self.chain[level][safe], -1) for level in CHAIN}

    def cell_one(self, x: float, y: float) -> tuple[int, int, int] | None:
        """(column, row, label) of one point's cell: a micro number, MIXED or OUTSIDE; None off the grid."""
        ny, nx = self.cells.shape
        cx = int((x - self.x0) // self.dx)
        cy = int((y - self.y0) // self.dy)
        if not (0 <= cx < nx and 0 <= cy < ny):
            return None
        m = int(self.cells[cy, cx])
        if self.cells.dtype == np.uint16 and m >= 65_534:
            m -= 65_536
        return cx, cy, m

    def candidates_one(self, cx: int, cy: int) -> np.ndarray:
        """The candidate micro numbers of a mixed cell, ascending."""
        # the key in the array's own dtype: a mismatch makes numpy cast (copy) the whole array per call
        key = self.mixed_cells.dtype.type(cy * self.cells.shape[1] + cx)
        slot = int(self.mixed_cells.searchsorted(key))
        return self.cand[self.cand_start[slot] : self.cand_start[slot + 1]]

    def locate_one(self, x: float, y: float) -> tuple[int, list[int]]:
        """:meth:`locate` for one point without array overhead (the HTTP hot path)."""
        cell = self.cell_one(x, y)
        if cell is None:
            return OUTSIDE, []
        cx, cy, m = cell
        if m == MIXED:
            m = OUTSIDE
            for c in self.candidates_one(cx, cy):
                if shapely.intersects_xy(self._prepared([c])[0], x, y):
                    m = int(c)
                    break
            else:
                m = int(self._exact(np.array([x]), np.array([y]))[0])
        return m, self.specials_one(x, y, cx, cy)

    def specials_one(self, x: float, y: float, cx: int, cy: int) -> list[int]:
        """The special grids covering one point in cell (``cx``, ``cy``), ascending."""
        if not self.special_blocks[cy // SPECIAL_BLOCK, cx // SPECIAL_BLOCK]:
            return []
        return sorted(int(s) for s in self.special_tree.query(shapely.Point(x, y), predicate="intersects"))

    def chain_of(self, m: int) -> list[dict]:
        """The chain (top first) of micro-grid number ``m``, as JSON-ready objects, made once per grid
        (answers share it)."""
        cache = self._chains
        chain = cache.get(m)
        if chain is None:
            chain = cache[m] = [
                {"level": level, "code": self.code[r], "name": self.name[r]}
                for level in CHAIN
                if (r := int(self.chain[level][m])) >= 0
            ]
        return chain

    def answer_one(self, x: float, y: float) -> dict:
        """:meth:`answers` for one point."""
        m, specials = self.locate_one(x, y)
        if m < 0:
            return self.answers(np.array([x]), np.array([y]))[0]  # outside: nearest grid, rare
        return self.answer_inside(x, y, m, specials)

    def answer_inside(self, x: float, y: float, m: int, specials: list[int]) -> dict:
        """The answer for a point in micro-grid number ``m`` and special grids ``specials``."""
        micro_code = self.code[self.micro[m]]
        return {
            "lon": round(float(x), DECIMALS),
            "lat": round(float(y), DECIMALS),
            "inside": True,
            "micro": micro_code,
            "chain": self.chain_of(m),
            "specials": [{"code": self.code[self.special[s]], "name": self.name[self.special[s]]} for s in specials],
            "people": self.people.get(micro_code, []),
        }

    def answers(self, x, y) -> list[dict]:
        """The whole answer (JSON-ready) for each storage lon/lat point."""
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        found = self.locate(x, y)
        out = [{"lon": round(a, DECIMALS), "lat": round(b, DECIMALS)} for a, b in zip(x.tolist(), y.tolist())]
        outside = np.flatnonzero(found.micro < 0)
        for i in outside:
            out[i].update(inside=False, chain=[], specials=[], people=[], nearest=None)
        if len(outside) and len(self.micro):
            idx, dist = self.nearest(x[outside], y[outside])
            for i, j, d in zip(outside, idx, dist):
                r = self.micro[j]
                out[i]["nearest"] = {"code": self.code[r], "name": self.name[r], "distance_m": round(float(d), 1)}
        specials: dict[int, list[dict]] = {}
        for i, s in zip(found.special_points.tolist(), found.special_ids.tolist()):
            specials.setdefault(i, []).append({"code": self.code[self.special[s]], "name": self.name[self.special[s]]})
        none: list = []
        for i, m in zip(np.flatnonzero(found.micro >= 0).tolist(), found.micro[found.micro >= 0].tolist()):
            micro_code = self.code[self.micro[m]]
            sp = specials.get(i, none)
            out[i].update(
                inside=True,
                micro=micro_code,
                chain=self.chain_of(m),
                specials=sorted(sp, key=lambda s: s["code"]) if len(sp) > 1 else sp,
                people=self.people.get(micro_code, none),
            )
        return out

    def special_labels(self, found: Located, n: int) -> tuple[np.ndarray, list[str]]:
        """Per point the number of its label (special grid codes joined by ``;``; -1 none), and the labels."""
        ids = np.full(n, -1, dtype=np.int64)
        if not len(found.special_points):
            return ids, []
        order = np.lexsort((found.special_ids, found.special_points))
        points = found.special_points[order]
        codes = self.code[self.special[found.special_ids[order]]]
        first, starts = np.unique(points, return_index=True)
        joined = np.array([";".join(group) for group in np.split(codes, starts[1:])], dtype=object)
        labels, label_of = np.unique(joined.astype(str), return_inverse=True)
        ids[first] = label_of
        return ids, list(labels)


STATUS = ("placed", "outside", "bad")


@dataclass
class Assigned:
    """Batch answers as arrays: chain row numbers per level (-1 none), special-grid label numbers and
    labels, status number (into STATUS), error text (None when fine), the nearest micro-grid's row
    (-1) and distance in metres for points outside every grid, and the storage lon/lat (NaN when bad)."""

    rows: dict
    special: np.ndarray
    special_labels: list
    status: np.ndarray
    error: np.ndarray
    nearest: np.ndarray
    distance: np.ndarray
    x: np.ndarray
    y: np.ndarray


def assign_arrays(index: GridIndex, lon, lat, crs: str, problems=None) -> Assigned:
    """Every point's answer as arrays (see :class:`Assigned`).  ``problems``: reasons known
    beforehand (unresolvable addresses), None where the row is fine."""
    x, y, checked = check_points(lon, lat, crs)
    if problems is not None:
        checked = np.where(problems != None, problems, checked)  # noqa: E711
    good = checked == None  # noqa: E711
    x, y = np.where(good, x, np.nan), np.where(good, y, np.nan)
    found = index.locate(x, y)
    rows = index.chain_rows(found.micro)
    special, labels = index.special_labels(found, len(x))
    status = np.where(~good, 2, np.where(found.micro >= 0, 0, 1)).astype(np.int8)
    nearest = np.full(len(x), -1, dtype=np.int64)
    distance = np.full(len(x), np.nan)
    out = np.flatnonzero(status == 1)
    if len(out) and len(index.micro):
        j, d = index.nearest(x[out], y[out])
        nearest[out] = index.micro[j]
        distance[out] = np.round(d, 1)
    return Assigned(rows, special, labels, status, checked, nearest, distance, x, y)


def assign_table(index: GridIndex, lon, lat, crs: str, problems=None) -> pd.DataFrame:
    """:func:`assign_arrays` as a DataFrame: chain columns (categoricals), ``status`` (placed /
    outside / bad), ``error``, ``nearest_micro_code``, ``nearest_distance_m``, ``lon_wgs84``,
    ``lat_wgs84``."""
    a = assign_arrays(index, lon, lat, crs, problems)
    code_dtype, name_dtype, name_id = index.categories()
    out = {}
    for level in CHAIN:
        r = a.rows[level]
        out[f"{level}_code"] = pd.Categorical.from_codes(r, dtype=code_dtype)
        out[f"{level}_name"] = pd.Categorical.from_codes(
            np.where(r >= 0, name_id[np.maximum(r, 0)], -1), dtype=name_dtype
        )
    out["special_codes"] = pd.Categorical.from_codes(a.special, categories=pd.Index(a.special_labels, dtype=object))
    out["status"] = pd.Categorical.from_codes(a.status, categories=list(STATUS))
    out["error"] = a.error
    out["nearest_micro_code"] = np.where(a.nearest >= 0, index.code[np.maximum(a.nearest, 0)], None)
    out["nearest_distance_m"] = a.distance
    out["lon_wgs84"] = a.x
    out["lat_wgs84"] = a.y
    return pd.DataFrame(out)
