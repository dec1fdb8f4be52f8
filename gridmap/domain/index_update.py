"""A lookup index brought up to date after an edit by relabelling only the cells the edit touched.

An edit changes a few grid codes (the ``grid_change`` log names them per epoch).  The updated index:

* rows: the changed codes' old rows out, their current rows in, still in ascending code order, so
  micro-grid numbers still mean "lowest code first" and every surviving number maps monotonically
  to its new one (old cells and candidates are renumbered, never re-sorted);
* cells: a window around the old and new outlines of the changed micro-grids (one cell of margin) is
  labelled again exactly as a full build labels the whole grid: the rings of every micro-grid
  meeting the window mark its mixed cells, each pure region of the window gets one exact point test;
* candidates of mixed cells: those outside the window renumbered, the window's recomputed, merged
  (two sorted runs);
* rows: when the changed codes are the same before and after (a boundary moved), every row keeps
  its number and only the changed rows are written over; chains, special grids and their blocks are
  recomputed only when what they derive from changed (cheap, no geometry work);
* geometry: an index loaded from disk holds its grids as WKB, decoded one by one as lookups reach
  them; the update hands the undecoded ones on as WKB and decodes only the grids near the edit
  (decoding the city's took a server worker ~0.5 s on its first edit);
* nearest-grid segments: the old index's kept (renumbered) plus every segment of the grids in the
  window, re-bucketed only in the blocks that lost or gained a segment (:meth:`.Nearest.updated`),
  done by the first lookup that needs them or, in a server, right after the update is in force
  (:meth:`.GridIndex.settle`); built on first use when the old index had none.

The old index is never written to, so lookups running on it during the update stay right for the
epoch they read.  :func:`updated` returns None when only a full rebuild will do: a micro-grid now
reaching beyond the cell grid, or a cell grid whose 2-byte labels would overflow.

Why no ``rtree``: the only spatial query of an update is "which micro-grids meet this window",
one query per edit, and the old index's own cells answer it (a grid meeting the window holds a pure
cell of it or is a candidate of a mixed one): no bounds of the city's grids needed, nothing to keep
in step on inserts and deletes; the exact tests of the window's regions use a small STRtree of just
those grids.
"""

from __future__ import annotations

import copy

import lazy_loader
import numpy as np
import shapely

from .lookup import MIXED, GridIndex

pd = lazy_loader.load("pandas")

#: Marker values of 2-byte cells (MIXED, OUTSIDE as stored).
_U16_MARKERS = (65_534, 65_535)


def prepare() -> None:
    """Import now what an update needs (a server worker's start): scipy.ndimage's first import took
    ~0.4 s with the interpreter held, and fell on each worker's first edit, its lookups stalled as long;
    pandas too, loaded at its first use (``lazy_loader``), and ~0.4 s to load."""
    # deferred: a command answering from a loaded index never needs it
    from scipy import ndimage  # noqa: F401

    pd.DataFrame  # noqa: B018 (the first attribute read loads the module)


