"""Boundary edits, end to end: parse, lock, plan, check, preview the impact, and commit as new dated
versions in one transaction.  The API, the CLI, OGC API transactions and the map page all come here,
so every edit passes exactly the same checks (:mod:`gridmap.domain.boundaries`).

No lost updates: the grids an edit touches and their parent are locked (``SELECT … FOR UPDATE``)
before anything is read, so two edits in one parent run one after the other, and the second sees
the first's versions: if it was based on an older one (``if_match``), it fails with 412.
"""

from __future__ import annotations

import dataclasses

import lazy_loader
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import boundaries, budget, integrity_shares, membership, values
from ..domain.boundaries import Grid
from ..domain.counts import apportion
from ..domain.levels import HOUSEHOLD_BAND, LEVELS, SPECIAL, check_level, parent_level
from ..domain.partition import unit_entrances
from ..domain.risk import Rules
from ..domain.wording import count
from ..errors import (
    Conflict,
    EditRejected,
    InputError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
)
from ..store import audit, buildings, db, grids, points, risk, shares
from . import codes as code_issue
from . import memberships

pd = lazy_loader.load("pandas")

_KEYS = {
    "replace": {"code", "geometry", "properties", "gap_to"},
    "update": {"code", "properties"},
    "split": {"code", "line", "parts", "names", "codes", "cascade"},
    "merge": {"codes", "name"},
    "move_boundary": {"code", "other", "geometry"},
    "create": {"grid", "carve"},
    "retire": {"code", "gap_to"},
}


def etag(version: int) -> str:
    """The ETag of a grid version: ``"v<row id>"`` (a new version always has a new id)."""
    return f'"v{version}"'


def _tag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def current_etags(eng: Engine, codes) -> dict[str, str]:
    with eng.connect() as conn:
        return {c: etag(v) for c, v in grids.versions(conn, codes).items()}


def _read_geometry(value, crs: str, what: str):
    if not isinstance(value, dict) or "type" not in value:
        raise InputError(f"{what} must be a GeoJSON geometry object")
    try:
        geom = shape(value)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise InputError(f"{what} is not valid GeoJSON: {exc}") from None
    if crs != "EPSG:4326":
        geom = geo.transform_geoms([geom], crs)[0]
    return geom


def _text(op: dict, key: str) -> str:
    value = op.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{op['op']} needs {key!r}: a grid code")
    return value


def parse(op) -> dict:
    """Check an edit's shape (InputError naming the problem); returns it with ``crs`` normalised."""
    if not isinstance(op, dict):
        raise InputError('an edit is a JSON object: {"op": "replace", "code": "...", "geometry": {...}}')
    kind = op.get("op")
    if kind is None:
        raise InputError(f'an edit names its "op": one of {", ".join(boundaries.OPS)}')
    if kind not in boundaries.OPS:
        raise InputError(f"op must be one of {', '.join(boundaries.OPS)}, got {kind!r}")
    unknown = set(op) - _KEYS[kind] - {"op", "crs"}
    if unknown:
        raise InputError(
            f"{kind} does not take {', '.join(sorted(unknown))}; it takes {', '.join(sorted(_KEYS[kind]))}"
        )
    crs = op.get("crs")
    if crs is not None and not isinstance(crs, str):
        raise InputError(f"crs must be text such as gcj02 or EPSG:4326, got {values.shown(crs)}")
    _check_fields(op)
    return {**op, "crs": geo.parse_crs(crs)}


