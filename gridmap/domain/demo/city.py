"""A seeded demo city inside the real Zhengzhou boundaries.

No public source has polygons below district level, so the lower levels are
generated: each parent is cut into exactly the required number of children by a
Voronoi diagram of k-means-balanced seeds, clipped to the parent (so children
tile it up to floating-point noise).  A child that the clip splits into pieces
keeps its largest piece; the others join the neighbour with which they share the
longest edge, so every child is one contiguous polygon.  All cutting happens in
a plane affine to lon/lat (``geo.to_local``, about metres), so the tiling that
holds there holds exactly in storage too.

Real names and codes are used where they exist (districts, streets, Guancheng's
communities); everything below is invented, plausibly.  Households live in
building units, 50-70 per micro-grid, so every level's households add up.

Pure: the real boundaries and division lists come in as :class:`Sources` (read by
:mod:`gridmap.services.resources`), and :func:`build` returns rows; writing the files is
:func:`gridmap.services.demo.generate`.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import lazy_loader
import numpy as np
import shapely

from ... import geo
from ..levels import HOUSEHOLD_BAND
from ..partition import compound
from ..partition.floors import Unit
from ..stored_geometry import densify
from . import buildings
from . import risk as demo_risk

pd = lazy_loader.load("pandas")

GUANCHENG = "410104"
#: Seconds the partitioner may spend on one demo courtyard.
PLAN_BUDGET_S = 4.0


@dataclass(frozen=True)
class Scale:
    name: str
    districts: tuple[str, ...]
    streets: int
    communities: int
    courtyards: int
    micro: int


SCALES = {
    "guancheng": Scale("guancheng", (GUANCHENG,), 14, 155, 756, 1878),
    "zhengzhou": Scale(
        "zhengzhou",
        (
            "410102",
            "410103",
            "410104",
            "410105",
            "410106",
            "410108",
            "410122",
            "410181",
            "410182",
            "410183",
            "410184",
            "410185",
        ),
        216,
        3503,
        17091,
        42453,
    ),
}

HOUSEHOLDS_PER_MICRO = HOUSEHOLD_BAND
SPECIAL_SHARE = 0.25
SPECIAL_KINDS = {"mall": "购物中心", "market": "农贸市场", "school": "学校", "enterprise": "有限公司", "other": "医院"}

_WORDS = list(
    "金华阳光明德兴盛和平安康泰福瑞祥嘉禾丰乐景园林翠锦绣春秋东西南北中新世纪碧桂凤凰天地龙湖紫荆银河"
    "盛世名门书香怡景雅居正商建业鑫苑永威亚星美景天伦城市花溪"
)
_SUFFIXES = ("花园", "小区", "家园", "苑", "公寓", "新村", "华庭", "雅居", "佳苑", "嘉园")
_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程")
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志强海燕红霞桂芳文亮")


@dataclass(frozen=True)
class Sources:
    """The real data the city is built in: district outlines and names by code (``gcj02`` as shipped,
    ``wgs84``), Zhengzhou's streets and Guancheng's communities (rows of the shipped CSVs)."""

    districts: dict[str, dict]
    streets: list[dict]
    communities: list[dict]


def _community_name(raw: str) -> str:
    """ "宇通花园社区居民委员会" -> "宇通花园社区", "xx村民委员会"/"xx村委会" -> "xx村"."""
    for suffix, keep in (("居民委员会", ""), ("居委会", ""), ("村民委员会", "村"), ("村委会", "村")):
        if raw.endswith(suffix):
            return raw[: -len(suffix)] + keep
    return raw


# --- geometry -------------------------------------------------------------------


def sample_points(poly, n, rng) -> np.ndarray:
    """``n`` uniform random points inside ``poly`` (rejection sampling)."""
    x0, y0, x1, y1 = poly.bounds
    shapely.prepare(poly)
    got = []
    have = 0
    while have < n:
        m = max(64, int((n - have) * 1.5 * (x1 - x0) * (y1 - y0) / max(poly.area, 1e-9)))
        xs = rng.uniform(x0, x1, m)
        ys = rng.uniform(y0, y1, m)
        inside = shapely.contains_xy(poly, xs, ys)
        got.append(np.column_stack([xs[inside], ys[inside]]))
        have += int(inside.sum())
    return np.concatenate(got)[:n]


def split(poly, n, rng, iterations=5) -> list:
    """Cut ``poly`` into ``n`` contiguous polygons of similar area that tile it."""
    if n <= 1:
        return [poly]
    pts = sample_points(poly, max(30 * n, 120), rng)
    centers = pts[rng.choice(len(pts), n, replace=False)].copy()
    for _ in range(iterations):
        labels = ((pts[:, None, :] - centers[None, :, :]) ** 2).sum(-1).argmin(1)
        for k in range(n):
            members = pts[labels == k]
            if len(members):
                centers[k] = members.mean(0)
    # seeds must be distinct points inside the polygon: take the sample nearest each centre
    seeds = []
    taken = set()
    for c in centers:
        order = np.argsort(((pts - c) ** 2).sum(1))
        j = next(j for j in order if j not in taken)
        taken.add(j)
        seeds.append(pts[j])
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(np.array(seeds)), extend_to=poly, ordered=True)
    )
    return _contiguous(shapely.intersection(cells, poly))


def _polygons(geom) -> list:
    parts = shapely.get_parts(geom)
    return [p for p in parts if p.geom_type == "Polygon" and p.area > 0]


def _contiguous(pieces) -> list:
    """Keep each piece's largest part; give the other parts to the neighbour sharing the longest edge."""
    main, orphans = [], []
    for geom in pieces:
        parts = sorted(_polygons(geom), key=lambda p: -p.area)
        main.append(parts[0])
        orphans += parts[1:]
    for part in sorted(orphans, key=lambda p: -p.area):
        shared = shapely.length(shapely.intersection(part.boundary, shapely.boundary(np.array(main, dtype=object))))
        best = int(np.argmax(shared))
        main[best] = shapely.union(main[best], part)
    return main