def updated(index: GridIndex, frame: pd.DataFrame, changed, *, epoch, key=None) -> GridIndex | None:
    """``index`` after the grids ``changed`` (codes) became the rows of ``frame`` (their current
    versions; a changed code missing from it was retired).  Returns a new index, or None when a full
    rebuild is needed."""
    changed = set(changed)
    frame = frame.sort_values("code", kind="stable").reset_index(drop=True)
    new = copy.copy(index)
    new.epoch, new.key, new.people, new.people_loaded, new.source = epoch, key, {}, False, "updated"
    codes = frame["code"].to_numpy(dtype=object)
    rows = index.code.searchsorted(codes) if len(index.code) else np.zeros(len(codes), dtype=np.int64)
    rows = np.minimum(rows, max(len(index.code) - 1, 0))
    if len(codes) == len(changed) and len(index.code) and np.array_equal(index.code[rows], codes):
        # the same codes before and after (boundaries moved, names changed): every row keeps its number
        _rows_in_place(new, index, frame, rows)
        pos, kept = None, np.arange(len(index.code))
    else:
        keep = np.ones(len(index.code), dtype=bool)
        keep[_rows_of(index.code, changed)] = False
        kept = np.flatnonzero(keep)
        pos = np.searchsorted(index.code[kept], codes)
        new._set_rows(
            np.insert(index.code[kept], pos, codes),
            np.insert(index.name[kept], pos, frame["name"].to_numpy(dtype=object)),
            np.insert(index.level[kept].astype(object), pos, frame["level"].to_numpy(dtype=object)),
            np.insert(index.parent_code[kept], pos, frame["parent_code"].to_numpy(dtype=object)),
        )
        new.version = np.insert(index.version[kept], pos, frame["id"].to_numpy(dtype=np.int64))
    changed_rows = _rows_of(index.code, changed)
    new_geom = np.asarray(frame["geometry"].to_numpy(), dtype=object)
    if pos is None and np.array_equal(new.micro, index.micro) and np.array_equal(new.special, index.special):
        _geoms_in_place(new, index, rows, new_geom)
    else:
        _geoms_moved(new, index, changed_rows, kept, pos, rows, new_geom)
    if pos is None and np.array_equal(new.special, index.special) and not np.isin(rows, index.special).any():
        new.special_blocks, new._special_tree = index.special_blocks, index._special_tree
    else:
        new._set_special_blocks()

    # old micro number -> new micro number (-1: gone); surviving numbers keep their order
    if pos is None:
        old_row_new_row = np.arange(len(index.code), dtype=np.int64)
    else:
        old_row_new_row = np.full(len(index.code), -1, dtype=np.int64)
        old_row_new_row[kept] = np.arange(len(kept)) + np.searchsorted(np.sort(pos), np.arange(len(kept)), side="right")
    renumber = np.searchsorted(new.micro, old_row_new_row[index.micro])
    gone = old_row_new_row[index.micro] < 0
    renumber[gone] = -1
    touched_old = _numbers_of(index.micro, changed_rows)
    touched_new = _numbers_of(new.micro, _rows_of(new.code, changed))
    # the outer segments, if found or loaded: brought along, not found again (by the first lookup
    # that needs them, or the caller right after the update is in force)
    near = index._nearest if index._nearest is not None or index._nearest_pending is None else index.nearest_index()
    if not len(touched_old) and not len(touched_new):  # names, parents or special grids only
        identity = len(renumber) == len(new.micro) and np.array_equal(renumber, np.arange(len(renumber)))
        new._nearest = near if near is None or identity else near.updated(renumber, [], [])
        return new  # cells and candidates stand
    if index.cells.dtype == np.uint16 and len(new.micro) >= _U16_MARKERS[0]:
        return None
    window = _window(new, np.concatenate([index.geoms(touched_old), new.geoms(touched_new)]))
    if window is None:
        return None
    meeting = _relabel(new, index, renumber, window, touched_new)
    if near is not None:
        owner_map = renumber.copy()
        owner_map[touched_old] = -1
        geoms_near = new.geoms(meeting)
        new._nearest_pending = lambda: near.updated(owner_map, geoms_near, meeting)
    return new


def _rows_of(codes: np.ndarray, wanted) -> np.ndarray:
    """Rows (ascending) of the codes ``wanted`` that the ascending array ``codes`` holds: a binary
    search each (``np.isin`` over the city's 63,000 object codes held the interpreter ~2 ms a call, three
    calls an update, while the server's request threads waited for it)."""
    wanted = np.array(sorted(wanted), dtype=object)
    if not len(wanted) or not len(codes):
        return np.zeros(0, dtype=np.int64)
    at = np.minimum(codes.searchsorted(wanted), len(codes) - 1)
    return np.unique(at[codes[at] == wanted]).astype(np.int64)