def _check_fields(op: dict) -> None:
    """Every field of an edit has the right type, size and format (InputError or PayloadTooLarge naming
    it) before anything is read or locked.  Codes are checked against their level once it is known."""
    kind = op["op"]
    for key in ("code", "other", "gap_to"):
        if op.get(key) is not None:
            values.code(op[key], key)
    if op.get("gap_to") is not None and op.get("gap_to") == op.get("code"):
        raise InputError(f"gap_to must be another grid than {op['code']}: the grid itself cannot take its area")
    if kind == "move_boundary" and op.get("other") == op.get("code"):
        raise InputError("move_boundary needs two different grids: code and other")
    if kind == "merge":
        codes = op.get("codes")
        if not isinstance(codes, list) or not 2 <= len(codes) <= 50:
            raise InputError("merge needs codes: a list of 2 to 50 sibling grid codes")
        for c in codes:
            values.code(c, "codes")
        values.text(op.get("name"), "name", required=False)
    if kind == "split":
        for key, check in (("codes", values.code), ("names", values.text)):
            given = op.get(key)
            if given is not None and (not isinstance(given, list) or len(given) > 50):
                raise InputError(f"{key} must be a list (one per part, at most 50), got {values.shown(given)}")
            for v in given or []:
                if v is not None:
                    check(v, key)
        parts = op.get("parts")
        if parts is not None and (not isinstance(parts, list) or not 2 <= len(parts) <= 50):
            raise InputError('parts must be a list of 2 to 50 {"geometry": …, "code"?: …, "name"?: …}')
        for i, part in enumerate(parts or []):
            if isinstance(part, dict) and "type" not in part:
                unknown = set(part) - {"geometry", "code", "name"}
                if unknown:
                    raise InputError(f"part {i + 1} takes geometry, code and name, not {sorted(unknown)[0]}")
                if part.get("code") is not None:
                    values.code(part["code"], f"part {i + 1} code")
                values.text(part.get("name"), f"part {i + 1} name", required=False)
    props = op.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise InputError(f"properties must be a JSON object, got {values.shown(props)}")
        _check_props(props, "properties")
    if kind == "create":
        spec = op.get("grid")
        if not isinstance(spec, dict):
            raise InputError('create needs grid: {"level", "parent_code", "name", "geometry", "code"?}')
        level = values.level(spec.get("level"), "grid.level")
        if spec.get("parent_code") is not None:
            values.code(spec["parent_code"], "grid.parent_code")
        values.kind(spec.get("kind"), "grid.kind", level)
        _check_props({k: spec[k] for k in ("name", "households", "population") if k in spec}, "grid")
    if "carve" in op and not isinstance(op["carve"], bool):
        raise InputError(f"carve must be true or false, got {values.shown(op['carve'])}")
    total = 0
    for what, geometry in _geometries(op):
        total += values.vertices(geometry, what)
    if total > values.EDIT_VERTICES:
        raise PayloadTooLarge(f"the edit has {total} vertices in all; at most {values.EDIT_VERTICES} are allowed")


def _check_props(props: dict, where: str) -> None:
    if "name" in props:
        values.text(props["name"], f"{where}.name")
    for key in ("households", "population"):
        if props.get(key) is not None:
            values.count(props[key], f"{where}.{key}")


def _geometries(op: dict):
    """(field, GeoJSON geometry) of every geometry an edit carries."""
    for key in ("geometry", "line"):
        if op.get(key) is not None:
            yield key, op[key]
    if isinstance(op.get("grid"), dict) and op["grid"].get("geometry") is not None:
        yield "grid.geometry", op["grid"]["geometry"]
    for i, part in enumerate(op.get("parts") or []):
        yield f"part {i + 1}", part.get("geometry") if isinstance(part, dict) and "type" not in part else part


def _targets(op: dict) -> list[str]:
    kind = op["op"]
    if kind == "merge":
        codes = op.get("codes")
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes) or len(codes) < 2:
            raise InputError("merge needs codes: a list of at least two sibling grid codes")
        if len(set(codes)) != len(codes):
            raise InputError("merge codes must be distinct")
        return codes
    if kind == "create":
        return []
    out = [_text(op, "code")]
    if kind == "move_boundary":
        out.append(_text(op, "other"))
    if op.get("gap_to") is not None:
        out.append(_text(op, "gap_to"))
    return out


def _check_unissued(conn, codes) -> None:
    """Raise Conflict (409) when a code given for a new grid was ever issued: a code is never reused."""
    for code, (level, retired) in sorted(grids.issued(conn, codes).items()):
        if retired is not None:
            raise Conflict(f"grid code {code} was retired on {db.iso(conn, retired)}; a code is never issued again")
        raise Conflict(f"grid code {code} is already issued (to a current {level}); a code is never reused")