def _allocate(total: int, bins: int, rng, minimum: int = 1) -> np.ndarray:
    """Split ``total`` into ``bins`` random counts of at least ``minimum``."""
    if total < bins * minimum:
        raise ValueError(f"cannot give {bins} parents at least {minimum} of {total} children")
    return minimum + rng.multinomial(total - bins * minimum, np.full(bins, 1.0 / bins))


def _rectangle(cx, cy, w, h, angle):
    c, s = math.cos(angle), math.sin(angle)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return shapely.Polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners])


def _place(cell, w, h, placed, rng):
    """A w x h footprint inside ``cell`` clear of ``placed`` ones (shrinking when it does not fit)."""
    for attempt in range(30):
        scale = 0.8 ** (attempt // 6)
        x, y = sample_points(cell, 1, rng)[0]
        rect = _rectangle(x, y, w * scale, h * scale, rng.uniform(0, math.pi))
        if cell.contains(rect) and not any(rect.intersects(p) for p in placed):
            return rect
    # a sliver of a cell: whatever of a 4 m square around an interior point lies in it and is free
    p = cell.representative_point()
    square = shapely.intersection(_rectangle(p.x, p.y, 4.0, 4.0, 0.0), cell)
    free = shapely.difference(square, shapely.union_all(placed)) if placed else square
    parts = _polygons(free) or _polygons(square)
    return max(parts, key=lambda q: q.area) if parts else None


# --- names ------------------------------------------------------------------------


class Names:
    """Chinese names for the demo: courtyards, communities, people and their mobile numbers."""

    def __init__(self, rng):
        self.rng = rng

    def courtyard(self, community: str, i: int, used: set) -> str:
        if i == 0 and community.endswith("社区"):
            stem = community[:-2]
            name = stem if stem.endswith(_SUFFIXES) else stem + "小区"
            if name not in used:
                return name
        while True:
            a, b = self.rng.choice(_WORDS, 2, replace=False)
            name = a + b + self.rng.choice(_SUFFIXES)
            if name not in used:
                return name

    def person(self) -> str:
        n = self.rng.integers(1, 3)
        return self.rng.choice(_SURNAMES) + "".join(self.rng.choice(_GIVEN, n))

    def phone(self) -> str:
        return "1" + str(self.rng.choice([35, 37, 38, 39, 50, 58, 86, 87])) + f"{self.rng.integers(0, 10**8):08d}"

    def community(self, used: set) -> str:
        while True:
            a, b = self.rng.choice(_WORDS, 2, replace=False)
            name = f"{a}{b}社区"
            if name not in used:
                return name


# --- the city ----------------------------------------------------------------------


def plan_districts(scale: Scale, seed: int, sources: Sources) -> list[dict]:
    """Streets and community counts per district: real where known, invented to reach the totals."""
    rng = np.random.default_rng([seed, 0])
    districts = {code: sources.districts[code] for code in scale.districts}
    streets_csv = [r for r in sources.streets if r["areaCode"] in districts]
    communities_csv = sources.communities
    plan = {code: {"district": d, "streets": []} for code, d in districts.items()}
    for r in streets_csv:
        plan[r["areaCode"]]["streets"].append({"code": r["code"], "name": r["name"]})
    real = sum(len(p["streets"]) for p in plan.values())
    if real > scale.streets:
        raise ValueError(f"scale {scale.name} asks for {scale.streets} streets, fewer than the {real} real ones")
    # invented streets go to the largest districts by area (largest remainder)
    areas = np.array([shapely.area(geo.to_metric([p["district"]["wgs84"]])[0]) for p in plan.values()])
    extra = scale.streets - real
    share = extra * areas / areas.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(-(share - counts))[: extra - counts.sum()]] += 1
    names = Names(rng)
    for (code, p), k in zip(plan.items(), counts):
        for j in range(k):
            short = p["district"]["name"].rstrip("区县市")
            p["streets"].append({"code": f"{code}{901 + j}", "name": f"{short}新区第{j + 1}街道"})
    # communities: Guancheng's are real; the rest are allocated over the other streets
    real_comms = {}
    for r in communities_csv:
        real_comms.setdefault(r["streetCode"], []).append({"code": r["code"], "name": _community_name(r["name"])})
    all_streets = [s for p in plan.values() for s in p["streets"]]
    fixed = [s for s in all_streets if s["code"] in real_comms]
    free = [s for s in all_streets if s["code"] not in real_comms]
    n_fixed = sum(len(real_comms[s["code"]]) for s in fixed)
    if free:
        alloc = _allocate(scale.communities - n_fixed, len(free), rng)
    elif n_fixed != scale.communities:
        raise ValueError(f"scale {scale.name}: {scale.communities} communities asked, {n_fixed} real")
    for s in fixed:
        s["communities"] = real_comms[s["code"]]
    for s, k in zip(free, alloc if free else []):
        used: set = set()
        s["communities"] = []
        for j in range(int(k)):
            name = names.community(used)
            used.add(name)
            s["communities"].append({"code": f"{s['code']}{j + 1:03d}", "name": name})
    comms = [c for s in all_streets for c in s["communities"]]
    for c, k in zip(comms, _allocate(scale.courtyards, len(comms), rng)):
        c["courtyards"] = int(k)
    micro = _allocate(scale.micro, scale.courtyards, rng)
    pos = 0
    for c in comms:
        c["micro"] = [int(m) for m in micro[pos : pos + c["courtyards"]]]
        pos += c["courtyards"]
    return [
        {
            "code": code,
            "name": p["district"]["name"],
            "streets": p["streets"],
            "order": i,
            "gcj02": p["district"]["gcj02"],
            "wgs84": p["district"]["wgs84"],
        }
        for i, (code, p) in enumerate(plan.items())
    ]


