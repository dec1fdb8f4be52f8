"""Assessment (考核): per grid, level or department — cases, on-time rate, median handling time,
escalations, reopen rate and mean satisfaction.  Pure pandas over one row per case; the store
computes the same figures in SQL for large tables, and the tests hold the two to each other.

Definitions (one place): a case is *closed* when it has ``closed_at``; it was *on time* when it
closed no later than its ``due_at`` (the deadline in force at closing); handling time runs from
``filed_at`` to ``closed_at`` in hours; the reopen rate is reopened cases over closed ones; the
satisfaction is the mean of the 1–5 ratings given.  A rate over no cases is None, not 0.
"""

from __future__ import annotations

import lazy_loader

pd = lazy_loader.load("pandas")

COLUMNS = ("cases", "closed", "on_time_rate", "median_hours", "escalations", "reopen_rate", "satisfaction")


def assess(cases: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """One row per group of ``by`` with :data:`COLUMNS`.

    ``cases`` needs ``filed_at``, ``closed_at``, ``due_at`` (datetimes, NaT allowed),
    ``escalations`` (int), ``reopened`` (bool) and ``rating`` (float, NaN when not rated).
    """
    frame = cases.copy()
    closed = frame["closed_at"].notna()
    frame["_closed"] = closed
    frame["_on_time"] = (closed & (frame["closed_at"] <= frame["due_at"])).where(closed)
    frame["_hours"] = ((frame["closed_at"] - frame["filed_at"]).dt.total_seconds() / 3600.0).where(closed)
    frame["_reopened"] = frame["reopened"].astype(bool).where(closed)
    grouped = frame.groupby(by, sort=True, dropna=False)
    out = pd.DataFrame(
        {
            "cases": grouped.size(),
            "closed": grouped["_closed"].sum(),
            "on_time_rate": grouped["_on_time"].mean(),
            "median_hours": grouped["_hours"].median(),
            "escalations": grouped["escalations"].sum(),
            "reopen_rate": grouped["_reopened"].mean(),
            "satisfaction": grouped["rating"].mean(),
        }
    )
    return (
        out.astype({"cases": "int64", "closed": "int64", "escalations": "int64"})
        .astype(object)
        .where(out.notna(), None)
    )