def _plan(conn, op: dict, targeted: dict[str, Grid], parent: Grid | None, around: list) -> boundaries.Plan:
    """The plan of ``op``; drawn geometries are first snapped to the vertices of the grids ``around``
    the edit (its grids, their parent, siblings and children): the snapper also inserts those vertices
    into drawn edges that run along them, so a boundary drawn along densified neighbours is as dense
    as they are and the geometry as stored reads the same in lon/lat and on the ellipsoid."""
    kind, crs = op["op"], op["crs"]

    def _geometry(value, crs, what):
        return boundaries.snap(_read_geometry(value, crs, what), around)

    def get(code):
        if code not in targeted:
            raise NotFound(f"no current grid with code {code!r}")
        return targeted[code]

    if kind == "update":
        return boundaries.plan_update(get(op["code"]), op.get("properties") or {})
    if kind == "replace":
        target = get(op["code"])
        geom = _geometry(op["geometry"], crs, "geometry") if op.get("geometry") is not None else target.geom
        gap_to = get(op["gap_to"]) if op.get("gap_to") else None
        return boundaries.plan_replace(target, geom, props=op.get("properties"), gap_to=gap_to)
    if kind == "move_boundary":
        if op.get("geometry") is None:
            raise InputError("move_boundary needs geometry: the new outline of the first grid")
        return boundaries.plan_move_boundary(
            get(op["code"]), get(op["other"]), _geometry(op["geometry"], crs, "geometry")
        )
    if kind == "merge":
        return boundaries.plan_merge([get(c) for c in op["codes"]], name=op.get("name"))
    if kind == "retire":
        return boundaries.plan_retire(get(op["code"]), gap_to=get(op["gap_to"]) if op.get("gap_to") else None)
    if kind == "split":
        target = get(op["code"])
        if (op.get("line") is None) == (op.get("parts") is None):
            raise InputError("split needs either line (a GeoJSON LineString) or parts (a list of geometries)")
        line = None
        if op.get("line") is not None:
            line = _geometry(op["line"], crs, "line")
            pieces = boundaries.split_by_line(target.geom, line)
            given = [{} for _ in pieces]
        else:
            if not isinstance(op["parts"], list):
                raise InputError('parts must be a list of {"geometry": …, "code"?: …, "name"?: …}')
            given = [p if isinstance(p, dict) else {"geometry": p} for p in op["parts"]]
            pieces = [_geometry(p.get("geometry"), crs, f"part {i + 1}") for i, p in enumerate(given)]
        codes = op.get("codes") or [p.get("code") for p in given]
        names = op.get("names") or [p.get("name") for p in given]
        if len(codes) != len(pieces) or len(names) != len(pieces):
            raise InputError(f"the split makes {len(pieces)} parts: give that many codes and names (or none)")
        missing = [i for i, c in enumerate(codes) if not c]
        fresh = iter(code_issue.issue(conn, target.parent_code, target.level, len(missing)) if missing else [])
        codes = [c or next(fresh) for c in codes]
        for c in codes:
            if c != target.code:
                values.code(c, "codes", target.level, target.parent_code)
        _check_unissued(conn, [c for c in codes if c != target.code])
        names = [n or f"{target.name}-{i + 1}" for i, n in enumerate(names)]
        parts = [
            Grid(
                code=c,
                name=n,
                level=target.level,
                parent_code=target.parent_code,
                geom=boundaries.as_multi(g, f"part {i + 1}"),
                kind=target.kind,
            )
            for i, (c, n, g) in enumerate(zip(codes, names, pieces))
        ]
        plan = boundaries.plan_split(target, parts)
        plan.line = line
        return plan
    # create
    spec = op.get("grid")
    if not isinstance(spec, dict):
        raise InputError('create needs grid: {"level", "parent_code", "name", "geometry", "code"?}')
    unknown = set(spec) - {"code", "name", "level", "parent_code", "kind", "households", "population", "geometry"}
    if unknown:
        raise InputError(f"unknown grid fields: {', '.join(sorted(unknown))}")
    level = check_level(spec.get("level") or "")
    if parent_level(level) is not None and parent is None:
        raise InputError(f"a {level} needs parent_code: a current {parent_level(level)}")
    if parent is not None and parent.level != parent_level(level):
        raise InputError(f"the parent of a {level} must be a {parent_level(level)}; {parent.code} is a {parent.level}")
    if (level == SPECIAL) != bool(spec.get("kind")):
        raise InputError("kind is required for special grids and only for them")
    if not isinstance(spec.get("name"), str) or not spec["name"].strip():
        raise InputError("create needs a name")
    code = spec.get("code")
    if code is None:
        code = code_issue.issue(conn, parent.code if parent else "", level, 1)[0]
    else:
        _check_unissued(conn, [values.code(code, "code", level, parent.code if parent else None)])
    geom = _geometry(spec.get("geometry"), crs, "geometry")
    new = Grid(
        code=code,
        name=spec["name"].strip(),
        level=level,
        parent_code=parent.code if parent else None,
        geom=geom,
        households=int(spec.get("households") or 0),
        population=int(spec.get("population") or 0),
        kind=spec.get("kind"),
    )
    carve = []
    if op.get("carve") and level != SPECIAL:
        carve = [
            s
            for s in grids.siblings(conn, new.parent_code, level)
            if s.geom.intersects(new.geom) and not s.geom.touches(new.geom)
        ]
    return boundaries.plan_create(new, carve_from=carve)