def planned_counts(plans: list[dict]) -> dict[str, int]:
    """Grids per level that the district ``plans`` (of :func:`plan_districts`) will give; micro-grids as planned
    (the partitioner makes about as many: one per 60 households)."""
    streets = [s for p in plans for s in p["streets"]]
    comms = [c for s in streets for c in s["communities"]]
    return {
        "district": len(plans),
        "street": len(streets),
        "community": len(comms),
        "courtyard": sum(c["courtyards"] for c in comms),
        "micro": sum(sum(c["micro"]) for c in comms),
    }


def build_district(args) -> dict:
    """Generate everything under one district (run in a worker process)."""
    plan, seed = args
    rng = np.random.default_rng([seed, 1, plan["order"]])
    names = Names(rng)
    # the district densified first, so every level below inherits short edges along its outline
    wgs84 = densify([plan["wgs84"]])[0]
    outline = geo.to_local([wgs84])[0]
    out = {k: [] for k in ("street", "community", "courtyard", "micro", "special", "building", "person", "share")}
    street_geoms = split(outline, len(plan["streets"]), rng, iterations=8)
    for s, sgeom in zip(plan["streets"], street_geoms):
        s_hh = 0
        comm_geoms = split(sgeom, len(s["communities"]), rng)
        for c, cgeom in zip(s["communities"], comm_geoms):
            c_hh = 0
            used: set = set()
            yard_geoms = split(cgeom, c["courtyards"], rng)
            for yi, (n_micro, ygeom) in enumerate(zip(c["micro"], yard_geoms)):
                ycode = f"{c['code']}{yi + 1:03d}"
                yname = names.courtyard(c["name"], yi, used)
                used.add(yname)
                y_hh = _compound(ycode, yname, ygeom, n_micro, rng, out)
                for g in out["micro"][-1::-1]:
                    if g["parent_code"] != ycode:
                        break
                    out["person"].append(
                        {"grid_code": g["code"], "name": names.person(), "role": "grid_worker", "phone": names.phone()}
                    )
                out["courtyard"].append(
                    {
                        "code": ycode,
                        "name": yname,
                        "parent_code": c["code"],
                        "households": y_hh,
                        "geometry": out.pop("_yard_ll"),
                    }
                )
                out["person"].append(
                    {"grid_code": ycode, "name": names.person(), "role": "grid_leader", "phone": names.phone()}
                )
                c_hh += y_hh
            out["community"].append(
                {"code": c["code"], "name": c["name"], "parent_code": s["code"], "households": c_hh, "geometry": cgeom}
            )
            out["person"].append(
                {"grid_code": c["code"], "name": names.person(), "role": "secretary", "phone": names.phone()}
            )
            _special(c, cgeom, rng, out["special"])
            s_hh += c_hh
        out["street"].append(
            {"code": s["code"], "name": s["name"], "parent_code": plan["code"], "households": s_hh, "geometry": sgeom}
        )
    out["district"] = [
        {
            "code": plan["code"],
            "name": plan["name"],
            "households": sum(s["households"] for s in out["street"]),
            "geometry": geo.transform_geoms([wgs84], "EPSG:4326", "gcj02")[0],  # shipped as GCJ-02
        }
    ]
    return out


