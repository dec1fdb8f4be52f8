"""The demo city's roster: who serves each grid, and the party organisations over them.

Pure and seeded.  Built on the city's own person rows (a worker per micro-grid, a leader per
courtyard, a secretary per community, whose names the risk visits already use), it adds what a
street office's export holds: a second worker on some micro-grids and one worker serving two
neighbouring ones, a worker for each special grid, a lead per building and per unit, volunteers
and party members, a party committee per street, a branch per community and a group per
courtyard.  A few gaps are left on purpose, for ``gridmap people coverage`` to find: micro-grids
with no worker, a community with no party organisation.
"""

from __future__ import annotations

import numpy as np

SECOND_WORKER = 0.08  # share of micro-grids with two workers
SHARED_WORKER = 0.10  # share of micro-grids whose worker also serves the next one
NO_WORKER = 0.01  # share of micro-grids left without a worker (at least one)
WITH_ID_CARD = 0.5  # share of workers and leaders whose export carries an ID-card number
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_card(region: str, rng) -> str:
    """A well-formed 18-character ID number of ``region`` (6 digits) with a random birth date."""
    born = np.datetime64("1960-01-01") + np.timedelta64(int(rng.integers(0, 365 * 40)), "D")
    body = region + str(born).replace("-", "") + f"{int(rng.integers(0, 1000)):03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def _post(role, name, phone, grid=None, building=None, unit=None, org=None, id_number=None) -> dict:
    return {
        "grid": grid,
        "building": building,
        "unit": unit,
        "role": role,
        "name": name,
        "phone": phone,
        "id_card": id_number,
        "org": org,
    }


def build(city: dict, names, seed: int) -> tuple[list[dict], list[dict]]:
    """(roster rows, organisation rows) in the import's columns for a generated ``city`` (its
    ``street``, ``community``, ``courtyard``, ``micro``, ``building`` and ``person`` rows);
    ``names`` makes new names and phones (``person()``, ``phone()``)."""
    rng = np.random.default_rng([seed, 13])
    roster, orgs = [], []
    given = {(p["grid_code"], p["role"]): p for p in city["person"]}

    def ident(code):
        return id_card(code[:6], rng) if rng.random() < WITH_ID_CARD else None

    micro_by_yard: dict[str, list[str]] = {}
    for m in city["micro"]:
        micro_by_yard.setdefault(m["parent_code"], []).append(m["code"])
    empty = (
        set(
            rng.choice([m["code"] for m in city["micro"]], max(1, round(NO_WORKER * len(city["micro"]))), replace=False)
        )
        if city["micro"]
        else set()
    )
    for codes in micro_by_yard.values():
        previous = None
        for code in codes:
            if code in empty:
                previous = None
                continue
            if previous is not None and rng.random() < SHARED_WORKER:
                worker = previous  # one worker over two neighbouring micro-grids
            else:
                p = given.get((code, "grid_worker")) or {"name": names.person(), "phone": names.phone()}
                worker = (p["name"], p["phone"], ident(code))
            roster.append(_post("grid_worker", worker[0], worker[1], grid=code, id_number=worker[2]))
            if rng.random() < SECOND_WORKER:
                roster.append(_post("grid_worker", names.person(), names.phone(), grid=code, id_number=ident(code)))
            previous = worker
    for g in city.get("special", []):  # a school's or market's own grid worker
        roster.append(_post("grid_worker", names.person(), names.phone(), grid=g["code"], id_number=ident(g["code"])))
    skip_org = city["community"][int(rng.integers(len(city["community"])))]["code"] if city["community"] else None
    for s in city["street"]:
        orgs.append(
            {
                "code": f"P{s['code']}",
                "name": f"{s['name']}党工委",
                "kind": "committee",
                "parent": None,
                "grids": s["code"],
            }
        )
    street_of = {c["code"]: c["parent_code"] for c in city["community"]}
    for c in city["community"]:
        lead = given.get((c["code"], "secretary")) or {"name": names.person(), "phone": names.phone()}
        roster.append(_post("grid_leader", lead["name"], lead["phone"], grid=c["code"], id_number=ident(c["code"])))
        if c["code"] == skip_org:
            continue
        org = f"P{c['code']}"
        orgs.append(
            {
                "code": org,
                "name": f"{c['name']}党支部",
                "kind": "branch",
                "parent": f"P{street_of[c['code']]}",
                "grids": c["code"],
            }
        )
        roster.append(_post("party_secretary", lead["name"], lead["phone"], grid=c["code"], org=org))
    community_of = {y["code"]: y["parent_code"] for y in city["courtyard"]}
    for y in city["courtyard"]:
        lead = given.get((y["code"], "grid_leader")) or {"name": names.person(), "phone": names.phone()}
        roster.append(_post("grid_leader", lead["name"], lead["phone"], grid=y["code"], id_number=ident(y["code"])))
        roster.append(_post("volunteer", names.person(), names.phone(), grid=y["code"]))
        if community_of[y["code"]] == skip_org:
            continue
        org = f"P{y['code']}"
        cover = ";".join(micro_by_yard.get(y["code"], [y["code"]]))
        orgs.append(
            {
                "code": org,
                "name": f"{y['name']}党小组",
                "kind": "group",
                "parent": f"P{community_of[y['code']]}",
                "grids": cover,
            }
        )
        for _ in range(int(rng.integers(2, 5))):
            roster.append(_post("party_member", names.person(), names.phone(), grid=y["code"], org=org))
    for b in city["building"]:
        roster.append(_post("building_lead", names.person(), names.phone(), building=b["code"]))
        units = str(b.get("units") or "").split(";")
        if len(units) > 1:  # a one-stairwell building's lead is its unit lead too
            for n in range(1, len(units) + 1):
                roster.append(_post("unit_lead", names.person(), names.phone(), building=b["code"], unit=str(n)))
    return roster, orgs