def _cascade(conn, plan: boundaries.Plan, op: dict, children: list[Grid], names: dict) -> list[Grid]:
    """A split's line cutting children: EditRejected naming them, or with ``cascade`` they are split
    along it too (in the same edit; their pieces get new codes under the part holding them).
    Returns the children left to re-parent."""
    cut = boundaries.children_cut(children, plan.line)
    if not cut:
        return children
    kids = {c.code: c for c in children}
    if not op.get("cascade"):
        level = kids[next(iter(cut))].level
        problems = [
            _cut_problem(kids[code], f"the line cuts {kids[code].level} {code} in {len(pieces)} pieces")
            for code, pieces in sorted(cut.items())  # by code: the children come in no fixed order
        ]
        raise EditRejected(
            f"split rejected: the line cuts {level} grids {', '.join(sorted(cut))} of {op['code']}; split them "
            f"along it too with {names.get('cascade', 'cascade')}, or draw the line along their edges",
            {"problems": problems},
        )
    below = grids.children(conn, sorted(cut))
    if below:  # their own children would be left under a closed grid: the cascade goes one level down
        deeper = sorted({c.parent_code for c in below})
        level = kids[deeper[0]].level
        raise EditRejected(
            f"split rejected: the line cuts {level} grids {', '.join(deeper)} of {op['code']}, which have "
            f"{below[0].level} grids of their own; a cascade goes one level down: split them first along "
            f"the same line (with {names.get('cascade', 'cascade')}), then {op['code']}",
            {
                "problems": [
                    _cut_problem(kids[code], f"the line cuts {kids[code].level} {code}, which has grids of its own")
                    for code in deeper
                ]
            },
        )
    owner = {}  # piece -> the new part holding it
    for code, pieces in cut.items():
        for piece in pieces:
            spot = shapely.point_on_surface(piece)
            owner[(code, len(owner))] = (piece, next(g.code for g in plan.open if g.geom.covers(spot)))
    wanted = {}
    for _, parent in owner.values():
        wanted[parent] = wanted.get(parent, 0) + 1
    level = kids[next(iter(cut))].level
    fresh = {p: iter(c) for p, c in code_issue.issue_many(conn, wanted, level).items()}
    for (code, _), (piece, parent) in owner.items():
        child = kids[code]
        plan.open.append(
            Grid(
                code=next(fresh[parent]),
                name=f"{child.name}-{parent[-3:]}",
                level=child.level,
                parent_code=parent,
                geom=boundaries.as_multi(piece, f"a piece of {code}"),
            )
        )
    plan.close += list(cut)
    plan.closed_grids += [kids[c] for c in cut]
    plan.notes.append(f"{', '.join(cut)} split along the line with their parent (cascade)")
    return [c for c in children if c.code not in cut]


def _cut_problem(child: Grid, message: str) -> dict:
    """A ``child_cut`` problem: the child a split's line cuts, with its area and outline."""
    return {
        "kind": "child_cut",
        "codes": [child.code],
        "message": message,
        "area_m2": round(float(geo.area_m2([child.geom])[0]), 1),
        "geometry": mapping(geo.rfc7946([child.geom])[0]),
    }


def _at_level(plan: boundaries.Plan, level: str) -> boundaries.Plan:
    """The plan's grids of one level (a cascaded split holds two)."""
    return dataclasses.replace(plan, open=[g for g in plan.open if g.level == level])


def _households(conn, plan: boundaries.Plan, op: dict, children: list[Grid], units: list, family: list[Grid]) -> None:
    """Counts of the opened versions, bottom up: micro-grids from the floors they hold after the edit
    (``plan.shares``), courtyards from their buildings' units after it (``units``), other grids from
    their children after it (moved, kept, or opened by a cascade); where none of these is known,
    stairwell units placed at their entrances, as the partitioner does.  Population is shared out over
    each level's new grids as their households are (a micro-grid moved with its floors unchanged keeps
    its own), and a grid with children has their sum.  Counts the
    edit gives are kept for the grid it names (the replaced or updated grid, the created one); a
    micro-grid given a new version as it is (moved, or its floors changed) whose floors no longer add up
    to its count is recounted with the micro-grids the edit opens (``plan.recount``, ``plan.recounted``)."""
    given = set(op.get("properties") or {}) | set(op.get("grid") or {})
    if op["op"] == "create":
        targets = {g.code for g in plan.open if g.code not in plan.close}
    else:
        targets = {op.get("code")} if op["op"] in ("replace", "update") else set()
    changed = [g for g in plan.open if g.level != SPECIAL]
    held: dict[str, int] = {}
    for r in plan.shares or []:
        held[r.code] = held.get(r.code, 0) + r.households
    recount = [
        g
        for g in family
        if plan.shares is not None
        and g.level == LEVELS[-1]
        and g.code in plan.reparent
        and g.code not in plan.close
        and g.code in plan.floored  # a grid of a courtyard without buildings keeps the count it was given
        and held.get(g.code, 0) != g.households
    ]
    if (not changed and not recount) or plan.op == "update":
        return
    yard_units: dict[str, int] = {}
    for u in units:
        yard_units[u.courtyard] = yard_units.get(u.courtyard, 0) + sum(u.floors)
    counts, pops = {}, {}
    kept = [g for g in family if g.level != SPECIAL and g.code not in plan.close]

    def below(code: str, level: str) -> list[tuple[int, int]]:
        """(households, population) of the children ``code`` has after the edit."""
        lower = LEVELS[LEVELS.index(level) + 1] if level != LEVELS[-1] else None
        kids = [g for g in changed if g.level == lower and g.parent_code == code]
        kids += [g for g in kept if g.level == lower and plan.reparent.get(g.code, g.parent_code) == code]
        return [(counts.get(g.code, g.households), pops.get(g.code, g.population)) for g in kids]

    levels = {g.level for g in changed} | ({LEVELS[-1]} if recount else set())
    for level in sorted(levels, key=LEVELS.index, reverse=True):  # bottom up: children first
        mine = [g for g in changed if g.level == level]
        if level in (LEVELS[-1], LEVELS[-2]) and mine:
            counts.update(_counts(conn, mine))
        if level == LEVELS[-1] and plan.shares is not None:
            counts.update({g.code: held.get(g.code, 0) for g in mine})
        # the children are counted already (bottom up): what they hold is final for this level
        kids_of = {g.code: below(g.code, level) for g in mine}
        for g in mine:
            kids = kids_of[g.code]
            if level == LEVELS[-2] and g.code in yard_units:
                counts[g.code] = yard_units[g.code]
            elif level not in (LEVELS[-1], LEVELS[-2]):
                counts[g.code] = sum(h for h, _ in kids) if kids else g.households
            elif level == LEVELS[-2] and kids:
                counts[g.code] = sum(h for h, _ in kids)
        closed = [g for g in plan.closed_grids if g.level == level]
        if level == LEVELS[-1]:
            # a grid moved as it is keeps its people: its count was wrong, not its population; one whose
            # floors changed shares out the population with the grids the edit opens
            new_floors = [g for g in recount if g.code in plan.floors_changed]
            closed += new_floors
            mine += new_floors
            counts.update({g.code: held.get(g.code, 0) for g in recount})
        closed_hh, closed_pop = sum(g.households for g in closed), sum(g.population for g in closed)
        if closed_hh:
            new_hh = {g.code: counts[g.code] for g in mine}
            total = sum(new_hh.values())
            pop = closed_pop if total == closed_hh else int(round(total * closed_pop / closed_hh))
            pops.update(zip(new_hh, apportion(pop, list(new_hh.values()))))
        for g in mine:  # a grid with children has their population
            if kids_of.get(g.code):
                pops[g.code] = sum(p for _, p in kids_of[g.code])
    out = []
    for g in plan.open:
        if g.code in counts:
            mine_given = g.code in targets
            g = dataclasses.replace(
                g,
                households=g.households if mine_given and "households" in given else counts[g.code],
                population=g.population if mine_given and "population" in given else pops.get(g.code, g.population),
            )
        out.append(g)
    plan.open = out
    plan.recount = {g.code: (counts[g.code], pops.get(g.code, g.population)) for g in recount}
    plan.recounted = recount