def _compound(ycode: str, yname: str, ygeom, n_micro: int, rng, out: dict) -> int:
    """One courtyard as Zhengzhou builds it (:mod:`.buildings`: slab estates, mid-rises, towers, villas,
    about ``n_micro`` grids' worth of households), divided into micro-grids by the partitioner itself, so
    towers are shared by floors exactly as ``gridmap partition`` would share them.  The courtyard is
    stored densified (:func:`..stored_geometry.densify`) and its micro-grids are cut from that stored
    outline, so the tiling holds for PostGIS's geometry and geography alike.  Appends buildings,
    micro-grids and shares to ``out`` (and the courtyard's lon/lat outline under ``_yard_ll``); returns
    the households."""
    target = int(rng.integers(HOUSEHOLD_BAND[0], HOUSEHOLD_BAND[1] + 1, n_micro).sum())
    estate = buildings.estate_kind(target, rng)
    plan = buildings.households_plan(target, estate, rng)
    feet = buildings.place(ygeom, plan, rng)
    yard_ll = densify([geo.from_local([ygeom])[0]])[0]
    feet_ll = geo.from_local(np.array(feet, dtype=object))
    blds = []
    for k, ((kind, units, floors), fp) in enumerate(zip(plan, feet_ll), 1):
        code = f"{ycode}B{k:03d}"
        blds.append(compound.Building(code, fp, tuple(Unit(code, n, u) for n, u in enumerate(units, 1))))
        out["building"].append(
            {
                "code": code,
                "name": f"{yname}{k}号楼",
                "number": f"{k}号楼",
                "courtyard_code": ycode,
                "floors": floors,
                "units": ";".join(str(sum(u)) for u in units),
                "floor_households": [list(u) for u in units],  # written as JSON by the service
                "kind": kind,
                "geometry": fp,
            }
        )
    # a lighter search than `gridmap partition` runs: the demo needs valid, plausible grids, fast; small
    # units are split by floors where whole ones leave households out of the band, as `partition` does
    result = compound.plan(ycode, yard_ll, blds, budget_s=PLAN_BUDGET_S, rotations=3, drawn=1)
    grids = result.grids
    if result.error:  # no plan drew (rare): the courtyard is one grid holding every unit whole
        whole = [compound.Share(b.code, u.number, 1, u.floors, u.households) for b in blds for u in b.units]
        several = bool(shapely.get_num_geometries(yard_ll) > 1)
        grids = [
            {
                "code": f"{ycode}01",
                "households": result.households,
                "multipart": several,
                "geometry": yard_ll,
                "shares": whole,
            }
        ]
    for n, g in enumerate(grids, 1):
        out["micro"].append(
            {
                "code": g["code"],
                "name": f"{yname}第{n}网格",
                "parent_code": ycode,
                "households": g["households"],
                "multipart": g["multipart"],
                "geometry": g["geometry"],
            }
        )
        out["share"] += [
            {
                "building": s.building,
                "unit": s.unit,
                "floor_from": s.floor_from,
                "floor_to": s.floor_to,
                "micro_code": g["code"],
                "households": s.households,
            }
            for s in g["shares"]
        ]
    out["_yard_ll"] = yard_ll
    return result.households


