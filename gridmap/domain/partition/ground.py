"""The ground of a courtyard, cut along its buildings: unit slices and the cell of each.

Every boundary the planner draws runs through open ground between footprints, or along a party wall
between two units of one building; never through a footprint otherwise.  To get such boundaries for
any grouping of units, the courtyard is cut once into one *cell* per unit:

* a building's footprint is cut into *slices*, one per unit, side by side along its long axis (the
  long side of its minimum rotated rectangle), so slices meet on the party walls;
* the open ground (courtyard minus footprints) goes to the nearest slice: a Voronoi diagram of points
  every ``spacing`` metres along the footprints' outlines (an approximation of the Voronoi diagram of
  the polygons themselves, whose edges run midway between neighbouring buildings), clipped to the open
  ground; pieces cut off from their slice by a concave outline join the neighbour they share the
  longest edge with, so every cell is one piece holding its slice;
* cell = slice + its ground.  Cells tile the courtyard, so any union of cells does, and a union of
  cells that touch one another is one piece.

Work happens on ``geo.to_local`` (a plane in metres affine to lon/lat), so straight lines there are
straight in storage.  ``adjacent`` says which cells share at least ``MIN_EDGE_M`` of edge (a corner
touch does not join two grids).
"""

from __future__ import annotations

import numpy as np
import shapely

#: Sample spacing along footprint outlines (metres) ...
SPACING_M = 3.0
#: ... widened so no courtyard has more samples than this.
MAX_SAMPLES = 800
#: Sample points are moved by up to this (metres, a fixed pseudo-random pattern) before the Voronoi diagram.
JITTER_M = 1e-4
#: Shared edge (metres) for two cells to count as neighbours.
MIN_EDGE_M = 0.5
#: Pieces of less than this (m², local plane) are overlay noise, not ground.
NOISE_M2 = 0.01
#: Unions of cells snap-round to 10 micrometres: a slice and its ground meet along a footprint edge at a
#: party-wall point computed twice, equal only to ~1e-10 m, and an unsnapped union may leave them apart.
SNAP_M = 1e-5


def polygons(geom) -> list:
    """The polygon parts of ``geom`` larger than the noise."""
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > NOISE_M2]


def long_axis(footprint):
    """(origin, long edge, short edge) of the footprint's minimum rotated rectangle, or None for a
    degenerate footprint.  The rectangle is origin + a * long + b * short, a and b in [0, 1]."""
    rect = shapely.minimum_rotated_rectangle(footprint)
    if rect.geom_type != "Polygon":
        return None
    corners = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = corners[1] - corners[0], corners[2] - corners[1]
    if min(np.hypot(*e1), np.hypot(*e2)) <= 1e-9:
        return None
    return (corners[0], e1, e2) if np.hypot(*e1) >= np.hypot(*e2) else (corners[0], e2, e1)


def unit_slices(footprint, n: int) -> list:
    """The footprint cut into ``n`` slices across its long axis (unit 1 at the rectangle's origin end);
    the end slices reach beyond the rectangle so nothing of an odd footprint is lost."""
    axis = long_axis(footprint) if n > 1 else None
    if axis is None:  # one unit (a degenerate footprint is refused by the planner)
        return [footprint]
    origin, long, short = axis
    out = []
    for j in range(n):
        a0 = -1.0 if j == 0 else j / n
        a1 = 2.0 if j == n - 1 else (j + 1) / n
        strip = shapely.Polygon(
            [
                origin + a0 * long - short,
                origin + a1 * long - short,
                origin + a1 * long + 2 * short,
                origin + a0 * long + 2 * short,
            ]
        )
        out.append(shapely.intersection(footprint, strip))
    return out


def slice_of(points, footprint, n: int) -> np.ndarray:
    """For points on or in ``footprint``, the index of the slice (0..n-1) that holds them."""
    axis = long_axis(footprint)
    if n == 1 or axis is None:
        return np.zeros(len(points), dtype=np.int64)
    origin, long, _ = axis
    a = (np.asarray(points) - origin) @ long / (long @ long)
    return np.clip(np.floor(a * n), 0, n - 1).astype(np.int64)


def _overlay(op, a, b):
    """``op(a, b)``, snap-rounded to SNAP_M when GEOS cannot node the exact inputs (nearly coincident
    Voronoi vertices on a footprint corner)."""
    try:
        return op(a, b)
    except shapely.errors.GEOSException:
        return op(a, b, grid_size=SNAP_M)


def _minus_footprints(cells, feet):
    """(index, cell minus the footprints it meets) for every non-empty cell: the open ground of each
    Voronoi cell.  One difference per cell and footprint that meet (an STRtree query), rather than
    one with the courtyard minus every footprint, a polygon with as many holes as buildings."""
    cells = np.array(cells, dtype=object)
    c_idx, f_idx = shapely.STRtree(feet).query(cells, predicate="intersects")
    for c, f in zip(c_idx, f_idx):
        cells[c] = _overlay(shapely.difference, cells[c], feet[f])
    return [(int(i), cells[i]) for i in np.flatnonzero(~shapely.is_empty(cells)) if cells[i].area > 0]


