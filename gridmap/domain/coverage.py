"""Coverage and load of the grid people: which grids have no one, and how much each worker carries.

Pure, on pandas frames (the store fetches them).  Two rules from the street offices: every
micro-grid (and special grid) has at least one grid worker, and every community has a party
organisation covering it or a grid inside it.  A worker's *load* is the sum over the grids they
serve of households, risk elements, overdue visits and open cases; where two workers share a grid
each carries half of its households in ``households_share``, which is what ``max_households`` is
compared with (140 = two full micro-grids of 70 households).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .levels import LEVELS

WORKER = "grid_worker"
MAX_HOUSEHOLDS = 140
LOAD_COLUMNS = ("households", "risk_elements", "overdue_visits", "open_cases")


def ancestors(grids: pd.DataFrame, level: str) -> dict[str, str]:
    """For every grid (``code``, ``parent_code``, ``level``), the code of its ancestor of ``level``
    (itself when it is of that level); grids above that level are left out.

    Dictionaries rather than pandas: a walk up at most five parents per grid is a few hundred
    thousand dict look-ups for a city, where pandas' string ``map``/``isin`` cost seconds.
    """
    codes = grids["code"].tolist()
    parent = dict(zip(codes, grids["parent_code"].tolist(), strict=True))
    lvl = dict(zip(codes, grids["level"].tolist(), strict=True))
    out = {}
    for code in codes:
        cur = code
        for _ in range(len(LEVELS) + 1):
            if cur is None or lvl.get(cur) == level:
                break
            cur = parent.get(cur)
        if cur is not None and lvl.get(cur) == level:
            out[code] = cur
    return out


def _absent(values, present: set) -> np.ndarray:
    """Mask of the ``values`` not in ``present``."""
    return np.fromiter((v not in present for v in values), dtype=bool, count=len(values))


def gaps(grids: pd.DataFrame, posts: pd.DataFrame, org_grids: pd.DataFrame) -> pd.DataFrame:
    """Grids missing a post: micro/special grids with no grid worker, communities with no party
    organisation.  Columns ``code``, ``name``, ``level``, ``community``, ``problem``; sorted by code."""
    community = ancestors(grids, "community")
    levels = grids["level"].to_numpy(dtype=object)
    codes = grids["code"].to_numpy(dtype=object)
    staffed = set(posts.loc[posts["role"] == WORKER, "grid_code"].tolist())
    covered = {community[g] for g in set(org_grids["grid_code"].tolist()) if g in community}
    small = (levels == "micro") | (levels == "special")
    no_worker = grids[small & _absent(codes, staffed)].assign(problem="no grid worker (网格员)")
    comms = levels == "community"
    no_org = grids[comms & _absent(codes, covered)].assign(problem="no party organisation (党组织)")
    out = pd.concat([no_worker, no_org], ignore_index=True)
    out["community"] = [community.get(c) for c in out["code"].tolist()]
    return out[["code", "name", "level", "community", "problem"]].sort_values("code", ignore_index=True)


def load(
    grids: pd.DataFrame, posts: pd.DataFrame, counts: pd.DataFrame | None = None, max_households: int = MAX_HOUSEHOLDS
) -> pd.DataFrame:
    """Each grid worker's load: ``person_id``, ``name``, ``grids``, ``households``, ``risk_elements``,
    ``overdue_visits``, ``open_cases``, ``households_share``, ``overloaded``; heaviest first.

    ``counts`` has ``code`` and any of the load columns per grid (missing ones count 0).
    """
    work = posts.loc[posts["role"] == WORKER, ["person_id", "name", "grid_code"]].drop_duplicates()
    per_grid = grids[["code", "households"]].rename(columns={"code": "grid_code"})
    if counts is not None and len(counts):
        per_grid = per_grid.merge(counts.rename(columns={"code": "grid_code"}), on="grid_code", how="left")
    for col in LOAD_COLUMNS:
        per_grid[col] = per_grid[col].fillna(0).astype("int64") if col in per_grid else 0
    sharing = work.groupby("grid_code")["person_id"].nunique().rename("sharing")
    work = work.merge(per_grid, on="grid_code", how="inner").merge(sharing, on="grid_code")
    work["households_share"] = work["households"] / work["sharing"]
    out = work.groupby(["person_id", "name"], as_index=False).agg(
        grids=("grid_code", "nunique"),
        **{c: (c, "sum") for c in LOAD_COLUMNS},
        households_share=("households_share", "sum"),
    )
    out["households_share"] = out["households_share"].round(1)
    out["overloaded"] = out["households_share"] > max_households
    return out.sort_values(["households_share", "open_cases"], ascending=False, ignore_index=True)


def summary(grids: pd.DataFrame, gap_frame: pd.DataFrame, load_frame: pd.DataFrame) -> dict:
    """Counts for a report line: grids needing a worker, staffed, communities without an org, overloaded."""
    small = int(grids["level"].isin(("micro", "special")).sum())
    no_worker = int((gap_frame["problem"].str.startswith("no grid worker")).sum())
    return {
        "grids_needing_worker": small,
        "grids_without_worker": no_worker,
        "communities": int((grids["level"] == "community").sum()),
        "communities_without_org": int(len(gap_frame) - no_worker),
        "workers": int(len(load_frame)),
        "overloaded": int(load_frame["overloaded"].sum()),
    }