def _special(community, cgeom, rng, sink) -> None:
    if rng.random() >= SPECIAL_SHARE:
        return
    room = cgeom.buffer(-80.0)
    if room.is_empty or room.area < 100.0:
        return
    x, y = sample_points(room, 1, rng)[0]
    kind = str(rng.choice(list(SPECIAL_KINDS)))
    rect = _rectangle(x, y, rng.uniform(60, 140), rng.uniform(50, 110), rng.uniform(0, math.pi))
    rect = rect.intersection(room)
    if rect.geom_type != "Polygon" or rect.area < 100.0:
        return
    stem = community["name"].removesuffix("社区").removesuffix("村")
    sink.append(
        {
            "code": f"{community['code']}S01",
            "name": stem + SPECIAL_KINDS[kind],
            "kind": kind,
            "parent_code": community["code"],
            "households": 0,
            "geometry": rect,
        }
    )


#: The demo's files in import order: (level, file name, CRS of the file).
FILES = (
    ("district", "districts.geojson", "gcj02"),
    ("street", "streets.geojson", "EPSG:4326"),
    ("community", "communities.geojson", "EPSG:4326"),
    ("courtyard", "courtyards.gpkg", "EPSG:4326"),
    ("micro", "micro.gpkg", "EPSG:4326"),
    ("special", "special.geojson", "EPSG:4326"),
    ("building", "buildings.gpkg", "EPSG:4326"),
    ("share", "shares.csv", None),
)


def build(
    scale_name: str, seed: int, sources: Sources, anchor: datetime, *, workers: int = 1, progress=None
) -> tuple[dict[str, list[dict]], dict[str, pd.DataFrame]]:
    """The demo city: rows per level (``FILES``' levels and ``person``, geometries in lon/lat) and the
    risk elements, visits and reports (:mod:`.risk`) dated relative to ``anchor``, by level
    (``risk_element``, ``risk_visit``, ``report``).  Districts are built in ``workers`` processes."""
    if scale_name not in SCALES:
        raise ValueError(f"unknown scale {scale_name!r}: choose one of {', '.join(SCALES)}")
    scale = SCALES[scale_name]
    plans = plan_districts(scale, seed, sources)
    jobs = [(p, seed) for p in sorted(plans, key=lambda p: -len(p["streets"]))]
    workers = min(len(jobs), workers)
    parts = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for res in pool.map(build_district, jobs):
                parts.append(res)
                progress and progress(res["district"][0]["name"])
    else:
        for job in jobs:
            parts.append(build_district(job))
            progress and progress(parts[-1]["district"][0]["name"])
    parts.sort(key=lambda r: r["district"][0]["code"])
    merged = {k: [row for p in parts for row in p[k]] for k in parts[0]}
    built = {level: len(merged[level]) for level in ("district", "street", "community", "courtyard")}
    planned = planned_counts(plans)
    if built != {level: planned[level] for level in built}:
        raise RuntimeError(f"the demo city came out with {built}, planned {planned}")  # a generator bug
    for level in ("street", "community", "special"):  # local plane -> stored lon/lat, densified
        rows = merged[level]
        metric = np.array([r["geometry"] for r in rows], dtype=object)
        lonlat = densify(geo.from_local(metric)) if len(rows) else metric
        for r, g in zip(rows, lonlat):
            r["geometry"] = g
    for level in ("street", "community", "courtyard", "micro", "special"):
        for r in merged[level]:
            r["population"] = int(round(r["households"] * 2.7))  # micro and special; the rest re-summed below
    _sum_population(merged)
    elements, visits, reports = demo_risk.generate(merged["micro"], merged["person"], seed, anchor)
    progress and progress("risk elements")
    return merged, {"risk_element": elements, "risk_visit": visits, "report": reports}


