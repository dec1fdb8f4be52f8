"""Reports from a file (``gridmap record reports``, ``scripts/geocode_reports.py --store``): what a
report pipeline needs to run the same file twice without harm.

Each report keeps where it came from (``source``, the channel; ``external_id``, its id there, column
``id`` by default) and its own time (``reported_at``, column ``reported_at``; a time without a zone
is office time).  A re-run inserts the new ids, updates the known ones whose content changed and
leaves the rest alone, and says how many of each.  Rows that cannot be stored (no text, an
unreadable time, a missing or repeated id) are rejected: written, with the reason in column
``gridmap_error``, to a CSV that the same command reads back once corrected.  Rows that cannot be
placed are stored without a grid (a report is never dropped) with the reason in ``attrs.intake_error``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lazy_loader
import numpy as np

from ..domain import dates
from ..errors import InputError
from ..store import db, points
from .assignment import locate_frame, point_wkb, summarise
from .files import check_output, write_csv
from .locator import Locator

pd = lazy_loader.load("pandas")

#: The column of a rejects file that says why; dropped when the file is read back.
REASON = "gridmap_error"


@dataclass(frozen=True)
class Columns:
    """Where a file keeps a report's parts (``id``/``time``: None = the default column when present)."""

    text: str = "text"
    id: str | None = None
    time: str | None = None
    source: str = "file"


def record_reports(
    locator: Locator,
    src,
    *,
    columns: Columns = Columns(),
    rejects=None,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
) -> dict:
    """Store the reports of ``src`` (one transaction) and write the rejected rows to ``rejects``
    (default: ``<src>.rejected.csv`` beside it, only when some are rejected).  Returns the summary:
    rows, placed/outside/bad, inserted/updated/unchanged, rejected, rejects (the file).
    Raises InputError for a bad file or a named column it lacks."""
    src = Path(src)
    out, source_crs, lon, lat = locate_frame(
        locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col
    )
    checked = check_reports(out, columns, src.name, db.zone_of(locator.engine), source_crs, lon, lat, address_col)
    summary = summarise(out[checked.keep], source_crs)
    with locator.engine.begin() as conn:
        summary.update(points.upsert_reports(conn, checked.frame))
    summary.update(rows=len(out), rejected=int((~checked.keep).sum()), source=columns.source, ids=checked.ids)
    summary["rejects"] = write_rejects(checked.rejected, src, rejects)
    return summary


@dataclass
class Checked:
    """Located rows checked as reports: the rows to store (``frame``, the columns of
    :data:`points.INTAKE`), which rows those are (``keep``), the others with their own columns and
    the reason (``rejected``), and whether the file has ids."""

    frame: pd.DataFrame
    keep: np.ndarray
    rejected: pd.DataFrame
    ids: bool


def check_reports(
    out: pd.DataFrame, columns: Columns, name: str, tz: str, source_crs, lon, lat, address_col, *, repeats=True
) -> Checked:
    """The reports of located rows ``out`` (:func:`.assignment.locate_frame`, or a chunk of a partition
    of ``--engine dask``); InputError when a named column is missing.  ``repeats``: reject an id seen
    before in ``out`` (a partition leaves that to the staging table, which sees them all)."""
    original = [c for c in out.attrs["input_columns"] if c != REASON]
    if columns.text not in out.columns:
        raise InputError(f"{name}: no column {columns.text!r} with the report's text (use --text-col)")
    reasons = np.full(len(out), None, dtype=object)
    ids = _ids(out, columns.id, reasons, name, repeats)
    when = _times(out, columns.time, reasons, name, tz)
    text = out[columns.text].astype("string").str.strip()
    for i in np.flatnonzero(text.isna().to_numpy() | (text == "").fillna(True).to_numpy()):
        reasons[i] = reasons[i] or f"missing {columns.text}"
    keep = np.array([r is None for r in reasons], dtype=bool)
    frame = _frame(
        out[keep].reset_index(drop=True),
        columns,
        None if ids is None else ids[keep],
        when[keep],
        source_crs,
        lon,
        lat,
        keep,
        address_col,
    )
    rejected = out.loc[~keep, original].copy()
    rejected[REASON] = reasons[~keep]
    return Checked(frame, keep, rejected, ids is not None)


def summary_line(s: dict) -> str:
    """One line saying what a report intake did."""
    ids = "" if s["ids"] else " (no id column: a re-run stores them again)"
    tail = f"; {s['rejected']} rejected -> {s['rejects']}" if s["rejected"] else ""
    return (
        f"recorded reports from {s['source']}: {s['rows']} rows: {s['placed']} placed, {s['outside']} outside, "
        f"{s['bad']} bad; {s['inserted']} new, {s['updated']} updated, {s['unchanged']} unchanged{ids}{tail}"
    )


def _ids(out, id_col, reasons, file_name, repeats=True) -> np.ndarray | None:
    """External ids as text (None when the file has no id column); missing and (``repeats``) repeated
    ids are reasons."""
    name = id_col or "id"
    if name not in out.columns:
        if id_col is not None:
            raise InputError(f"{file_name}: no column {id_col!r} with the reports' ids")
        return None
    ids = out[name].astype("string").str.strip().to_numpy(dtype=object, na_value=None)
    seen: dict[str, int] = {}
    for i, value in enumerate(ids):
        if value in (None, ""):
            reasons[i] = f"missing {name}"
        elif repeats and value in seen:
            reasons[i] = f"duplicate {name} {value} (also row {seen[value]})"
        else:
            seen[value] = i + 1
    return ids


def _times(out, time_col, reasons, file_name, tz: str) -> pd.Series:
    name = time_col or "reported_at"
    if name not in out.columns:
        if time_col is not None:
            raise InputError(f"{file_name}: no column {time_col!r} with the reports' times")
        return pd.Series(pd.NaT, index=range(len(out)), dtype="datetime64[ns, UTC]")
    parsed, bad = dates.parse_instants(out[name].tolist(), tz)
    for i in bad:
        reasons[i] = reasons[i] or f"{name} {out[name].iloc[i]!r} is not an ISO date/time such as 2026-01-31T08:00"
    return parsed


def _frame(out, columns: Columns, ids, when, source_crs, lon, lat, keep, address_col) -> pd.DataFrame:
    geom = point_wkb(out)
    errors = out["error"].astype(object).where(out["error"].notna(), None)
    coords = lon is not None and not address_col
    return pd.DataFrame(
        {
            "text": out[columns.text].astype("string").str.strip(),
            "address": out[address_col] if address_col else None,
            "source_lon": lon[keep] if coords else None,
            "source_lat": lat[keep] if coords else None,
            "source_crs": source_crs,
            "geom": geom,
            "micro_code": out["micro_code"].astype(object).where(out["micro_code"].notna(), None),
            "source": columns.source,
            "external_id": ids,
            "reported_at": when.reset_index(drop=True),
            "attrs": [json.dumps({"intake_error": e} if e else {}, ensure_ascii=False) for e in errors],
        }
    )


def write_rejects(rejected: pd.DataFrame, src: Path, rejects) -> str | None:
    """Write the rejected rows (their own columns plus the reason) as a UTF-8 CSV with a BOM; the
    file's path, or None when nothing was rejected and no file was asked for."""
    if rejects is None:
        if rejected.empty:
            return None
        rejects = Path(src).with_name(f"{Path(src).stem}.rejected.csv")
    rejects = check_output(Path(rejects), (".csv",))
    write_csv(rejected, rejects)
    return str(rejects)
