"""Coverage and load of the grid people: which grids have no one, and how much each worker carries.

Pure, on pandas frames (the store fetches them).  Two rules from the street offices: every
micro-grid (and special grid) has at least one grid worker, and every community has a party
organisation covering it or a grid inside it.  A worker's *load* is the sum over the grids they
serve of households, risk elements, overdue visits and open cases; where two workers share a grid
each carries half of its households in ``households_share``, which is what ``max_households`` is
compared with (140 = two full micro-grids of 70 households).
"""

from __future__ import annotations

import pandas as pd

from .levels import LEVELS

WORKER = "grid_worker"
MAX_HOUSEHOLDS = 140
LOAD_COLUMNS = ("households", "risk_elements", "overdue_visits", "open_cases")


def ancestors(grids: pd.DataFrame, level: str) -> pd.Series:
    """For every grid (``code``, ``parent_code``, ``level``), the code of its ancestor of ``level``
    (itself when it is of that level; missing above it)."""
    parent = grids.set_index("code")["parent_code"]
    lvl = grids.set_index("code")["level"]
    cur = pd.Series(grids["code"].to_numpy(), index=grids["code"].to_numpy())
    out = cur.where(lvl.reindex(cur.index).to_numpy() == level)
    for _ in range(len(LEVELS)):
        cur = cur.map(parent)
        hit = out.isna() & (cur.map(lvl) == level)
        out = out.where(~hit, cur)
    return out


def gaps(grids: pd.DataFrame, posts: pd.DataFrame, org_grids: pd.DataFrame) -> pd.DataFrame:
    """Grids missing a post: micro/special grids with no grid worker, communities with no party
    organisation.  Columns ``code``, ``name``, ``level``, ``community``, ``problem``; sorted by code."""
    community = ancestors(grids, "community")
    small = grids[grids["level"].isin(("micro", "special"))]
    staffed = set(posts.loc[posts["role"] == WORKER, "grid_code"])
    no_worker = small[~small["code"].isin(staffed)].assign(problem="no grid worker (网格员)")
    covered = set(community.reindex(org_grids["grid_code"].unique()).dropna())
    comms = grids[grids["level"] == "community"]
    no_org = comms[~comms["code"].isin(covered)].assign(problem="no party organisation (党组织)")
    out = pd.concat([no_worker, no_org], ignore_index=True)
    out["community"] = community.reindex(out["code"]).to_numpy()
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