def _sum_population(merged: dict) -> None:
    """Each level's population is its children's sum, from the micro-grids up (as households are)."""
    for level, child in (
        ("courtyard", "micro"),
        ("community", "courtyard"),
        ("street", "community"),
        ("district", "street"),
    ):
        sums: dict[str, int] = {}
        for r in merged[child]:
            sums[r["parent_code"]] = sums.get(r["parent_code"], 0) + r["population"]
        for r in merged[level]:
            r["population"] = sums.get(r["code"], 0)


# --- courtyards for the partition benchmark ------------------------------------------


def bench_courtyards(n: int, seed: int, *, smallest: int = 30, largest: int = 2000, tower_share: float = 0.25):
    """``n`` stand-alone courtyards for benchmarking partitioners: households log-uniform in
    ``smallest..largest``; outlines a rectangle, an L, a U or an irregular Voronoi cell of about
    90 m² of land per household; buildings of 1-4 stairwell units of 6-30 households placed as in
    :func:`build`; a ``tower_share`` of the courtyards over 250 households also hold a
    200-household tower (one stairwell, or two of 100).  Yields dicts with ``code``, ``outline``
    (storage lon/lat), ``households`` and ``buildings`` (code, footprint lon/lat, units, floors)."""
    rng = np.random.default_rng([seed, 7])
    for i in range(n):
        total = int(round(math.exp(rng.uniform(math.log(smallest), math.log(largest)))))
        side = math.sqrt(total * 90.0 + 4000.0)
        shape = ("rectangle", "L", "U", "irregular")[i % 4]
        aspect = rng.uniform(1.0, 2.5)
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        if shape == "rectangle":
            outline = shapely.box(0, 0, w, h)
        elif shape == "L":
            w, h = w * 1.25, h * 1.25
            outline = shapely.difference(shapely.box(0, 0, w, h), shapely.box(w * 0.5, h * 0.5, w, h))
        elif shape == "U":
            w, h = w * 1.3, h * 1.3
            outline = shapely.difference(shapely.box(0, 0, w, h), shapely.box(w / 3, h * 0.4, 2 * w / 3, h))
        else:  # one cell of a Voronoi cut of a larger block: a few oblique sides
            block = shapely.box(-w, -h, 2 * w, 2 * h)
            cells = split(block, 9, rng, iterations=6)
            outline = max(cells, key=lambda c: -c.centroid.distance(shapely.Point(w / 2, h / 2)))
            outline = shapely.affinity.scale(outline, *(2 * [math.sqrt(w * h / outline.area)]))
        outline = shapely.affinity.rotate(outline, rng.uniform(0, 90))
        # place courtyards 3 km apart on a grid so none overlap
        x0, y0 = (i % 40) * 3000.0, (i // 40) * 3000.0
        outline = shapely.affinity.translate(outline, x0 - outline.centroid.x, y0 - outline.centroid.y)
        room = outline.buffer(-6.0)
        code = f"9{i:08d}"
        units_left = total
        blocks = []
        if total > 250 and rng.random() < tower_share:
            blocks.append(([200] if rng.random() < 0.5 else [100, 100], 30.0, 24.0, 34))
            units_left -= 200
        while units_left > 0:
            n_units = int(rng.integers(1, 5))
            sizes = [int(s) for s in rng.integers(6, 31, n_units)]
            kept = []
            for s in sizes:
                if units_left <= 0:
                    break
                kept.append(min(s, units_left))
                units_left -= kept[-1]
            blocks.append((kept, 15.0 * len(kept), 12.0, max(2, math.ceil(max(kept) / 2))))
        placed, buildings = [], []
        for b, (units, bw, bh, floors) in enumerate(blocks, 1):
            rect = _place(room, bw, bh, placed, rng)
            if rect is None:
                raise RuntimeError(f"no room for building {b} in bench courtyard {code}")
            placed.append(rect)
            buildings.append({"code": f"{code}B{b:03d}", "footprint": rect, "units": units, "floors": floors})
        outline_ll = geo.from_local([outline])[0]
        feet = geo.from_local(np.array([b["footprint"] for b in buildings], dtype=object))
        for b, f in zip(buildings, feet):
            b["footprint"] = f
        yield {"code": code, "shape": shape, "outline": outline_ll, "households": total, "buildings": buildings}
