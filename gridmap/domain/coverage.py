"""Coverage and load of the grid people: which grids have no one, and how much each worker carries.

The rules, from the street offices (PostGIS counts them: :mod:`gridmap.store.people`, two
statements, so a city of 40,000 micro-grids answers in well under a second).  Every micro-grid (and
special grid) has at least one grid worker, and every community has a party organisation covering
it or a grid inside it.  A worker's *load* is the sum over the current grids they serve of
households, risk elements, overdue visits and open cases; where two workers share a grid each
carries half of its households in ``households_share`` (rounded to 0.1), which is what
``max_households`` is compared with (140 = two full micro-grids of 70 households).
"""

from __future__ import annotations

WORKER = "grid_worker"
MAX_HOUSEHOLDS = 140
NO_WORKER = "no grid worker (网格员)"
NO_ORG = "no party organisation (党组织)"


def summary(gaps: list[dict], totals: dict) -> dict:
    """Counts for a report line: grids needing a worker and those without, communities and those
    without an organisation, workers and those overloaded (``totals`` from the store)."""
    no_worker = sum(g["problem"] == NO_WORKER for g in gaps)
    return {
        "grids_needing_worker": int(totals["needing"]),
        "grids_without_worker": no_worker,
        "communities": int(totals["communities"]),
        "communities_without_org": len(gaps) - no_worker,
        "workers": int(totals["workers"]),
        "overloaded": int(totals["overloaded"]),
    }
