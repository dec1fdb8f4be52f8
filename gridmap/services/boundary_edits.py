"""Boundary edits, end to end: parse, lock, plan, check, preview the impact, and commit as new dated
versions in one transaction.  The API, the CLI, OGC API transactions and the map page all come here,
so every edit passes exactly the same checks (:mod:`gridmap.domain.boundaries`).

No lost updates: the grids an edit touches and their parent are locked (``SELECT … FOR UPDATE``)
before anything is read, so two edits in one parent run one after the other, and the second sees
the first's versions: if it was based on an older one (``if_match``), it fails with 412.
"""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import shapely
from shapely.geometry import mapping, shape
from sqlalchemy.engine import Engine

from .. import geo
from ..domain import boundaries
from ..domain.boundaries import Grid
from ..domain.levels import HOUSEHOLD_BAND, LEVELS, SPECIAL, check_level, parent_level
from ..domain.partition import unit_entrances
from ..domain.risk import Rules
from ..domain.stored_geometry import densify
from ..errors import EditRejected, InputError, NotFound, PreconditionFailed, PreconditionRequired
from ..store import audit, buildings, db, grids, points, risk, shares
from . import memberships

_KEYS = {
    "replace": {"code", "geometry", "properties", "gap_to"},
    "update": {"code", "properties"},
    "split": {"code", "line", "parts", "names", "codes"},
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
    if kind not in boundaries.OPS:
        raise InputError(f"op must be one of {', '.join(boundaries.OPS)}, got {kind!r}")
    unknown = set(op) - _KEYS[kind] - {"op", "crs"}
    if unknown:
        raise InputError(
            f"{kind} does not take {', '.join(sorted(unknown))}; it takes {', '.join(sorted(_KEYS[kind]))}"
        )
    return {**op, "crs": geo.parse_crs(op.get("crs"))}


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


def _next_codes(conn, parent: Grid | None, level: str, width_like: str | None, n: int) -> list[str]:
    """``n`` unused codes for new grids under ``parent``: its code plus the next numbers, as wide
    as the siblings' (a retired code is never reused)."""
    prefix = parent.code if parent is not None else ""
    taken = grids.codes_like(conn, prefix)
    width = len(width_like) - len(prefix) if width_like and width_like.startswith(prefix) else 2
    numbers = [int(c[len(prefix) :]) for c in taken if len(c) == len(prefix) + width and c[len(prefix) :].isdigit()]
    start = max(numbers, default=0) + 1
    out = [f"{prefix}{i:0{width}d}" for i in range(start, start + n)]
    if any(len(c) != len(prefix) + width for c in out):
        raise InputError(f"no free {width}-digit codes left under {prefix or 'the top level'}: give codes")
    return out


def _plan(conn, op: dict, targeted: dict[str, Grid], parent: Grid | None, around: list) -> boundaries.Plan:
    """The plan of ``op``; drawn geometries are first densified (no stored edge longer than about 10 m,
    so the geometry as stored reads the same in lon/lat and on the ellipsoid) and snapped to the vertices
    of the grids ``around`` the edit (its grids, their parent, siblings and children)."""
    kind, crs = op["op"], op["crs"]

    def _geometry(value, crs, what):
        return boundaries.snap(densify([_read_geometry(value, crs, what)])[0], around)

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
        if op.get("line") is not None:
            pieces = boundaries.split_by_line(target.geom, _geometry(op["line"], crs, "line"))
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
        fresh = iter(_next_codes(conn, parent, target.level, target.code, len(missing)))
        codes = [c or next(fresh) for c in codes]
        for c in codes:
            if c != target.code and grids.code_exists(conn, c):
                raise InputError(f"code {c} is already used (a code is never reused)")
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
        return boundaries.plan_split(target, parts)
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
        sibling = next(iter(grids.siblings(conn, parent.code if parent else None, level)), None)
        code = _next_codes(conn, parent, level, sibling.code if sibling else None, 1)[0]
    elif not isinstance(code, str) or not re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", code):
        raise InputError(f"code must be 1-64 letters, digits, '.', '_' or '-', got {code!r}")
    elif grids.code_exists(conn, code):
        raise InputError(f"code {code} is already used (a code is never reused)")
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


def _households(conn, plan: boundaries.Plan, op: dict, level: str, children: list[Grid]) -> None:
    """Counts of the opened versions: micro-grids and courtyards from their stairwell units (placed
    at their entrances, as the partitioner does), upper levels from their children; population
    follows households at the closed grids' ratio.  Counts given in the edit win."""
    given = set(op.get("properties") or {}) | set(op.get("grid") or {})
    changed = [g for g in plan.open if g.level != SPECIAL]
    if not changed or plan.op == "update":
        return
    closed_hh = sum(g.households for g in plan.closed_grids)
    closed_pop = sum(g.population for g in plan.closed_grids)
    ratio = closed_pop / closed_hh if closed_hh else None
    if level in ("courtyard", "micro"):
        area = boundaries.union([g.geom for g in changed])
        rows = buildings.meeting(conn, area)
        xs, ys, hh = [], [], []
        for _code, wkb, units in rows:
            if not units:
                continue
            spots = unit_entrances(shapely.from_wkb(bytes(wkb)), len(units))
            xs += list(spots[:, 0])
            ys += list(spots[:, 1])
            hh += list(units)
        counts = boundaries.unit_households(
            [g.geom for g in changed], [g.code for g in changed], pd.DataFrame({"x": xs, "y": ys, "households": hh})
        )
    else:
        kids = {}
        for c in children:
            p = plan.reparent.get(c.code, c.parent_code)
            kids[p] = kids.get(p, 0) + c.households
        counts = {g.code: kids.get(g.code, g.households) for g in changed}
    out = []
    for g in plan.open:
        if g.code in counts and "households" not in given:
            h = counts[g.code]
            pop = g.population if "population" in given or ratio is None else int(round(h * ratio))
            g = dataclasses.replace(g, households=h, population=pop)
        out.append(g)
    plan.open = out


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
) -> dict:
    """Check an edit and, unless ``dry_run``, commit it (refreshing the risk roll-up with ``rules``, the
    rules in force).  Returns the report (the impact preview); raises EditRejected (422),
    PreconditionFailed (412), PreconditionRequired (428), NotFound, InputError."""
    op = parse(op)
    targets = _targets(op)
    if_match = {k: _tag(v) for k, v in (if_match or {}).items()}
    with eng.begin() as conn:
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
        plan = _plan(conn, op, targeted, parent, around)
        # a create closes the siblings it carves from; every other op closes some of its own grids
        plan.closed_grids = [g for g in (nearby if op["op"] == "create" else targeted.values()) if g.code in plan.close]
        level = plan.open[0].level if plan.open else plan.closed_grids[0].level
        siblings = nearby if level != SPECIAL else plan.closed_grids
        children = grids.children(conn, plan.close)
        boundaries.reparent_children(plan, children)
        _households(conn, plan, op, level, children)
        family = ([parent] if parent else []) + siblings + children
        problems = boundaries.check(plan, family)
        if problems:
            problems.sort(key=lambda p: -(p.area_m2 or float("inf")))  # the worst first (no area: invalid)
            first = problems[0]
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            hint = ""
            if first.kind == "gap" and op["op"] in ("replace", "retire") and not op.get("gap_to"):
                hint = "; name the sibling that takes it with gap_to"
            raise EditRejected(
                f"{op['op']} rejected: {first.message}{hint}{more}", {"problems": [_problem(p) for p in problems]}
            )
        area = boundaries.union([g.geom for g in plan.closed_grids] + [g.geom for g in plan.open])
        found = points.points_in(conn, area) if not shapely.is_empty(area) else {}
        report = _report(op, plan, level, found)
        report["dry_run"] = dry_run
        if dry_run:
            return report
        at = db.now(conn)
        grids.close(conn, plan.close, at)
        opened = grids.open_versions(conn, plan.open, at)
        grids.reparent(conn, plan.reparent, at)
        if level == "courtyard":
            moved = boundaries.moves(plan, plan.closed_grids, *found["buildings"], limit=None)["items"]
            report["buildings_moved"] = buildings.move(
                conn, {str(m["id"]): m["to"] for m in moved if m["to"] is not None}, at
            )
        if level == LEVELS[-1]:
            report["reassigned"] = points.reassign(conn, plan.touched)
            # a micro-grid that keeps its code keeps its floors; units whose grid is gone (split, merge,
            # retire) go, whole, to the grid now holding them
            report["shares"] = shares.copy_forward(conn, [g.code for g in plan.open], at)
            report["shares"] += memberships.fill(conn, sorted({g.parent_code for g in plan.open if g.parent_code}))
        risk.refresh_rollup(conn, rules)
        codes = sorted(set(plan.touched) | set(plan.reparent))
        report["edit_id"] = audit.log(conn, actor, op["op"], reason, {"codes": codes, "report": report}, codes)
        report.update(valid_from=at.isoformat(), etags={c: etag(v) for c, v in opened.items()})
        return report


def _report(op: dict, plan: boundaries.Plan, level: str, found: dict) -> dict:
    """The impact preview: who changes grid (``found``: the points in the edited area), households
    before and after, the band."""
    moved = (
        {name: boundaries.moves(plan, plan.closed_grids, *found[name]) for name in found}
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
    hh_after = {g.code: g.households for g in plan.open}
    return {
        "op": op["op"],
        "level": level,
        "closed": sorted(plan.close),
        "opened": [g.code for g in plan.open],
        "children_moved": dict(sorted(plan.reparent.items())),
        "notes": plan.notes,
        "moved": moved,
        "grids": {"before": before, "after": after},
        "out_of_band": boundaries.band_flags(level, hh_after),
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
                "valid_from": v["valid_from"].isoformat(),
                "valid_to": v["valid_to"].isoformat() if v["valid_to"] else None,
                "area_m2": round(v["area_m2"], 1),
                "geometry": v["g"],
            }
        )
    edits = [
        {
            "id": e["id"],
            "at": e["at"].isoformat(),
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
    return {**row, "at": row["at"].isoformat()}