class Ground:
    """The cells of one courtyard part (local plane): ``slices[k]``, ``ground[k]`` (open ground of cell
    k, possibly empty or several pieces each touching the slice), ``cells[k]`` = their union, and
    ``owner[k]`` = (building index, unit index).  ``edges``: pairs of cells that share an edge."""

    def __init__(self, outline, footprints: list, unit_counts: list[int]):
        shapely.prepare(outline)
        feet = np.array([shapely.intersection(f, outline) for f in footprints], dtype=object)
        self.owner, self.slices = [], []
        for b, (f, n) in enumerate(zip(feet, unit_counts)):
            for j, s in enumerate(unit_slices(f, n)):
                self.owner.append((b, j))
                self.slices.append(s)
        first = np.cumsum([0] + list(unit_counts))[:-1]
        # sample points along each footprint's outline, labelled with their slice; spacing grows with
        # the total outline so an estate of a hundred villas does not cost a hundred times one slab
        spacing = max(SPACING_M, float(shapely.length(feet).sum()) / MAX_SAMPLES)
        pts, labels = [], []
        for b, (f, n) in enumerate(zip(feet, unit_counts)):
            xy = shapely.get_coordinates(shapely.segmentize(shapely.boundary(f), spacing))
            pts.append(xy)
            labels.append(first[b] + slice_of(xy, f, n))
        xy = np.concatenate(pts)
        lab = np.concatenate(labels)
        xy, keep = np.unique(xy.round(6), axis=0, return_index=True)
        lab = lab[keep]
        # a fixed 0.1 mm jitter: GEOS's diagram of co-circular samples (the corners of rotated square
        # villas) can come out with self-intersecting regions whose repair overlaps and loses ground
        # (27 m² of one demo courtyard in no cell); the same offsets every run, so plans stay the same
        xy = xy + np.random.default_rng(0).uniform(-JITTER_M, JITTER_M, xy.shape)
        pieces = [[] for _ in range(len(self.slices))]
        if len(xy) >= 2:
            vor = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=outline, ordered=True))
            bad = ~shapely.is_valid(vor)
            vor[bad] = shapely.make_valid(vor[bad])
            # only the regions crossing the outline are cut by it; those inside it (45 % of them on 60
            # bench courtyards) are kept as they are (this intersection was the largest single call
            # of this construction in a profile of the Zhengzhou-scale generation, 8 % of its samples)
            crossing = np.flatnonzero(~shapely.contains_properly(outline, vor))
            vor[crossing] = _overlay(shapely.intersection, vor[crossing], outline)
            for c, piece in _minus_footprints(vor, feet):
                pieces[lab[c]].append(piece)
        else:
            pieces[0].append(shapely.difference(outline, shapely.union_all(feet)))
        ground = [shapely.union_all(p) if p else shapely.Polygon() for p in pieces]
        self.ground = self._attach_orphans(ground)
        self.cells = [shapely.union_all([s, g], grid_size=SNAP_M) for s, g in zip(self.slices, self.ground)]
        self._one_piece_each()
        self.edges = self._edges()
        self.neighbours = [set() for _ in range(len(self.slices))]
        for a, b in self.edges:
            self.neighbours[a].add(b)
            self.neighbours[b].add(a)

    def _attach_orphans(self, ground: list) -> list:
        """Ground pieces that do not share an edge with their own slice (cut off by a concave outline or
        touching it at a corner only) join the cell they share most edge with."""
        own, orphans = [], []
        for s, g in zip(self.slices, ground):
            keep = []
            for part in polygons(g):
                joined = len(polygons(shapely.union_all([s, part], grid_size=SNAP_M))) == 1
                (keep if joined else orphans).append(part)
            own.append(keep)
        for part in sorted(orphans, key=lambda p: -p.area):
            cells = np.array(
                [shapely.union_all([s, *o], grid_size=SNAP_M) for s, o in zip(self.slices, own)], dtype=object
            )
            # shared edge, measured as the area of a 1 cm band along the piece's outline (robust to the
            # micrometre mismatch of edges computed twice; a corner touch shares next to nothing)
            shared = shapely.area(shapely.intersection(shapely.buffer(part.boundary, 0.01), cells))
            own[int(np.argmax(shared))].append(part)
        return [shapely.union_all(o, grid_size=SNAP_M) if o else shapely.Polygon() for o in own]

    def _one_piece_each(self) -> None:
        """Any cell still in several pieces (a Voronoi region that reaches round another building and is
        cut off by the outline) keeps the piece holding its slice; each other piece goes to a cell it
        joins into one piece with, the one sharing the most edge with it first (a piece no cell takes
        stays: no ground is ever dropped)."""
        for _ in range(4):  # a moved piece may make its new cell whole only after another move
            moved = False
            for k, cell in enumerate(self.cells):
                parts = polygons(cell)
                if len(parts) <= 1:
                    continue
                hold = int(np.argmax([shapely.area(shapely.intersection(q, self.slices[k])) for q in parts]))
                kept = [parts[hold]]
                for n, part in enumerate(parts):
                    if n == hold:
                        continue
                    band = shapely.buffer(part.boundary, 0.01)
                    shared = np.array([shapely.area(shapely.intersection(band, c)) for c in self.cells])
                    shared[k] = -1.0
                    taken = False
                    for j in np.argsort(-shared)[:4]:
                        if shared[j] <= 0:
                            break
                        merged = shapely.union_all([self.cells[j], part], grid_size=SNAP_M)
                        if len(polygons(merged)) == 1:
                            self.cells[j], taken = merged, True
                            break
                    moved |= taken
                    if not taken:
                        kept.append(part)
                self.cells[k] = shapely.union_all(kept, grid_size=SNAP_M) if len(kept) > 1 else kept[0]
            if not moved:
                break
        self.ground = [shapely.difference(c, s, grid_size=SNAP_M) for c, s in zip(self.cells, self.slices)]

    def _edges(self) -> list[tuple[int, int]]:
        cells = np.array(self.cells, dtype=object)
        a, b = shapely.STRtree(cells).query(cells, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        shared = shapely.length(shapely.intersection(shapely.boundary(cells[a]), shapely.boundary(cells[b])))
        ok = shared >= MIN_EDGE_M
        return list(zip(a[ok].tolist(), b[ok].tolist()))
