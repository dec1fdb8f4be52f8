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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from scipy import ndimage

from .. import geo
from .levels import LEVELS, SPECIAL

MIXED = -2
OUTSIDE = -1
#: Special grids are looked for only in blocks of this many cells a side that their bounds touch.
SPECIAL_BLOCK = 8
#: Chain levels above the micro-grid, top first.
CHAIN = LEVELS


NOT_NUMBERS = "coordinates are not numbers"
SWAPPED = "coordinates look like swapped lat/lon: lon must come first"
OUT_OF_RANGE = "coordinates out of range (lon -180..180, lat -90..90)"
OUTSIDE_CHINA = "coordinates outside China (check crs)"


def check_point(lon: float, lat: float, crs: str = "EPSG:4326") -> tuple[float, float, str | None]:
    """:func:`check_points` for one point, without array overhead (the HTTP hot path)."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return lon, lat, NOT_NUMBERS
    lo_x, lo_y, hi_x, hi_y = geo.CHINA_BOUNDS
    if geo.is_geographic(crs):
        if lo_y <= lon <= hi_y and lo_x <= lat <= hi_x:
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


class GridIndex:
    """The in-memory index of one version of the grids (see the module docstring)."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        cell_m: float = 25.0,
        max_cells: int = 24_000_000,
        epoch=None,
        at=None,
        people: dict | None = None,
    ):
        self.epoch, self.at = epoch, at
        frame = frame.sort_values("code", kind="stable").reset_index(drop=True)
        self.code = frame["code"].to_numpy(dtype=object)
        self.name = frame["name"].to_numpy(dtype=object)
        self.level = frame["level"].to_numpy(dtype=object)
        self.people = people or {}
        names, name_id = np.unique(self.name.astype(str), return_inverse=True)
        self._name_id = name_id
        self._code_dtype = pd.CategoricalDtype(pd.Index(self.code.astype(str)))
        self._name_dtype = pd.CategoricalDtype(pd.Index(names))
        row = {c: i for i, c in enumerate(self.code)}
        parent = np.array([row.get(p, -1) if isinstance(p, str) else -1 for p in frame["parent_code"]], dtype=np.int64)
        geoms = np.asarray(frame["geometry"].to_numpy(), dtype=object)
        self.micro = np.flatnonzero(self.level == "micro")  # ascending code: lowest code first
        self.micro_geom = geoms[self.micro]
        shapely.prepare(self.micro_geom)
        # chain rows for every micro-grid, one array per level (-1 when missing)
        self.chain = {"micro": self.micro}
        cur = self.micro
        for level in reversed(CHAIN[:-1]):
            cur = np.where(cur >= 0, parent[np.maximum(cur, 0)], -1)
            self.chain[level] = np.where((cur >= 0) & (self.level[np.maximum(cur, 0)] == level), cur, -1)
        self.special = np.flatnonzero(self.level == SPECIAL)
        self.special_geom = geoms[self.special]
        self.micro_tree = shapely.STRtree(self.micro_geom)
        self.special_tree = shapely.STRtree(self.special_geom)
        self._local_tree = None
        self._build_cells(cell_m, max_cells)

    # --- sent to other processes (Dask workers) -------------------------------------------
    def __getstate__(self):
        """Without the trees: they pickle their geometries a second time and rebuild in milliseconds."""
        state = self.__dict__.copy()
        for key in ("micro_tree", "special_tree", "_local_tree"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        """Rebuild the trees and prepare the micro-grids again (preparation does not survive pickling)."""
        self.__dict__.update(state)
        shapely.prepare(self.micro_geom)
        self.micro_tree = shapely.STRtree(self.micro_geom)
        self.special_tree = shapely.STRtree(self.special_geom)
        self._local_tree = None

    # --- cells ----------------------------------------------------------------------
    def _build_cells(self, cell_m, max_cells):
        if not len(self.micro):
            self.x0 = self.y0 = 0.0
            self.dx = self.dy = 1.0
            self.cells = np.full((1, 1), OUTSIDE, dtype=np.int32)
            self.special_blocks = np.zeros((1, 1), dtype=bool)
            self.mixed_cells = self.cand_start = np.zeros(1, dtype=np.int64)
            self.cand = np.zeros(0, dtype=np.int32)
            return
        x0, y0, x1, y1 = shapely.total_bounds(self.micro_geom)
        lat = (y0 + y1) / 2
        dx = cell_m / (111_320.0 * np.cos(np.radians(lat)))
        dy = cell_m / 110_574.0
        while ((x1 - x0) / dx + 2) * ((y1 - y0) / dy + 2) > max_cells:
            dx, dy = dx * 1.25, dy * 1.25
        self.x0, self.y0, self.dx, self.dy = x0 - dx, y0 - dy, dx, dy
        nx = int(np.ceil((x1 - self.x0) / dx)) + 2
        ny = int(np.ceil((y1 - self.y0) / dy)) + 2
        parts, part_of = shapely.get_parts(self.micro_geom, return_index=True)
        rings, ring_of_part = shapely.get_rings(parts, return_index=True)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        owner = part_of[ring_of_part[ring_of]]
        gx = (coords[:, 0] - self.x0) / dx
        gy = (coords[:, 1] - self.y0) / dy
        same = ring_of[:-1] == ring_of[1:]
        cell, grid = _segment_cells(gx[:-1][same], gy[:-1][same], gx[1:][same], gy[1:][same], owner[:-1][same], nx, ny)
        # candidates of each mixed cell (CSR, sorted by cell then micro number = lowest code first)
        key = cell * np.int64(len(self.micro)) + grid
        key.sort()  # sort-based dedupe: several times faster here than np.unique's hashing
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
        cell, grid = np.divmod(key, np.int64(len(self.micro)))
        starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1])))
        self.mixed_cells = cell[starts].astype(np.int32)
        self.cand_start = np.append(starts, len(grid)).astype(np.int32)
        self.cand = grid.astype(np.int32)
        mixed = np.zeros(ny * nx, dtype=bool)
        mixed[self.mixed_cells] = True
        mixed = mixed.reshape(ny, nx)
        labels, n = ndimage.label(~mixed)
        # first cell of each region in raster order; blocks bottom-up, reversed, so the first write wins last
        first = np.full(n + 1, -1, dtype=np.int64)
        for r in range(((ny - 1) // 256) * 256, -1, -256):
            block = labels[r : r + 256].ravel()
            first[block[::-1]] = r * nx + np.arange(block.size - 1, -1, -1)
        rep = first[1:]
        cy, cx = np.divmod(rep, nx)
        px = self.x0 + (cx + 0.5) * dx
        py = self.y0 + (cy + 0.5) * dy
        hit = self._exact(px, py)  # one exact test per pure region
        region = np.concatenate([[MIXED], hit])
        # 2 bytes a cell while micro-grids are fewer than 65,534 (MIXED and OUTSIDE wrap to the top)
        dtype = np.uint16 if len(self.micro) < 65_534 else np.int32
        self.cells = region.astype(dtype)[labels]
        # blocks of SPECIAL_BLOCK x SPECIAL_BLOCK cells that a special grid's bounding box touches
        self.special_blocks = np.zeros((ny // SPECIAL_BLOCK + 1, nx // SPECIAL_BLOCK + 1), dtype=bool)
        for bx0, by0, bx1, by1 in shapely.bounds(self.special_geom):
            i0, j0 = int((bx0 - self.x0) // dx) // SPECIAL_BLOCK, int((by0 - self.y0) // dy) // SPECIAL_BLOCK
            i1, j1 = int((bx1 - self.x0) // dx) // SPECIAL_BLOCK, int((by1 - self.y0) // dy) // SPECIAL_BLOCK
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
        }

    # --- lookups ----------------------------------------------------------------------
    def _exact(self, x, y) -> np.ndarray:
        """Micro-grid number (index into self.micro) covering each point, lowest code first; -1 if none."""
        out = np.full(len(x), OUTSIDE, dtype=np.int64)
        if not len(x) or not len(self.micro):
            return out
        pts, grids = self.micro_tree.query(shapely.points(x, y), predicate="intersects")
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
        """Test points of mixed cells against their cells' candidates only.  Candidates are in
        ascending code order, so the first that covers a point is the answer: round k tests the k-th
        candidate of the points still unanswered (vectorised, about 1.5 tests a point)."""
        slot = np.searchsorted(self.mixed_cells, cells)
        lo, hi = self.cand_start[slot], self.cand_start[slot + 1]
        px, py = x[pts], y[pts]
        out = np.full(len(pts), OUTSIDE, dtype=np.int64)
        todo = np.arange(len(pts))
        k = 0
        while len(todo):
            todo = todo[lo[todo] + k < hi[todo]]
            if not len(todo):
                break
            cand = self.cand[lo[todo] + k]
            hit = shapely.intersects_xy(self.micro_geom[cand], px[todo], py[todo])
            out[todo[hit]] = cand[hit]
            todo = todo[~hit]
            k += 1
        # no candidate covers it: only a grid wholly containing the cell could (overlapping data)
        miss = np.flatnonzero(out == OUTSIDE)
        if len(miss):
            out[miss] = self._exact(px[miss], py[miss])
        return out

    def nearest(self, x, y):
        """Nearest micro-grid number and distance in metres (EPSG:4547) for points outside every grid."""
        if self._local_tree is None:
            self._local_tree = shapely.STRtree(geo.to_local(self.micro_geom))
        pts = geo.to_local(shapely.points(x, y))
        _, idx = self._local_tree.query_nearest(pts, all_matches=False)
        metric_pts = geo.to_metric(shapely.points(x, y))
        metric_grids = geo.to_metric(self.micro_geom[idx])
        return idx, shapely.distance(metric_pts, metric_grids)

    def chain_rows(self, micro_numbers: np.ndarray) -> dict[str, np.ndarray]:
        """Row numbers (into code/name) of each level of the chain; -1 where absent."""
        if not len(self.micro):  # no grids in this version: nothing is inside
            return {level: np.full(len(micro_numbers), -1, dtype=np.int64) for level in CHAIN}
        ok = micro_numbers >= 0
        safe = np.maximum(micro_numbers, 0)
        return {level: np.where(ok, self.chain[level][safe], -1) for level in CHAIN}

    def locate_one(self, x: float, y: float) -> tuple[int, list[int]]:
        """:meth:`locate` for one point without array overhead (the HTTP hot path)."""
        ny, nx = self.cells.shape
        cx = int((x - self.x0) // self.dx)
        cy = int((y - self.y0) // self.dy)
        if not (0 <= cx < nx and 0 <= cy < ny):
            return OUTSIDE, []
        m = int(self.cells[cy, cx])
        if self.cells.dtype == np.uint16 and m >= 65_534:
            m -= 65_536
        if m == MIXED:
            # the key in the array's own dtype: a mismatch makes numpy cast (copy) the whole array per call
            slot = int(self.mixed_cells.searchsorted(self.mixed_cells.dtype.type(cy * nx + cx)))
            m = OUTSIDE
            for c in self.cand[self.cand_start[slot] : self.cand_start[slot + 1]]:
                if shapely.intersects_xy(self.micro_geom[c], x, y):
                    m = int(c)
                    break
            else:
                m = int(self._exact(np.array([x]), np.array([y]))[0])
        specials = []
        if self.special_blocks[cy // SPECIAL_BLOCK, cx // SPECIAL_BLOCK]:
            specials = sorted(int(s) for s in self.special_tree.query(shapely.Point(x, y), predicate="intersects"))
        return m, specials

    def answer_one(self, x: float, y: float) -> dict:
        """:meth:`answers` for one point."""
        m, specials = self.locate_one(x, y)
        if m < 0:
            return self.answers(np.array([x]), np.array([y]))[0]  # outside: nearest grid, rare
        chain = []
        for level in CHAIN:
            r = int(self.chain[level][m])
            if r >= 0:
                chain.append({"level": level, "code": self.code[r], "name": self.name[r]})
        micro_code = self.code[self.micro[m]]
        return {
            "lon": float(x),
            "lat": float(y),
            "inside": True,
            "micro": micro_code,
            "chain": chain,
            "specials": [{"code": self.code[self.special[s]], "name": self.name[self.special[s]]} for s in specials],
            "people": self.people.get(micro_code, []),
        }

    def answers(self, x, y) -> list[dict]:
        """The whole answer (JSON-ready) for each storage lon/lat point."""
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        found = self.locate(x, y)
        rows = self.chain_rows(found.micro)
        out = [{"lon": float(a), "lat": float(b)} for a, b in zip(x, y)]
        outside = np.flatnonzero(found.micro < 0)
        for i in outside:
            out[i].update(inside=False, chain=[], specials=[], people=[], nearest=None)
        if len(outside) and len(self.micro):
            idx, dist = self.nearest(x[outside], y[outside])
            for i, j, d in zip(outside, idx, dist):
                r = self.micro[j]
                out[i]["nearest"] = {"code": self.code[r], "name": self.name[r], "distance_m": round(float(d), 1)}
        specials: dict[int, list[dict]] = {}
        for i, s in zip(found.special_points, found.special_ids):
            specials.setdefault(int(i), []).append(
                {"code": self.code[self.special[s]], "name": self.name[self.special[s]]}
            )
        for i in np.flatnonzero(found.micro >= 0):
            chain = [
                {"level": lv, "code": self.code[rows[lv][i]], "name": self.name[rows[lv][i]]}
                for lv in CHAIN
                if rows[lv][i] >= 0
            ]
            micro_code = chain[-1]["code"]
            out[i].update(
                inside=True,
                micro=micro_code,
                chain=chain,
                specials=sorted(specials.get(int(i), []), key=lambda s: s["code"]),
                people=self.people.get(micro_code, []),
            )
        return out

    def table(self, x, y) -> pd.DataFrame:
        """Chain columns for arrays of storage lon/lat points (batch assignment)."""
        found = self.locate(x, y)
        rows = self.chain_rows(found.micro)
        # categoricals: one integer per point and column, no million-string columns to build
        out = {}
        for level in CHAIN:
            r = rows[level]
            out[f"{level}_code"] = pd.Categorical.from_codes(r, dtype=self._code_dtype)
            out[f"{level}_name"] = pd.Categorical.from_codes(
                np.where(r >= 0, self._name_id[np.maximum(r, 0)], -1), dtype=self._name_dtype
            )
        specials = {}
        if len(found.special_points):
            order = np.lexsort((found.special_ids, found.special_points))
            points = found.special_points[order]
            codes = self.code[self.special[found.special_ids[order]]]
            first, starts = np.unique(points, return_index=True)
            specials = {int(i): ";".join(group) for i, group in zip(first, np.split(codes, starts[1:]))}
        labels = sorted(set(specials.values()))
        label_id = {v: k for k, v in enumerate(labels)}
        ids = np.full(len(found.micro), -1, dtype=np.int64)
        for i, v in specials.items():
            ids[i] = label_id[v]
        out["special_codes"] = pd.Categorical.from_codes(ids, categories=pd.Index(labels, dtype=object))
        return pd.DataFrame(out)


def _segment_cells(ax, ay, bx, by, owner, nx, ny):
    """Flat cell numbers of every cell a segment (in cell units) passes through or touches, with the
    segment's owner per cell: its endpoints' cells, and the cells on both sides of every crossing of a
    cell line (both rows, or columns, when the crossing falls on a cell corner)."""
    eps = 1e-9
    cells, owners = [], []

    def add(ix, iy, who):
        cells.append(np.clip(iy, 0, ny - 1) * nx + np.clip(ix, 0, nx - 1))
        owners.append(who)

    add(np.floor(ax).astype(np.int64), np.floor(ay).astype(np.int64), owner)
    add(np.floor(bx).astype(np.int64), np.floor(by).astype(np.int64), owner)
    for p0, q0, p1, q1, vertical in ((ax, ay, bx, by, True), (ay, ax, by, bx, False)):
        k0 = np.ceil(np.minimum(p0, p1)).astype(np.int64)
        k1 = np.floor(np.maximum(p0, p1)).astype(np.int64)
        n = np.maximum(k1 - k0 + 1, 0)
        seg = np.repeat(np.arange(len(p0)), n)
        if not len(seg):
            continue
        k = k0[seg] + (np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n))
        dp = p1[seg] - p0[seg]
        t = (k - p0[seg]) / np.where(dp != 0, dp, 1.0)
        q = q0[seg] + t * (q1[seg] - q0[seg])
        for qq in (np.floor(q - eps).astype(np.int64), np.floor(q + eps).astype(np.int64)):
            for kk in (k - 1, k):
                add(kk, qq, owner[seg]) if vertical else add(qq, kk, owner[seg])
    return np.concatenate(cells), np.concatenate(owners).astype(np.int64)


def assign_table(index: GridIndex, lon, lat, crs: str, problems=None):
    """Chain columns plus ``status`` (placed / outside / bad), ``error`` and, for points outside
    every grid, the nearest micro-grid and its distance in metres.  ``problems``: reasons known
    beforehand (unresolvable addresses), None where the row is fine."""
    x, y, checked = check_points(lon, lat, crs)
    if problems is not None:
        checked = np.where(problems != None, problems, checked)  # noqa: E711
    problems = checked
    good = problems == None  # noqa: E711
    table = index.table(np.where(good, x, np.nan), np.where(good, y, np.nan))
    placed = table["micro_code"].notna().to_numpy()
    status = np.where(~good, "bad", np.where(placed, "placed", "outside"))
    nearest = np.full(len(x), None, dtype=object)
    distance = np.full(len(x), np.nan)
    out_idx = np.flatnonzero(status == "outside")
    if len(out_idx) and len(index.micro):
        j, d = index.nearest(x[out_idx], y[out_idx])
        nearest[out_idx] = index.code[index.micro[j]]
        distance[out_idx] = np.round(d, 1)
    table["status"] = pd.Categorical(status, categories=["placed", "outside", "bad"])
    table["error"] = problems
    table["nearest_micro_code"] = nearest
    table["nearest_distance_m"] = distance
    table["lon_wgs84"] = np.where(good, x, np.nan)
    table["lat_wgs84"] = np.where(good, y, np.nan)
    return table