def _counts(conn, changed: list[Grid]) -> dict[str, int]:
    """Households of opened micro-grids or courtyards from the stairwell units at their entrances (the
    way the partitioner places them): for grids whose floors or buildings are not otherwise known."""
    rows = buildings.meeting(conn, boundaries.union([g.geom for g in changed]))
    xs, ys, hh = [], [], []
    for _code, wkb, units in rows:
        if not units:
            continue
        spots = unit_entrances(shapely.from_wkb(bytes(wkb)), len(units))
        xs += list(spots[:, 0])
        ys += list(spots[:, 1])
        hh += list(units)
    return boundaries.unit_households(
        [g.geom for g in changed], [g.code for g in changed], pd.DataFrame({"x": xs, "y": ys, "households": hh})
    )


def _problem(p) -> dict:
    d = p.to_dict()
    if p.geometry is not None:
        d["geometry"] = mapping(geo.rfc7946([p.geometry])[0])
    return d


def apply(
    eng: Engine,
    op: dict,
    *,
    actor: str,
    rules: Rules,
    reason: str | None = None,
    dry_run: bool = False,
    if_match: dict[str, str] | None = None,
    require_match: bool = False,
    option_names: dict[str, str] | None = None,
) -> dict:
    """Check an edit and, unless ``dry_run``, commit it (refreshing the risk roll-up with ``rules``, the
    rules in force).  ``option_names``: how the caller names the edit's keys in its messages (the
    CLI's ``--gap-to`` for ``gap_to``).  Returns the report (the impact preview); raises EditRejected (422),
    PreconditionFailed (412), PreconditionRequired (428), NotFound, InputError."""
    op = parse(op)
    targets = _targets(op)
    if_match = {k: _tag(v) for k, v in (if_match or {}).items()}
    with db.translated(), eng.begin() as conn:
        # each statement, and each wait for the rows another write holds, is bounded (settings'
        # statement_timeout_ms, lock_timeout_ms: then 503 with Retry-After), so no edit holds its locks for minutes
        db.limit_time(conn)
        found = grids.current(conn, targets)
        parent_code = None
        if op["op"] == "create":
            parent_code = (op.get("grid") or {}).get("parent_code") if isinstance(op.get("grid"), dict) else None
        elif targets and targets[0] in found:
            parent_code = found[targets[0]].parent_code
        to_lock = targets + ([parent_code] if parent_code else [])
        locked = grids.lock(conn, to_lock)
        if any(c not in locked for c in to_lock):
            # we waited for another edit that closed these versions: in READ COMMITTED the locking
            # statement skips them, and only a new statement sees the versions that edit opened
            locked = grids.lock(conn, to_lock)
        missing = [c for c in targets if c not in locked]
        if missing:
            raise NotFound(f"no current grid with code {missing[0]!r}")
        targeted = grids.current(conn, targets)  # as locked: nobody can change them now
        if op["op"] != "create" and targeted[targets[0]].parent_code != parent_code:
            # the edit we waited for gave it another parent (split or re-coded it): lock that one instead
            parent_code = targeted[targets[0]].parent_code
            if parent_code:
                grids.lock(conn, [parent_code])
        for code in targets:
            want = if_match.get(code)
            if want is None:
                if require_match:
                    how = (
                        f"If-Match: {etag(locked[code])}"
                        if code == targets[0]
                        else f'"if_match": {{"{code}": "{etag(locked[code])}"}} in the body'
                    )
                    raise PreconditionRequired(
                        f"say which version of {code} the edit is based on ({how})",
                        {"etags": {c: etag(v) for c, v in locked.items() if c in targets}},
                    )
                continue
            if want != "*" and want != _tag(etag(locked[code])):
                raise PreconditionFailed(
                    f"{code} has changed since version {want}: it is now {etag(locked[code])}; reload and redo "
                    f"the edit",
                    {"etags": {c: etag(v) for c, v in locked.items() if c in targets}},
                )
        parent = grids.current(conn, [parent_code]).get(parent_code) if parent_code else None
        if parent_code and parent is None:
            raise InputError(f"parent {parent_code} is not a current grid")
        level = (op.get("grid") or {}).get("level") if op["op"] == "create" else next(iter(targeted.values())).level
        nearby = (
            grids.siblings(conn, parent.code if parent else None, level) if level in LEVELS or level is None else []
        )
        around = (
            [g.geom for g in nearby]
            + [g.geom for g in targeted.values()]
            + ([parent.geom] if parent else [])
            + [c.geom for c in grids.children(conn, list(targeted))]
        )
        budget.check("snapping the drawn outline")
        plan = _plan(conn, op, targeted, parent, around)
        budget.check("planning the edit")
        # a create closes the siblings it carves from; every other op closes some of its own grids
        plan.closed_grids = [g for g in (nearby if op["op"] == "create" else targeted.values()) if g.code in plan.close]
        level = plan.open[0].level if plan.open else plan.closed_grids[0].level
        siblings = nearby if level != SPECIAL else plan.closed_grids
        children = grids.children(conn, plan.close)
        if plan.line is not None:
            children = _cascade(conn, plan, op, children, option_names or {})
        boundaries.reparent_children(plan, children)
        # special grids (schools, markets) of a community the edit closes follow the part holding them
        communities = [g.code for g in plan.closed_grids if g.level == parent_level(SPECIAL)]
        specials = grids.specials_of(conn, communities) if communities else []
        boundaries.reparent_children(plan, specials)
        family = ([parent] if parent else []) + siblings + children + specials
        area = boundaries.union([g.geom for g in plan.closed_grids] + [g.geom for g in plan.open])
        found = points.points_in(conn, area) if not shapely.is_empty(area) else {}
        moved_buildings = (
            {
                str(m["id"]): m["to"]
                for m in boundaries.moves(_at_level(plan, level), plan.closed_grids, *found["buildings"], limit=None)[
                    "items"
                ]
                if m["to"] is not None
            }
            if level == "courtyard" and "buildings" in found
            else {}
        )
        units = _plan_shares(conn, plan, level, family, moved_buildings)
        _households(conn, plan, op, children, units, family)
        budget.check("counting households")
        shared_before, shared_after = _shared(conn, plan, family)
        problems = boundaries.check(plan, family, shared_before=shared_before, shared_after=shared_after)
        budget.check("checking the edit")
        if problems:
            problems.sort(key=lambda p: -(p.area_m2 or float("inf")))  # the worst first (no area: invalid)
            first = problems[0]
            more = f" (and {count(len(problems) - 1, 'more problem')})" if len(problems) > 1 else ""
            hint = ""
            if first.kind == "gap" and op["op"] in ("replace", "retire") and not op.get("gap_to"):
                hint = f"; name the sibling that takes it with {(option_names or {}).get('gap_to', 'gap_to')}"
            elif first.kind == "overlap" and first.geometry is not None:
                hint = _on_a_building(conn, first.geometry)
            raise EditRejected(
                f"{op['op']} rejected: {first.message}{hint}{more}", {"problems": [_problem(p) for p in problems]}
            )
        if level != "courtyard":  # buildings belong to courtyards: only a courtyard edit moves them
            found.pop("buildings", None)
        report = _report(op, plan, level, found)
        report["dry_run"] = dry_run
        if dry_run:
            return report
        at = db.now(conn)
        grids.close(conn, plan.close, at)
        opened = grids.open_versions(conn, plan.open, at)
        grids.reparent(conn, plan.reparent, at, plan.recount)
        if level == "courtyard":
            report["buildings_moved"] = buildings.move(conn, moved_buildings, at)
        micro = [g.code for g in plan.open if g.level == "micro"]
        touched = [
            c for c in plan.touched if c in set(micro) | {g.code for g in plan.closed_grids if g.level == "micro"}
        ]
        if touched:  # under the preview's names: the commit does what the preview said
            done = points.reassign(conn, touched)
            report["reassigned"] = {
                "residents": done["resident"],
                "reports": done["report"],
                "risk_elements": done["risk_element"],
            }
        report["shares"] = _write_shares(conn, plan)
        risk.refresh_rollup(conn, rules)
        codes = sorted(set(plan.touched) | set(plan.reparent))
        report["edit_id"] = audit.log(conn, actor, op["op"], reason, {"codes": codes, "report": report}, codes)
        report.update(valid_from=db.iso(conn, at), etags={c: etag(v) for c, v in opened.items()})
        return report


