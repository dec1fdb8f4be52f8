"""The entrances' Voronoi cells (clipped to the courtyard) and their adjacency, shared by the
spanning-tree and subset cuts."""

from __future__ import annotations

import numpy as np
import shapely

from ... import geo
from .geometry import NoCut, polygons


class Cells:
    """The courtyard cut into one Voronoi cell per entrance (clipped to the courtyard; a cell's
    pieces cut off by a concave outline join the neighbour they share the longest edge with),
    and which cells share an edge.  Any connected set of cells unions to one polygon, and the
    cells tile the stored outline, so every grouping of connected cells is a valid tiling."""

    def __init__(self, outline, pts_ll):
        local = geo.to_local([outline])[0]
        pts = geo.to_local([shapely.multipoints(pts_ll)])[0]
        self.xy = shapely.get_coordinates(pts)
        cells_local = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=local, ordered=True))
        cells = shapely.intersection(geo.from_local(cells_local), outline)
        own, orphans = [], []
        for i, cell in enumerate(cells):
            parts = polygons(cell)
            if not parts:
                raise NoCut()
            x, y = pts_ll[i]
            holder = next((q for q in parts if shapely.intersects_xy(q, x, y)), max(parts, key=lambda q: q.area))
            own.append([holder])
            orphans += [q for q in parts if q is not holder]
        for piece in sorted(orphans, key=lambda q: -q.area):
            merged = [shapely.union_all(o) for o in own]
            shared = shapely.length(
                shapely.intersection(piece.boundary, shapely.boundary(np.array(merged, dtype=object)))
            )
            own[int(np.argmax(shared))].append(piece)
        self.geoms = [shapely.union_all(o) if len(o) > 1 else o[0] for o in own]
        tree = shapely.STRtree(self.geoms)
        a, b = tree.query(self.geoms, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        g = np.array(self.geoms, dtype=object)
        shared = shapely.length(shapely.intersection(shapely.boundary(g[a]), shapely.boundary(g[b])))
        edge = shared > 1e-7  # degrees: about a centimetre of shared edge, not a corner touch
        self.edges = np.column_stack([a[edge], b[edge]])


def cell_adjacency(cells, idx):
    """The adjacency of the cell subset ``idx`` in local numbering: (edge ends a, b, cell points,
    edge lengths in metres + 1), or None when no two of its cells touch."""
    pos = {int(c): i for i, c in enumerate(idx)}
    sub = [(pos[a], pos[b]) for a, b in cells.edges if a in pos and b in pos]
    if not sub:
        return None
    ea, eb = np.array(sub).T
    xy = cells.xy[idx]
    return ea, eb, xy, np.hypot(*(xy[ea] - xy[eb]).T) + 1.0
