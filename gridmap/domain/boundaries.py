"""Boundary edits: what each operation changes, whether the result is still a whole hierarchy, and
who is affected (pure; the SQL is in ``store.grids``, the transaction in
``gridmap.services.boundary_edits``).

An edit becomes a :class:`Plan`: versions to close, new versions to open (same code or new), and
children to move to another parent.  The plan is checked by building the *family* of the edit —
the parent, every sibling as it would be afterwards, and the children of the changed grids — and
running the integrity validator (:mod:`.integrity`) on it before and after: an edit is rejected
for every problem it creates (outside the parent, overlapping a sibling, leaving a gap, invalid
geometry, a child sticking out), never for one that was there already.  Each problem carries its
area in m² (EPSG:4547) and the offending piece as geometry.

Operations (all on current versions; every changed grid gets a new dated version):

``replace``        a grid's geometry (and/or name, households, population); ``gap_to`` names the
                   sibling that takes what the grid gives up
``update``         name / households / population only
``split``          a grid by a line (two or more parts, in order of their representative points
                   along the line's normal) or into given parts; children follow their parts
``merge``          sibling grids into one (the first code continues; the others retire)
``move_boundary``  between two siblings: the new outline of the first; the second gets the rest
                   of their union, so both change together
``create``         a new grid; ``carve`` takes its area from the siblings it overlaps
``retire``         a grid; ``gap_to`` names the sibling that takes its area (and its children)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import lazy_loader
import numpy as np
import shapely
from shapely.ops import split

from .. import geo
from ..errors import InputError
from . import integrity, integrity_shares, values
from .levels import HOUSEHOLD_BAND, LEVELS, check_level, parent_level

pd = lazy_loader.load("pandas")

OPS = ("replace", "update", "split", "merge", "move_boundary", "create", "retire")
#: Problems an edit is judged by (households are reported, not enforced: they follow from units).
BLOCKING = (
    "invalid_geometry",
    "missing_parent",
    "unknown_parent",
    "wrong_parent_level",
    "outside_parent",
    "overlap",
    "gap",
    "special_across_communities",
    "disconnected",
)


@dataclass(frozen=True)
class Grid:
    """One current grid version (``version`` is its row id; None for a version not yet written)."""

    code: str
    name: str
    level: str
    parent_code: str | None
    geom: object  # shapely (Multi)Polygon, storage lon/lat
    households: int = 0
    population: int = 0
    kind: str | None = None
    version: int | None = None


@dataclass
class Plan:
    op: str
    close: list[str] = field(default_factory=list)  # codes whose current version ends
    open: list[Grid] = field(default_factory=list)  # versions that start
    reparent: dict[str, str] = field(default_factory=dict)  # child code -> new parent code
    notes: list[str] = field(default_factory=list)
    closed_grids: list[Grid] = field(default_factory=list)  # the versions that end, as they were
    line: object = None  # a split's (snapped) line, to cut the children with it (cascade)
    #: micro-grids' shares (membership.ShareRow) of the courtyards the edit touches, as it leaves them
    #: (None: the edit touches no micro-grid's floors)
    shares: list | None = None
    #: children given a new version as they are (moved, or their floors changed) whose counts change with
    #: their floors: code -> (households, population); ``recounted``: their versions before
    recount: dict[str, tuple[int, int]] = field(default_factory=dict)
    recounted: list[Grid] = field(default_factory=list)
    #: children given a new version in their own parent because their floors change
    refloored: list[str] = field(default_factory=list)
    #: micro-grids left standing whose floors the edit changes (moved or not)
    floors_changed: set[str] = field(default_factory=set)
    #: micro-grids holding floors before or after the edit (the others' counts are their own)
    floored: set[str] = field(default_factory=set)

    @property
    def touched(self) -> list[str]:
        """Codes of the edited level whose area or existence changes."""
        return sorted(set(self.close) | {g.code for g in self.open})


def as_multi(geom, what: str):
    """A polygonal geometry as MultiPolygon; InputError naming ``what`` for anything else."""
    if geom is None or shapely.is_empty(geom):
        raise InputError(f"{what}: the geometry is empty")
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "MultiPolygon":
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
        if parts:
            return as_multi(shapely.union_all(parts), what)
    raise InputError(f"{what}: expected a Polygon or MultiPolygon, got a {geom.geom_type}")


#: Vertices of an edited outline within this distance (degrees, about 0.2 m) of a vertex of the
#: grids around it are snapped onto it.  Outlines come back from the API rounded to 7 decimals and
#: from Leaflet to 6: along a 1 km edge, that rounding alone would open or overlap square metres.
SNAP_DEG = 2e-6
#: Polygon parts smaller than this (m²) are slivers of overlay noise and are dropped from results.
SLIVER_M2 = 0.01


def snap(geom, around: list):
    """``geom`` with its vertices (and segments) snapped to the vertices of the grids ``around`` it
    (GEOS' snapper): an outline that was sent back unchanged, or redrawn along a neighbour, then
    shares that neighbour's boundary exactly."""
    coords = [shapely.get_coordinates(g) for g in around if g is not None and not shapely.is_empty(g)]
    if not coords:
        return geom
    out = shapely.snap(geom, shapely.multipoints(np.vstack(coords)), SNAP_DEG)
    return out if out.is_valid or not geom.is_valid else geom


def _clean(geom):
    """Overlay results as MultiPolygon without slivers (lines, points, polygons of no real area)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]
    if parts:
        areas = geo.area_m2(parts)
        parts = [p for p, a in zip(parts, areas) if a > SLIVER_M2]
    return shapely.MultiPolygon(parts) if parts else shapely.MultiPolygon()


def _valid(geoms):
    return [g if g.is_valid else shapely.make_valid(g) for g in geoms]


def _diff(a, b):
    try:
        out = shapely.difference(a, b, grid_size=integrity.GRID_DEG)
    except shapely.errors.GEOSException:  # a topology GEOS cannot round: repair, then once more
        a, b = _valid([a, b])
        out = shapely.difference(a, b, grid_size=integrity.GRID_DEG)
    return _clean(out)


def union(geoms):
    geoms = list(geoms)
    try:
        out = shapely.union_all(geoms, grid_size=integrity.GRID_DEG)
    except shapely.errors.GEOSException:
        out = shapely.union_all(_valid(geoms), grid_size=integrity.GRID_DEG)
    return _clean(out)


def _sibling(grid: Grid, other: Grid, what: str) -> None:
    if other.parent_code != grid.parent_code or other.level != grid.level:
        raise InputError(
            f"{what} {other.code} is not a sibling of {grid.code} (same level and parent {grid.parent_code})"
        )


# --- operations --------------------------------------------------------------------------


def plan_update(target: Grid, props: dict) -> Plan:
    return Plan("update", close=[target.code], open=[_with_props(target, props)])


def _with_props(g: Grid, props: dict | None) -> Grid:
    props = dict(props or {})
    unknown = set(props) - {"name", "households", "population", "kind"}
    if unknown:
        raise InputError(f"unknown properties: {', '.join(sorted(unknown))} (name, households, population, kind)")
    for key in ("households", "population"):
        if key in props:
            values.count(props[key], key)
    if "name" in props:
        props["name"] = values.text(props["name"], "name")
    if "kind" in props:
        values.kind(props["kind"], "kind", g.level)
    return replace(g, **props)


def plan_replace(target: Grid, geom, *, props: dict | None = None, gap_to: Grid | None = None) -> Plan:
    geom = as_multi(geom, f"new geometry of {target.code}")
    plan = Plan("replace", close=[target.code], open=[replace(_with_props(target, props), geom=geom)])
    if gap_to is not None:
        _sibling(target, gap_to, "gap_to")
        given_up = _diff(target.geom, geom)
        plan.close.append(gap_to.code)
        plan.open.append(replace(gap_to, geom=union([gap_to.geom, given_up])))
        plan.notes.append(f"{gap_to.code} takes the area {target.code} gives up")
    return plan


def plan_move_boundary(a: Grid, b: Grid, new_a) -> Plan:
    """``a`` gets ``new_a``; ``b`` gets the rest of their union."""
    _sibling(a, b, "the other side")
    new_a = as_multi(new_a, f"new geometry of {a.code}")
    both = union([a.geom, b.geom])
    new_b = _diff(both, new_a)
    if shapely.is_empty(new_b):
        raise InputError(f"moving the boundary leaves nothing of {b.code}: use merge instead")
    return Plan("move_boundary", close=[a.code, b.code], open=[replace(a, geom=new_a), replace(b, geom=new_b)])


def plan_merge(targets: list[Grid], *, name: str | None = None) -> Plan:
    if len(targets) < 2:
        raise InputError("merge needs at least two grids")
    first = targets[0]
    for other in targets[1:]:
        _sibling(first, other, "merged grid")
    merged = replace(
        first,
        geom=union([t.geom for t in targets]),
        name=name or first.name,
        households=sum(t.households for t in targets),
        population=sum(t.population for t in targets),
    )
    return Plan(
        "merge",
        close=[t.code for t in targets],
        open=[merged],
        notes=[f"{', '.join(t.code for t in targets[1:])} retire into {first.code}"],
    )


def split_by_line(geom, line) -> list:
    """The polygons of ``geom`` cut by ``line`` (a LineString crossing it), largest first."""
    if line is None or line.geom_type not in ("LineString", "MultiLineString"):
        raise InputError("split needs a LineString (or MultiLineString) crossing the grid")
    pieces = []
    for poly in shapely.get_parts(geom):
        pieces += list(shapely.get_parts(split(poly, line)))
    if len(pieces) < 2:
        raise InputError("the line does not cut the grid in two: it must cross the outline from edge to edge")
    return sorted(pieces, key=lambda p: -p.area)


def children_cut(children: list[Grid], line, tolerance: float = integrity.DEFAULT_TOLERANCE_M2) -> dict[str, list]:
    """The children ``line`` cuts in two or more pieces over ``tolerance`` m²: code -> pieces."""
    out = {}
    for child in children:
        if not child.geom.intersects(line):
            continue
        pieces = [q for poly in shapely.get_parts(child.geom) for q in shapely.get_parts(split(poly, line))]
        big = [q for q, a in zip(pieces, geo.area_m2(pieces)) if a > tolerance] if len(pieces) > 1 else []
        if len(big) > 1:
            out[child.code] = sorted(big, key=lambda q: -q.area)
    return out


def plan_split(target: Grid, parts: list[Grid]) -> Plan:
    """``target`` retires (unless a part reuses its code); ``parts`` are its successors."""
    if len(parts) < 2:
        raise InputError("split needs at least two parts")
    codes = [p.code for p in parts]
    if len(set(codes)) != len(codes):
        raise InputError(f"split parts need distinct codes, got {', '.join(codes)}")
    hh = _shares(target.households, [p.geom for p in parts])
    pop = _shares(target.population, [p.geom for p in parts])
    opened = [
        replace(
            p,
            level=target.level,
            parent_code=target.parent_code,
            kind=target.kind,
            households=int(h),
            population=int(q),
        )
        for p, h, q in zip(parts, hh, pop)
    ]
    return Plan("split", close=[target.code], open=opened)


def _shares(total: int, geoms) -> np.ndarray:
    """``total`` shared by area (whole numbers summing to ``total``); replaced by unit counts later."""
    areas = np.asarray(geo.area_m2(geoms), dtype=float)
    if total <= 0 or areas.sum() <= 0:
        return np.zeros(len(areas), dtype=int)
    raw = total * areas / areas.sum()
    out = np.floor(raw).astype(int)
    out[np.argsort(-(raw - out))[: total - out.sum()]] += 1
    return out


def plan_create(new: Grid, *, carve_from: list[Grid] = ()) -> Plan:
    check_level(new.level)
    new = replace(new, geom=as_multi(new.geom, f"geometry of {new.code}"))
    plan = Plan("create", open=[new])
    for s in carve_from:
        rest = _diff(s.geom, new.geom)
        if shapely.is_empty(rest):
            raise InputError(f"the new grid {new.code} covers all of {s.code}: retire or merge it instead")
        plan.close.append(s.code)
        plan.open.append(replace(s, geom=rest))
        plan.notes.append(f"{new.code} is carved out of {s.code}")
    return plan


def plan_retire(target: Grid, *, gap_to: Grid | None = None) -> Plan:
    plan = Plan("retire", close=[target.code])
    if gap_to is not None:
        _sibling(target, gap_to, "gap_to")
        plan.close.append(gap_to.code)
        plan.open.append(
            replace(
                gap_to,
                geom=union([gap_to.geom, target.geom]),
                households=gap_to.households + target.households,
                population=gap_to.population + target.population,
            )
        )
        plan.notes.append(f"{gap_to.code} takes the area of {target.code}")
    return plan


def reparent_children(plan: Plan, children: list[Grid]) -> None:
    """Children of closed grids go to the opened grid holding their representative point (or stay
    with their parent when it continues); a child no opened grid holds is left for the check."""
    for child in children:
        if child.parent_code not in plan.close:
            continue
        p = shapely.point_on_surface(child.geom)
        # of the parent's level: a cascade opens grids of the child's level too
        holder = next((g for g in plan.open if g.level == parent_level(child.level) and g.geom.covers(p)), None)
        if holder is not None and holder.code != child.parent_code:
            plan.reparent[child.code] = holder.code


# --- checking ----------------------------------------------------------------------------


def _frame(grids: list[Grid]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "code": [g.code for g in grids],
            "level": [g.level for g in grids],
            "parent_code": [g.parent_code for g in grids],
            "households": [int(g.households) for g in grids],
            "geometry": [g.geom for g in grids],
        }
    )


def after(plan: Plan, family: list[Grid]) -> list[Grid]:
    """The family as the plan leaves it."""
    out = [g for g in family if g.code not in plan.close]
    out += plan.open
    return [replace(g, parent_code=plan.reparent[g.code]) if g.code in plan.reparent else g for g in out]


def _pieces(grids: list[Grid], tolerance: float) -> list:
    """Grids in more than one piece: an edit may not leave a grid in two (a grid already declared in
    several parts was so before the edit too, so the edit does not create it)."""
    return integrity_shares.check_connected(
        [g.code for g in grids], [g.geom for g in grids], [False] * len(grids), tolerance
    )


def check(
    plan: Plan,
    family: list[Grid],
    *,
    tolerance: float = integrity.DEFAULT_TOLERANCE_M2,
    shared_before: dict | None = None,
    shared_after: dict | None = None,
) -> list:
    """Problems the plan creates in its family (parent, siblings, children of the edited grids).
    ``shared_before`` / ``shared_after``: where two micro-grids may overlap before and after the edit,
    {(code_a, code_b): the footprints of the towers both hold floors of}, as ``gridmap validate`` has it
    (:func:`.integrity_shares.shared_footprints`)."""
    before = integrity.validate(_frame(family), tolerance=tolerance, allowed_overlaps=shared_before or {})
    before += _pieces(family, tolerance)
    result = after(plan, family)
    now = integrity.validate(_frame(result), tolerance=tolerance, allowed_overlaps=shared_after or {})
    now += _pieces(result, tolerance)
    judged = set(plan.touched) | set(plan.reparent)
    parents = {g.parent_code for g in plan.open} | {g.parent_code for g in family if g.code in plan.close}
    old = {}
    for p in before:
        old.setdefault((p.kind, tuple(p.codes)), []).append(p)

    with_children = {g.parent_code for g in result}

    def relevant(p) -> bool:
        if p.kind not in BLOCKING:
            return False
        if p.kind == "gap":
            if p.codes[0] in parents:
                return True
            # a new grid without children yet (a new courtyard before it is partitioned) is not
            # broken; a grid that has children must be tiled by them
            return p.codes[0] in judged and p.codes[0] in with_children
        if p.kind in ("missing_parent", "unknown_parent", "wrong_parent_level"):
            return p.codes[0] in judged
        return bool(judged & set(p.codes))

    def new(p) -> bool:
        same = old.get((p.kind, tuple(p.codes)), [])
        if not same or p.geometry is None:
            return not same
        was = union([q.geometry for q in same if q.geometry is not None])
        grown = _diff(p.geometry, was)
        return bool(len(shapely.get_parts(grown))) and float(geo.area_m2([grown])[0]) > tolerance

    return [p for p in now if relevant(p) and new(p)]


# --- who is affected -----------------------------------------------------------------------


def holder(geoms: list, codes: list[str], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """For each point, the lowest code among the geometries covering it (None when none does): the
    lookups' rule, so a point on a shared edge is placed as the commit will place it."""
    out = np.full(len(x), None, dtype=object)
    if not len(x):
        return out
    pts = shapely.points(x, y)
    for code, g in sorted(zip(codes, geoms), key=lambda p: p[0]):
        shapely.prepare(g)
        hit = shapely.covers(g, pts) & (out == None)  # noqa: E711
        out[hit] = code
    return out


def moves(plan: Plan, closed: list[Grid], ids, x, y, limit: int | None = 50) -> dict:
    """Points (ids, lon, lat) whose grid at the edited level changes: count and the first ``limit``
    (None: all)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    was = holder([g.geom for g in closed], [g.code for g in closed], x, y)
    now = holder([g.geom for g in plan.open], [g.code for g in plan.open], x, y)
    moved = np.flatnonzero(was != now)
    return {
        "count": int(len(moved)),
        "items": [{"id": _plain(ids[i]), "from": was[i], "to": now[i]} for i in moved[:limit]],
    }


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def unit_households(geoms: list, codes: list[str], units: pd.DataFrame) -> dict[str, int]:
    """Households of each geometry counted from stairwell units at their entrances (``units``: x, y,
    households), the way the partitioner places them."""
    got = holder(geoms, codes, units["x"].to_numpy(), units["y"].to_numpy()) if len(units) else np.array([])
    sums = (
        pd.Series(units["households"].to_numpy() if len(units) else [], dtype="int64").groupby(got).sum()
        if len(units)
        else pd.Series(dtype="int64")
    )
    return {c: int(sums.get(c, 0)) for c in codes}


def band_flags(level: str, households: dict[str, int], band: tuple[int, int] = HOUSEHOLD_BAND) -> list[str]:
    """Micro-grids that leave the household ``band`` (min, max)."""
    if level != LEVELS[-1]:
        return []
    lo, hi = band
    return sorted(c for c, h in households.items() if not lo <= h <= hi)