def _numbers_of(numbered_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in ``numbered_rows`` (ascending rows: the micro or special grids) of those of ``rows``
    it holds."""
    at = np.searchsorted(numbered_rows, rows)
    hit = at < len(numbered_rows)
    hit[hit] = numbered_rows[at[hit]] == rows[hit]
    return at[hit]


def _band(mixed_cells: np.ndarray, first: int, stop: int) -> tuple[int, int]:
    """Positions in ``mixed_cells`` of the cells from ``first`` up to ``stop``, searched with keys of the
    array's own dtype (keys of another make numpy copy the whole array first: 1.6 million cells, ~1 ms)."""
    lo, hi = mixed_cells.searchsorted(np.array([first, stop], dtype=mixed_cells.dtype))
    return int(lo), int(hi)


def _geoms_in_place(new: GridIndex, index: GridIndex, rows, new_geom) -> None:
    """``new``'s micro and special geometries when every row kept its number and level (a boundary
    moved, the common edit): one copy of each array with the changed grids written over (the general
    way below passes over the city's geometry objects four times, each touching 42,000 reference
    counts with the interpreter held)."""
    micro_geom, special_geom = index._micro_geom.copy(), index.special_geom.copy()
    m, s = _numbers_of(new.micro, rows), _numbers_of(new.special, rows)
    by_row = dict(zip(np.asarray(rows).tolist(), new_geom))
    micro_geom[m] = np.array([by_row[r] for r in new.micro[m].tolist()] + [None], dtype=object)[:-1]
    special_geom[s] = np.array([by_row[r] for r in new.special[s].tolist()] + [None], dtype=object)[:-1]
    wkb = None
    if index._micro_wkb is not None:  # the changed grids are decoded: none of their WKB is read
        buffer, starts, ends = index._micro_wkb
        starts, ends = np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
        starts[m] = ends[m] = 0
        wkb = (buffer, starts, ends)
    new._set_geoms(micro_geom, special_geom, wkb=wkb)


def _geoms_moved(new: GridIndex, index: GridIndex, changed_rows, kept, pos, rows, new_geom) -> None:
    """``new``'s micro and special geometries, carried along with the rows (a code added or retired, or
    a level changed): a base loaded from disk hands on its undecoded grids as WKB (never decoded here
    but for the grids near the edit)."""
    geom_rows = np.full(len(index.code), None, dtype=object)
    geom_rows[index.micro] = index._micro_geom
    geom_rows[index.special] = index.special_geom
    geom_rows[changed_rows] = None
    wkb = None
    if index._micro_wkb is not None:
        buffer, starts, ends = index._micro_wkb
        start_rows, end_rows = np.zeros(len(index.code), np.int64), np.zeros(len(index.code), np.int64)
        start_rows[index.micro], end_rows[index.micro] = starts, ends
        start_rows[changed_rows] = end_rows[changed_rows] = 0
    if pos is None:
        geom_rows[rows] = new_geom
        geoms = geom_rows
        if index._micro_wkb is not None:
            wkb = (buffer, start_rows[new.micro], end_rows[new.micro])
    else:
        geoms = np.insert(geom_rows[kept], pos, new_geom)
        if index._micro_wkb is not None:
            fresh = np.zeros(len(pos), np.int64)
            s_new, e_new = np.insert(start_rows[kept], pos, fresh), np.insert(end_rows[kept], pos, fresh)
            wkb = (buffer, s_new[new.micro], e_new[new.micro])
    new._set_geoms(geoms[new.micro], geoms[new.special], wkb=wkb)


def _rows_in_place(new: GridIndex, index: GridIndex, frame: pd.DataFrame, rows) -> None:
    """``new``'s row arrays when the changed codes are the same before and after: copies with the
    changed rows written over; chains recomputed only when a level or parent changed."""
    level = frame["level"].to_numpy(dtype=object)
    parent = frame["parent_code"].to_numpy(dtype=object)
    same_tree = all(a == b for a, b in zip(index.level[rows], level)) and all(
        (a if isinstance(a, str) else None) == (b if isinstance(b, str) else None)
        for a, b in zip(index.parent_code[rows], parent)
    )
    name = index.name.copy()
    name[rows] = frame["name"].to_numpy(dtype=object)
    if same_tree:
        new.name = name
        new._categories, new._chains = None, {}
        new.__dict__.pop("_level_values", None)
    else:
        lv, pc = index.level.astype(object), index.parent_code.copy()
        lv[rows], pc[rows] = level, parent
        new._set_rows(index.code, name, lv, pc)
    new.version = index.version.copy()
    new.version[rows] = frame["id"].to_numpy(dtype=np.int64)


def _window(index: GridIndex, geoms):
    """(col0, row0, col1, row1) of the cells around ``geoms`` with one cell of margin; None when that
    margin falls off the cell grid (the grids grew beyond it: a rebuild makes a larger one), or when
    every one of ``geoms`` is empty (no window: a rebuild decides)."""
    ny, nx = index.cells.shape
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return None
    c0 = int(np.floor((x0 - index.x0) / index.dx)) - 1
    r0 = int(np.floor((y0 - index.y0) / index.dy)) - 1
    c1 = int(np.floor((x1 - index.x0) / index.dx)) + 2
    r1 = int(np.floor((y1 - index.y0) / index.dy)) + 2
    if c0 < 0 or r0 < 0 or c1 > nx or r1 > ny:
        return None
    return c0, r0, c1, r1


def _relabel(new: GridIndex, old: GridIndex, renumber, window, touched_new):
    """New cells and candidates: the old ones renumbered outside ``window``, recomputed inside it.
    Returns the micro numbers of the grids meeting the window."""
    ny, nx = old.cells.shape
    c0, r0, c1, r1 = window
    # every micro-grid meeting the window, from the old cells (a grid meets a cell it holds, or one
    # its ring crosses, where it is a candidate) and the changed grids' new versions: no bounds of
    # the city's grids needed, nor their geometry decoded
    labels = np.asarray(old.cells[r0:r1, c0:c1]).astype(np.int64).ravel()
    if old.cells.dtype == np.uint16:
        labels = labels[labels < _U16_MARKERS[0]]
    else:
        labels = labels[labels >= 0]
    lo, hi = _band(old.mixed_cells, r0 * nx, r1 * nx)
    band = np.asarray(old.mixed_cells[lo:hi], dtype=np.int64)
    in_window = (band % nx >= c0) & (band % nx < c1)
    starts, ends = np.asarray(old.cand_start[lo:hi])[in_window], np.asarray(old.cand_start[lo + 1 : hi + 1])[in_window]
    count = ends - starts
    slots = np.repeat(starts - np.cumsum(count) + count, count) + np.arange(count.sum())
    old_meeting = np.unique(np.concatenate([labels, np.asarray(old.cand)[slots].astype(np.int64)]))
    mapped = renumber[old_meeting]
    meeting = np.unique(np.concatenate([mapped[mapped >= 0], touched_new]))
    cell, grid = new.ring_cells(meeting, window, (ny, nx))
    # cells: renumber the old labels (unless no number moved), then label the window again
    same = len(renumber) == len(new.micro) and np.array_equal(renumber, np.arange(len(renumber)))
    if same:
        cells = old.cells.copy()
    elif old.cells.dtype == np.uint16:
        table = np.arange(65_536, dtype=np.int64)
        table[: len(renumber)] = renumber
        table[list(_U16_MARKERS)] = _U16_MARKERS
        cells = table[old.cells].astype(old.cells.dtype)
    else:  # int32 labels: the markers are negative already
        cells = np.where(old.cells >= 0, renumber[np.maximum(old.cells, 0)], old.cells).astype(old.cells.dtype)
    mixed = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    cy, cx = np.divmod(cell, nx)
    mixed[cy - r0, cx - c0] = True
    cells[r0:r1, c0:c1] = new.label_window(mixed, r0, c0, numbers=meeting).astype(old.cells.dtype)
    new.cells = cells
    # candidates, sorted by flat cell: the window's rows are one contiguous stretch of them, so only
    # that stretch is merged; before and after it the old ones stand (renumbered)
    lo, hi = _band(old.mixed_cells, r0 * nx, r1 * nx)
    e0, e1 = old.cand_start[lo], old.cand_start[hi]
    band_cell = np.repeat(old.mixed_cells[lo:hi].astype(np.int64), np.diff(old.cand_start[lo : hi + 1]))
    band_grid = old.cand[e0:e1].astype(np.int64)
    bx = band_cell % nx
    keep = (bx < c0) | (bx >= c1)
    n = np.int64(max(len(new.micro), 1))
    keys = np.concatenate([band_cell[keep] * n + renumber[band_grid[keep]], cell * n + grid])
    keys.sort()
    band_cell, band_grid = np.divmod(keys, n)
    first = np.flatnonzero(np.concatenate(([True], band_cell[1:] != band_cell[:-1]))) if len(keys) else keys[:0]
    grids = old.cand if same else renumber[old.cand]
    # straight into int32 (the city's 3.3 million candidates: by way of int64 the copy took twice)
    new.mixed_cells = np.concatenate(
        [old.mixed_cells[:lo], band_cell[first], old.mixed_cells[hi:]], dtype=np.int32, casting="same_kind"
    )
    starts = [old.cand_start[:lo], e0 + first, old.cand_start[hi:] - e1 + e0 + len(keys)]
    new.cand_start = np.concatenate(starts, dtype=np.int32, casting="same_kind")
    new.cand = np.concatenate([grids[:e0], band_grid, grids[e1:]], dtype=np.int32, casting="same_kind")
    return meeting


class Patch:
    """Single-point answers of the index an edit is bringing ``base`` to, while that update runs:
    from ``base`` and the changed micro-grids' new outlines alone, for an edit that moved micro-grids'
    outlines and nothing else (:func:`patch`).  A point's micro-grid is the lowest-numbered one
    covering it, as a full build decides (:meth:`.GridIndex._exact`): among the grids the edit left
    alone that ``base`` has in the point's cell, and the changed grids' new outlines.  A point no grid
    covers is not answered (its nearest grid may be one the edit moved): it waits for the update.
    (A server's lookup of a point the edit moved waited for the whole update, 60-150 ms under load
    on 2 cores; issue #16 asks for every edit in lookups within 100 ms of its commit.)"""

    def __init__(self, base: GridIndex, numbers, geoms, epoch: int):
        self.base, self.epoch = base, epoch
        self.people_loaded, self.at = base.people_loaded, base.at
        order = np.argsort(numbers)
        self._numbers = np.asarray(numbers, dtype=np.int64)[order]
        self._geoms = np.asarray(geoms, dtype=object)[order]
        shapely.prepare(self._geoms)
        self._changed = set(self._numbers.tolist())

    def locate_one(self, x: float, y: float) -> tuple[int, list[int]] | None:
        """(micro number, special grids) as :meth:`.GridIndex.locate_one` of the updated index would
        say; None for a point this patch does not answer."""
        base = self.base
        cell = base.cell_one(x, y)
        if cell is None:
            return None
        cx, cy, m = cell
        kept = base.candidates_one(cx, cy).tolist() if m == MIXED else [m] if m >= 0 else []
        found = [c for c in kept if c not in self._changed and shapely.intersects_xy(base._prepared([c])[0], x, y)]
        hits = self._numbers[shapely.intersects_xy(self._geoms, x, y)]
        best = min(found + hits[:1].tolist(), default=None)
        if best is None:  # no grid covers it (or only the full build's exact test would tell)
            return None
        return best, base.specials_one(x, y, cx, cy)

    def answer_one(self, x: float, y: float) -> dict | None:
        """:meth:`.GridIndex.answer_one` of the updated index for a point this patch answers, else None."""
        found = self.locate_one(x, y)
        return None if found is None else self.base.answer_inside(x, y, *found)


def patch(base: GridIndex, frame: pd.DataFrame, changed, *, epoch: int) -> Patch | None:
    """A :class:`Patch` answering single points during the update of ``base`` to ``frame`` (the
    changed codes' current rows), or None when the edit did more than move micro-grids' outlines: a
    code added or retired, a name, level or parent changed, a special grid changed."""
    changed = set(changed)
    if not changed or len(frame) != len(changed) or set(frame["code"]) != changed or not len(base.code):
        return None
    codes = np.array(sorted(changed), dtype=object)
    rows = base.code.searchsorted(codes)
    if (rows >= len(base.code)).any() or not np.array_equal(base.code[np.minimum(rows, len(base.code) - 1)], codes):
        return None
    # the frame's columns in code order (a pandas index and .loc cost ~1.5 ms of the interpreter here)
    order = np.argsort(frame["code"].to_numpy(dtype=object), kind="stable")
    level, name, parent, geoms = (
        frame[column].to_numpy(dtype=object)[order] for column in ("level", "name", "parent_code", "geometry")
    )
    same = (
        (base.level[rows] == "micro").all()
        and (level == "micro").all()
        and list(base.name[rows]) == list(name)
        and all(
            (a if isinstance(a, str) else None) == (b if isinstance(b, str) else None)
            for a, b in zip(base.parent_code[rows], parent)
        )
    )
    if not same or any(g is None or g.is_empty for g in geoms):
        return None
    return Patch(base, base.micro.searchsorted(rows), geoms, epoch)