def _on_a_building(conn, overlap) -> str:
    """The hint for an overlap that lies on a building: micro-grids may overlap only on the footprint
    of a tower both hold floors of, so a line through a shared tower can leave pieces overlapping on
    it that hold none (or not both) of its floors."""
    for code, wkb, _units in buildings.meeting(conn, overlap):
        feet = shapely.from_wkb(bytes(wkb))
        if shapely.area(shapely.intersection(feet, overlap)) >= 0.5 * shapely.area(overlap):
            return (
                f", on the footprint of building {code}, whose floors they do not both hold; draw the line "
                "around the building (micro-grids may overlap only on a tower both hold floors of)"
            )
    return ""


def _shared(conn, plan: boundaries.Plan, family: list[Grid]) -> tuple[dict, dict]:
    """Where micro-grids of the family may overlap before and after the edit: on the footprints of the
    towers both hold floors of, now and in ``plan.shares`` (the rule of ``gridmap validate``)."""
    micro = sorted({g.code for g in [*family, *plan.closed_grids] if g.level == LEVELS[-1]})
    held = shares.of_grids(conn, codes=micro) if micro else pd.DataFrame(columns=shares.COLUMNS)
    before = list(zip(held["code"], held["building_code"]))
    after = [(r.code, r.building) for r in plan.shares] if plan.shares is not None and plan.op != "update" else before
    feet = buildings.footprints(conn, codes=sorted({b for _, b in before + after})) if before or after else {}
    return integrity_shares.shared_footprints(before, feet), integrity_shares.shared_footprints(after, feet)


