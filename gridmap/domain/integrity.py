"""Proving the hierarchy whole: every child inside its parent, children tiling it.

Checks (all areas in m², measured in EPSG:4547):

``invalid_geometry``      a geometry that is not OGC-valid (reason and place given)
``missing_parent``        a non-district grid without a parent code
``unknown_parent``        a parent code that names no grid of the current version
``wrong_parent_level``    a parent of the wrong level (a micro-grid under a community...)
``outside_parent``        the part of a child (or special grid) outside its parent
``overlap``               the shared area of two siblings (two districts, for the top level)
``gap``                   a piece of a parent covered by none of its children
``special_across_communities``  a special grid reaching into a community other than its own
``households_mismatch``   a parent whose households differ from its children's sum, or a
                          courtyard whose households differ from its buildings' units
``population_mismatch``   a parent whose population differs from its children's sum

Tolerance: pieces of ``tolerance`` m² or less are ignored (default 1 m²: below survey
precision, above floating-point noise of shared edges).  Each gap and each
outside piece is reported per connected part.

Where: topology is decided on the stored lon/lat geometries, whose edges are
straight in EPSG:4326 (PostGIS ``geometry`` semantics, and what lookups use); the
pieces found are then measured in EPSG:4547.  Testing in 4547 instead would be
wrong: a straight edge in one CRS is a curve in the other, so a child vertex lying
on its parent's kilometre-long edge in lon/lat sits metres off it in 4547.

Speed: nothing is unioned or differenced when the arithmetic proves it unnecessary.
Children are tested against their (prepared) parent with ``covers``; siblings whose
interiors meet are found with one STRtree query per level; a parent's gap area is
then bounded by ``area(parent) - Σ area(children) + outside + overlaps``, and the
exact gap is computed only where that bound exceeds the tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import lazy_loader
import numpy as np
import shapely

from .. import geo
from . import budget, stored_geometry
from .levels import LEVELS, SPECIAL, parent_level

pd = lazy_loader.load("pandas")

DEFAULT_TOLERANCE_M2 = 1.0
#: Overlays run snap-rounded to 1e-8 degree (about 1 mm): it removes zero-width spikes that
#: floating-point noise on shared edges would otherwise leave, and is far below survey precision.
GRID_DEG = 1e-8
#: m² per square degree at latitude 0 scale (times cos(latitude)); for area *bounds* only.
_M2_PER_DEG2 = 111_320.0 * 110_574.0
KINDS = (
    "invalid_geometry",
    "missing_parent",
    "unknown_parent",
    "wrong_parent_level",
    "outside_parent",
    "overlap",
    "gap",
    "special_across_communities",
    "households_mismatch",
    "population_mismatch",
    "disconnected",
    "floor_unassigned",
    "floor_twice",
    "share_unknown",
    "share_households",
    "share_off_ground",
    "grid_households",
)


@dataclass
class Problem:
    kind: str
    codes: list[str]
    message: str
    area_m2: float | None = None
    location: tuple[float, float] | None = None  # lon, lat
    geometry: object = field(default=None, repr=False)  # shapely, storage CRS

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("geometry")
        if self.area_m2 is not None:
            out["area_m2"] = round(self.area_m2, 2)
        if self.location is not None:
            out["location"] = [round(self.location[0], 7), round(self.location[1], 7)]
        return out


def _objects(column: pd.Series) -> np.ndarray:
    """Object array with None for missing values (pandas' string dtype uses NaN)."""
    return np.array([None if pd.isna(v) else v for v in column], dtype=object)


class _Grids:
    """Column arrays of the grids under test, their (prepared) lon/lat geometries and areas."""

    def __init__(self, frame: pd.DataFrame):
        self.code = _objects(frame["code"])
        self.level = _objects(frame["level"])
        self.parent_code = _objects(frame["parent_code"])
        self.households = frame["households"].to_numpy(dtype="int64")
        # frames without population (a file of households only) have nothing to add up
        pop = frame["population"] if "population" in frame else pd.Series(0, index=frame.index)
        self.population = pop.fillna(0).to_numpy(dtype="int64")
        self.geom = np.asarray(frame["geometry"].to_numpy(), dtype=object)
        self.valid = shapely.is_valid(self.geom)
        shape = self.geom.copy()
        shape[~self.valid] = shapely.make_valid(shape[~self.valid])
        shapely.prepare(shape)
        self.shape = shape  # valid geometries for overlays
        self.area_deg = shapely.area(shape)
        lat = shapely.get_y(shapely.centroid(shape))
        self.m2_per_deg2 = _M2_PER_DEG2 * np.cos(np.radians(np.nan_to_num(lat)))
        index = {c: i for i, c in enumerate(self.code)}
        self.parent = np.array([index.get(p, -1) if p is not None else -1 for p in self.parent_code])


def _m2(geoms) -> np.ndarray:
    """Areas in m², measured in EPSG:4547 (on densified edges: see ``geo.area_m2``)."""
    return geo.area_m2(geoms)


def _piece(kind, codes, message, geom, tolerance) -> list[Problem]:
    """One problem per connected part of ``geom`` (lon/lat) larger than the tolerance in m²."""
    parts = shapely.get_parts(shapely.make_valid(geom))
    parts = parts[shapely.get_type_id(parts) == 3]
    if not len(parts):
        return []
    areas = _m2(parts)
    out = []
    for part, area in zip(parts[areas > tolerance], areas[areas > tolerance]):
        point = shapely.point_on_surface(part)
        out.append(Problem(kind, list(codes), message.format(area=area), float(area), (point.x, point.y), part))
    return out


def validate(
    frame: pd.DataFrame,
    *,
    building_households: dict[str, int] | None = None,
    tolerance: float = DEFAULT_TOLERANCE_M2,
    level: str | None = None,
    allowed_overlaps: dict | None = None,
) -> list[Problem]:
    """Check the grids of one version (``frame`` from the store) and return every problem found.

    Parameters
    ----------
    frame : DataFrame with code, level, parent_code, households and geometry (storage CRS).
    building_households : households of each courtyard summed from its buildings' units.
    tolerance : gaps, overlaps and outside pieces of at most this many m² are ignored.
    level : only check grids of this level as children (and their parents' tiling by them).
    allowed_overlaps : {(code_a, code_b) sorted: lon/lat geometry} where two siblings may overlap (the
        footprint of a tower both hold floors of; see :mod:`.integrity_shares`).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 m², got {tolerance}")
    if len(frame) == 0:
        return []
    g = _Grids(frame)
    checked = np.ones(len(g.code), dtype=bool) if level is None else (g.level == level)
    problems: list[Problem] = []
    problems += _invalid(g, checked)
    problems += _parents(g, checked)
    linked = checked & (g.parent >= 0) & _right_parent_level(g)
    outside_deg = np.zeros(len(g.code))  # square degrees, for the gap bound
    budget.check("checking that children lie inside their parents")
    problems += _outside(g, linked, tolerance, outside_deg)
    tiling = linked & (g.level != SPECIAL)
    overlap_deg = np.zeros(len(g.code))
    budget.check("checking overlaps")
    problems += _overlaps(g, checked & (g.level != SPECIAL), tolerance, overlap_deg, allowed_overlaps or {})
    budget.check("checking gaps")
    problems += _gaps(g, tiling, tolerance, outside_deg, overlap_deg)
    budget.check("checking gaps as stored")
    problems = _as_stored(g, tiling, tolerance, problems)
    budget.check("checking special grids")
    problems += _specials(g, linked & (g.level == SPECIAL), tolerance)
    problems += _households(g, tiling, checked, building_households or {})
    problems.sort(key=lambda p: (KINDS.index(p.kind), p.codes))
    return problems


def _invalid(g: _Grids, checked) -> list[Problem]:
    out = []
    for i in np.flatnonzero(checked & ~g.valid):
        reason = shapely.is_valid_reason(g.geom[i])
        point = shapely.point_on_surface(shapely.make_valid(g.geom[i]))
        out.append(
            Problem("invalid_geometry", [g.code[i]], f"invalid geometry: {reason}", None, (point.x, point.y), g.geom[i])
        )
    return out


def _right_parent_level(g: _Grids) -> np.ndarray:
    expected = np.array([parent_level(lv) for lv in g.level], dtype=object)
    actual = np.where(g.parent >= 0, g.level[np.maximum(g.parent, 0)], None)
    return expected == actual


def _parents(g: _Grids, checked) -> list[Problem]:
    out = []
    for i in np.flatnonzero(checked & (g.level != LEVELS[0])):
        want = parent_level(g.level[i])
        point = shapely.point_on_surface(g.geom[i])
        loc = (point.x, point.y)
        if g.parent_code[i] is None:
            out.append(
                Problem(
                    "missing_parent",
                    [g.code[i]],
                    f"{g.level[i]} {g.code[i]} has no parent {want}",
                    None,
                    loc,
                    g.geom[i],
                )
            )
        elif g.parent[i] < 0:
            out.append(
                Problem(
                    "unknown_parent",
                    [g.code[i], g.parent_code[i]],
                    f"parent {g.parent_code[i]} of {g.code[i]} is not a current grid",
                    None,
                    loc,
                    g.geom[i],
                )
            )
        elif g.level[g.parent[i]] != want:
            out.append(
                Problem(
                    "wrong_parent_level",
                    [g.code[i], g.parent_code[i]],
                    f"{g.level[i]} {g.code[i]} has a {g.level[g.parent[i]]} as parent, expected a {want}",
                    None,
                    loc,
                    g.geom[i],
                )
            )
    # a district has no parent: a parent code on it is a wrong level
    for i in np.flatnonzero(checked & (g.level == LEVELS[0]) & (g.parent_code != None)):  # noqa: E711
        out.append(
            Problem(
                "wrong_parent_level",
                [g.code[i], g.parent_code[i]],
                f"district {g.code[i]} must not have a parent",
                None,
                None,
                g.geom[i],
            )
        )
    return out


def _outside(g: _Grids, linked, tolerance, outside_deg) -> list[Problem]:
    idx = np.flatnonzero(linked)
    covered = shapely.covers(g.shape[g.parent[idx]], g.shape[idx])
    idx = idx[~covered]
    if not len(idx):
        return []
    diffs = shapely.difference(g.shape[idx], g.shape[g.parent[idx]], grid_size=GRID_DEG)
    outside_deg[idx] = shapely.area(diffs)
    out = []
    for i, d in zip(idx, diffs):
        out += _piece(
            "outside_parent",
            [g.code[i], g.parent_code[i]],
            f"{g.level[i]} {g.code[i]} sticks out of its parent {g.parent_code[i]} by {{area:.1f}} m²",
            d,
            tolerance,
        )
    return out


def _overlaps(g: _Grids, candidates, tolerance, overlap_deg, allowed: dict) -> list[Problem]:
    """Siblings (same parent; districts among themselves) whose interiors meet."""
    a_all, b_all = [np.array([], dtype=int)], [np.array([], dtype=int)]
    for level in np.unique(g.level[candidates]):  # one tree per level: no big parents among the candidates
        idx = np.flatnonzero(candidates & (g.level == level))
        a, b = shapely.STRtree(g.shape[idx]).query(g.shape[idx], predicate="intersects")
        keep = a < b
        a, b = idx[a[keep]], idx[b[keep]]
        same = (g.parent_code[a] == g.parent_code[b]) | (level == LEVELS[0])
        a_all.append(a[same])
        b_all.append(b[same])
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    touching = shapely.touches(g.shape[a], g.shape[b])
    a, b = a[~touching], b[~touching]
    if not len(a):
        return []
    inter = shapely.intersection(g.shape[a], g.shape[b], grid_size=GRID_DEG)
    areas = shapely.area(inter)
    np.add.at(overlap_deg, a, areas)
    np.add.at(overlap_deg, b, areas)
    out = []
    for i, j, geom in zip(a, b, inter):
        pair = tuple(sorted((g.code[i], g.code[j])))
        if pair in allowed:  # two micro-grids holding floors of one tower share its footprint
            parts = shapely.get_parts(geom)  # the polygonal part: an overlay may add lines and points
            geom = shapely.multipolygons(parts[shapely.get_type_id(parts) == 3])
            geom = shapely.difference(geom, allowed[pair], grid_size=GRID_DEG)
        out += _piece(
            "overlap",
            [g.code[i], g.code[j]],
            f"{g.level[i]}s {g.code[i]} and {g.code[j]} overlap by {{area:.1f}} m²",
            geom,
            tolerance,
        )
    return out


def _gaps(g: _Grids, tiling, tolerance, outside_deg, overlap_deg) -> list[Problem]:
    child_levels = set(g.level[tiling])
    parents = np.flatnonzero(np.isin(g.level, [parent_level(lv) for lv in child_levels]))
    if not len(parents):
        return []
    kids = np.flatnonzero(tiling)
    by_parent = pd.Series(kids).groupby(g.parent[kids]).apply(list).to_dict()
    # area of the parent that the children surely cover (overlaps counted twice: still a lower bound)
    inside = pd.Series(g.area_deg[kids] - outside_deg[kids] - overlap_deg[kids]).groupby(g.parent[kids]).sum()
    out = []
    for p in parents:
        children = by_parent.get(p, [])
        # the bound is in square degrees; 1% slack covers the latitude spread of one parent
        bound_m2 = (g.area_deg[p] - inside.get(p, 0.0)) * g.m2_per_deg2[p] * 1.01
        if bound_m2 <= tolerance:
            continue
        covered = shapely.union_all(g.shape[children], grid_size=GRID_DEG) if children else shapely.Polygon()
        gap = shapely.difference(g.shape[p], covered, grid_size=GRID_DEG)
        what = "not covered by any of its children" if children else "without any child"
        out += _piece("gap", [g.code[p]], f"{g.level[p]} {g.code[p]}: {{area:.1f}} m² {what}", gap, tolerance)
    return out


def _as_stored(g: _Grids, tiling, tolerance, problems: list[Problem]) -> list[Problem]:
    """Gaps and overhangs of parents whose edges are long enough for the two readings of a stored edge
    (straight in lon/lat, geodesic) to part by more than the tolerance (:mod:`.stored_geometry`): their
    children are overlaid on them in the stored coordinates as they are, no snapping, each piece measured
    on the ellipsoid as PostGIS ``::geography`` does, gaps and overhangs apart.  Those results replace
    the planar ones of these parents; every other parent is proven by the planar pass alone."""
    kids = np.flatnonzero(tiling)
    if not len(kids):
        return problems
    longest = stored_geometry.longest_segment_deg(g.shape)
    length_m = shapely.length(g.shape) * 111_320.0
    lat = np.nan_to_num(shapely.bounds(g.shape)[:, 1])
    by_parent = pd.Series(kids).groupby(g.parent[kids]).apply(list).to_dict()
    flagged = []
    for p, children in by_parent.items():
        members = [p, *children]
        bound = stored_geometry.readings_differ_m2(length_m[members].sum(), longest[members].max(), lat[p])
        if bound > tolerance:
            flagged.append((p, children))
    if not flagged:
        return problems
    replaced = {g.code[p] for p, _ in flagged}
    kept = [
        pr
        for pr in problems
        if not (
            (pr.kind == "gap" and pr.codes[0] in replaced) or (pr.kind == "outside_parent" and pr.codes[1] in replaced)
        )
    ]
    for p, children in flagged:
        gaps, over = stored_geometry.pieces(g.shape[p], g.shape[children], tolerance)
        for piece, area in gaps:
            point = shapely.point_on_surface(piece)
            kept.append(
                Problem(
                    "gap",
                    [g.code[p]],
                    f"{g.level[p]} {g.code[p]}: {area:.1f} m² not covered by any of "
                    "its children (as stored: its edges are long enough to bend)",
                    area,
                    (point.x, point.y),
                    piece,
                )
            )
        for piece, area in over:
            point = shapely.point_on_surface(piece)
            child = children[int(np.argmax(shapely.area(shapely.intersection(g.shape[children], piece))))]
            kept.append(
                Problem(
                    "outside_parent",
                    [g.code[child], g.code[p]],
                    f"{g.level[child]} {g.code[child]} sticks out of its parent {g.code[p]} by "
                    f"{area:.1f} m² (as stored: long edges bend)",
                    area,
                    (point.x, point.y),
                    piece,
                )
            )
    return kept


def _specials(g: _Grids, specials, tolerance) -> list[Problem]:
    communities = np.flatnonzero(g.level == "community")
    idx = np.flatnonzero(specials)
    if not len(idx) or not len(communities):
        return []
    s, c = shapely.STRtree(g.shape[communities]).query(g.shape[idx], predicate="intersects")
    s, c = idx[s], communities[c]
    other = c != g.parent[s]
    s, c = s[other], c[other]
    inter = shapely.intersection(g.shape[s], g.shape[c], grid_size=GRID_DEG)
    areas = _m2(inter) if len(inter) else np.array([])
    out = []
    for i, j, geom, area in zip(s, c, inter, areas):
        if area > tolerance:
            point = shapely.point_on_surface(geom)
            out.append(
                Problem(
                    "special_across_communities",
                    [g.code[i], g.parent_code[i], g.code[j]],
                    f"special grid {g.code[i]} of community {g.parent_code[i]} reaches "
                    f"{area:.1f} m² into community {g.code[j]}",
                    float(area),
                    (point.x, point.y),
                    geom,
                )
            )
    return out


_SAYS = {"households": "{} households, its children {}", "population": "a population of {}, its children {}"}


def _households(g: _Grids, tiling, checked, building_households: dict[str, int]) -> list[Problem]:
    out = []
    kids = np.flatnonzero(tiling)
    for what, counts in (("households", g.households), ("population", g.population)):
        sums = pd.Series(counts[kids]).groupby(g.parent[kids]).sum()
        for p, total in sums.items():
            if counts[p] != total:
                point = shapely.point_on_surface(g.geom[p])
                out.append(
                    Problem(
                        f"{what}_mismatch",
                        [g.code[p]],
                        f"{g.level[p]} {g.code[p]} has " + _SAYS[what].format(counts[p], int(total)),
                        None,
                        (point.x, point.y),
                        g.geom[p],
                    )
                )
    for i in np.flatnonzero((g.level == "courtyard") & checked):
        have = building_households.get(g.code[i])
        if have is not None and have != g.households[i]:
            point = shapely.point_on_surface(g.geom[i])
            out.append(
                Problem(
                    "households_mismatch",
                    [g.code[i]],
                    f"courtyard {g.code[i]} has {g.households[i]} households, its buildings' units {have}",
                    None,
                    (point.x, point.y),
                    g.geom[i],
                )
            )
    return out