def _plan_shares(conn, plan: boundaries.Plan, level: str, family: list[Grid], moved_buildings: dict) -> list:
    """The floors of every micro-grid of the courtyards the edit touches, as it leaves them
    (:func:`gridmap.domain.membership.follow_edit`), into ``plan.shares``; a micro-grid the edit does not
    otherwise touch whose floors change gets a new version (moved to its own courtyard).
    ``moved_buildings``: building code -> its new courtyard.  Returns the units, after the edit."""
    micro = LEVELS[-1]
    if plan.op == "update":  # no ground changes: the new version of a micro-grid keeps its floors
        codes = sorted(g.code for g in plan.open if g.level == micro)
        if codes:
            plan.shares = _share_rows(conn, codes)
        return []
    if level not in (micro, LEVELS[-2]):
        return []
    closed = {g.code: g for g in plan.closed_grids if g.level == micro}
    opened = [g for g in plan.open if g.level == micro]
    kept = [g for g in family if g.level == micro and g.code not in plan.close]
    after = {g.code: (g.geom, g.parent_code) for g in opened}
    after.update({g.code: (g.geom, plan.reparent.get(g.code, g.parent_code)) for g in kept})
    yards = {g.parent_code for g in [*closed.values(), *kept]} | {p for _, p in after.values()}
    yards |= {g.code for g in [*plan.closed_grids, *plan.open] if g.level == LEVELS[-2]}
    yards.discard(None)
    if not yards:
        return []
    rows = _share_rows(conn, sorted(set(closed) | {g.code for g in kept}))
    found = shares.units(conn, courtyards=sorted(yards))
    feet = buildings.footprints(conn, codes=sorted({u[0] for u in found}))
    per_building: dict = {}
    for b, yard, number, households, floors, per_floor in found:
        per_building.setdefault((b, yard), []).append(
            (int(number), memberships.unit_floors(households, floors, per_floor))
        )
    units = []
    for (b, yard), of_b in per_building.items():
        for (number, floors), spot in zip(of_b, membership.unit_spots(feet[b], len(of_b))):
            units.append(membership.UnitAfter(b, moved_buildings.get(b, yard), number, floors, feet[b], spot))
    planned = membership.follow_edit(
        rows, after, {g.code for g in opened}, set(plan.reparent), {c: g.geom for c, g in closed.items()}, units
    )

    def floors_of(share_rows) -> dict:  # code -> {(building, unit, floor)}: runs joined or not, the same floors
        out: dict = {}
        for r in share_rows:
            out.setdefault(r.code, set()).update((r.building, r.unit, f) for f in range(r.floor_from, r.floor_to + 1))
        return out

    before, now = floors_of(rows), floors_of(planned)
    plan.floored = set(before) | set(now)
    changed = sorted(g.code for g in kept if now.get(g.code, set()) != before.get(g.code, set()))
    plan.floors_changed = set(changed)
    for code in changed:
        if code not in plan.reparent:  # a new version of it, in the same courtyard
            plan.reparent[code] = after[code][1]
            plan.refloored.append(code)
    if changed:
        plan.notes.append(f"floors change for {', '.join(changed)}: new versions of them")
    plan.shares = planned
    return units


def _share_rows(conn, codes) -> list:
    """The current shares of the micro-grids ``codes`` as ShareRows."""
    held = shares.of_grids(conn, codes=codes)
    return [membership.ShareRow(*r) for r in held[shares.COLUMNS].itertuples(index=False, name=None)]


def _write_shares(conn, plan: boundaries.Plan) -> int:
    """The planned shares of the micro-grid versions the commit opened (edited or moved); the others'
    are unchanged (``_plan_shares`` gave every grid whose floors change a new version)."""
    if plan.shares is None:
        return 0
    fresh = {g.code for g in plan.open if g.level == LEVELS[-1]} | set(plan.reparent)
    frame = pd.DataFrame(
        [(r.code, r.building, r.unit, r.floor_from, r.floor_to, r.households) for r in plan.shares if r.code in fresh],
        columns=shares.COLUMNS,
    )
    return shares.insert(conn, frame)


def _report(op: dict, plan: boundaries.Plan, level: str, found: dict) -> dict:
    """The impact preview: who changes grid (``found``: the points in the edited area), households
    before and after, the band."""
    edited = _at_level(plan, level)
    closed = [g for g in plan.closed_grids if g.level == level]
    moved = (
        {name: boundaries.moves(edited, closed, *found[name]) for name in found}
        if plan.op != "update"
        else {name: {"count": 0, "items": []} for name in found}
    )
    before = {
        g.code: {
            "households": g.households,
            "population": g.population,
            "area_m2": round(float(geo.area_m2([g.geom])[0]), 1),
        }
        for g in plan.closed_grids
    }
    after = {
        g.code: {
            "households": g.households,
            "population": g.population,
            "area_m2": round(float(geo.area_m2([g.geom])[0]), 1),
        }
        for g in plan.open
    }
    for g in plan.recounted:  # given a new version as they are, with the floors the edit leaves them
        area = round(float(geo.area_m2([g.geom])[0]), 1)
        before[g.code] = {"households": g.households, "population": g.population, "area_m2": area}
        households, population = plan.recount[g.code]
        after[g.code] = {"households": households, "population": population, "area_m2": area}
    return {
        "op": op["op"],
        "level": level,
        "closed": sorted(plan.close),
        "opened": [g.code for g in plan.open],
        "children_moved": {c: p for c, p in sorted(plan.reparent.items()) if c not in plan.refloored},
        "notes": plan.notes,
        "moved": moved,
        "grids": {"before": before, "after": after},
        "out_of_band": boundaries.band_flags(
            LEVELS[-1],
            {g.code: g.households for g in plan.open if g.level == LEVELS[-1]}
            | {code: counts[0] for code, counts in plan.recount.items()},
        ),  # micro-grids the edit opens (at either level of a cascaded split) or recounts
        "band": list(HOUSEHOLD_BAND),
    }


def history(eng: Engine, code: str) -> dict:
    """Every version of a grid (with ETags and outlines) and the logged edits that touched it."""
    with eng.connect() as conn:
        found = grids.versions_of(conn, code)
        logged = audit.entries_for(conn, code)
    if not found:
        raise NotFound(f"no grid with code {code!r}, now or ever")
    versions = []
    for v in found:
        versions.append(
            {
                "version": etag(v["id"]),
                "name": v["name"],
                "level": v["level"],
                "kind": v["kind"],
                "parent_code": v["parent_code"],
                "households": v["households"],
                "population": v["population"],
                "valid_from": db.iso(eng, v["valid_from"]),
                "valid_to": db.iso(eng, v["valid_to"]),
                "area_m2": round(v["area_m2"], 1),
                "geometry": v["g"],
            }
        )
    edits = [
        {
            "id": e["id"],
            "at": db.iso(eng, e["at"]),
            "actor": e["actor"],
            "action": e["action"],
            "reason": e["reason"],
            "codes": e["codes"],
        }
        for e in logged
    ]
    return {"code": code, "versions": versions, "edits": edits}


def edit_record(eng: Engine, edit_id: int) -> dict:
    with eng.connect() as conn:
        row = audit.entry(conn, edit_id)
    if row is None:
        raise NotFound(f"no edit {edit_id}")
    return {**row, "at": db.iso(eng, row["at"])}
