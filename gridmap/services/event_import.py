"""Bulk intake: a hotline export (CSV, GeoJSON, GeoPackage, Parquet) filed as cases, all rows or
none.  Every row is checked (matter, location, time, duplicate ids) and located on the grid with
the lookup index, routed with the same rule as one case (vectorised: a department per (kind,
grid) pair, grid workers per grid), logged (reported → filed → dispatched) and written with COPY
in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from ..domain import values
from ..domain.events.catalogue import GRID_KIND, LEVELS_UP
from ..domain.events.loop import LOOP, Context
from ..store import cases, departments
from .assignment import locate_frame
from .events import SYSTEM, Centre, clock_columns
from .ingest import Problems

CHUNK = 100_000
OPTIONAL = ("text", "external_id", "reported_at", "name", "phone", "channel")


def _reported(frame: pd.DataFrame, tz: str, problems: Problems) -> pd.Series:
    """``reported_at`` as aware times (naive ones are taken in ``tz``); a problem per unreadable value."""
    raw = frame["reported_at"] if "reported_at" in frame.columns else pd.Series([""] * len(frame))
    raw = raw.astype("string").fillna("").str.strip()
    parsed = pd.to_datetime(raw.where(raw != ""), errors="coerce", format="mixed", utc=False)
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    problems.add_mask(
        (raw != "").to_numpy() & parsed.isna().to_numpy(),
        None,
        lambda i: f"reported_at {raw.iat[i]!r} is not a time (use ISO 8601, e.g. 2026-05-01T08:30+08:00)",
    )
    return parsed


#: The longest value of each optional text column (domain/values.py: free text, then names).
LENGTHS = {"text": values.TEXT_MAX, "name": values.NAME_MAX, "phone": values.NAME_MAX, "external_id": values.NAME_MAX}


def _check_lengths(frame: pd.DataFrame, problems: Problems) -> None:
    """A problem per row whose text, name, phone or external_id is longer than its limit."""
    for column, limit in LENGTHS.items():
        if column not in frame.columns:
            continue
        lengths = frame[column].astype("string").fillna("").str.len().to_numpy()
        problems.add_mask(
            lengths > limit,
            None,
            lambda i, column=column, limit=limit, lengths=lengths: (
                f"{column} is {lengths[i]} characters long; at most {limit} are allowed"
            ),
        )


def _route(centre: Centre, conn, frame: pd.DataFrame) -> pd.DataFrame:
    """Handling level, kind, grid, department, grid-worker assignee and state of every row."""
    cat = centre.catalogue
    matter = frame["matter"]
    m_level = matter.map({c: m.level for c, m in cat.matters.items()})
    inside = frame["status"].eq("placed").to_numpy()
    grid = np.full(len(frame), None, dtype=object)
    for lv in LEVELS_UP:
        pick = (m_level == lv).to_numpy() & inside
        grid[pick] = frame[f"{lv}_code"].to_numpy(dtype=object)[pick]
    kind = matter.map({c: m.handlers[m.level] for c, m in cat.matters.items()}).to_numpy(dtype=object)
    codes = {g for g in grid if g is not None}
    depts, workers = departments.for_grids(conn, codes), departments.workers_for(conn, codes)
    dept = np.array([depts.get((k, g)) for k, g in zip(kind, grid, strict=True)], dtype=object)
    has_workers = np.array([g in workers for g in grid], dtype=bool)
    auto = matter.map({c: m.auto for c, m in cat.matters.items()}).to_numpy(dtype=bool)
    to_workers = auto & inside & (kind == GRID_KIND) & has_workers
    to_dept = auto & inside & (kind != GRID_KIND) & np.array([d is not None for d in dept], dtype=bool)
    assigned = to_workers | to_dept
    queue = (
        frame["street_code"].astype(object).where(frame["street_code"].notna(), frame["district_code"].astype(object))
    )
    why = np.where(
        to_dept,
        "automatic: department " + pd.Series(dept).astype(str),
        np.where(
            to_workers,
            "automatic: grid workers of " + pd.Series(grid).astype(str),
            np.where(
                ~inside, "outside every grid: the city dispatchers' queue", "dispatchers' queue of " + queue.astype(str)
            ),
        ),
    )
    return pd.DataFrame(
        {
            "handling_level": np.where(inside, m_level, "city"),
            "department_code": np.where(to_dept, dept, None),
            "assignee": np.where(to_workers, "grid:" + pd.Series(grid).astype(str), None),
            "state": np.where(assigned, "dispatched", "filed"),
            "why": why,
        }
    )


def import_file(
    centre: Centre,
    src: Path,
    *,
    actor: str,
    crs=None,
    lon_col=None,
    lat_col=None,
    address_col=None,
    matter_col: str = "matter",
    channel: str = "hotline",
    progress=None,
) -> dict:
    """File every row of ``src`` as a case; ImportRejected listing every bad row, nothing written."""
    src = Path(src)
    frame, _crs, src_lon, src_lat = locate_frame(
        centre.locator, src, crs=crs, lon_col=lon_col, lat_col=lat_col, address_col=address_col, progress=progress
    )
    problems = Problems(src)
    if matter_col not in frame.columns:
        problems.add(1, f"no column {matter_col!r} naming the matter (columns: {', '.join(map(str, frame.columns))})")
        problems.raise_if_any()
    frame["matter"] = frame[matter_col].astype("string").fillna("").str.strip()
    problems.add_mask(
        ~frame["matter"].isin(list(centre.catalogue.matters)).to_numpy(),
        None,
        lambda i: f"unknown matter {frame['matter'].iat[i]!r}",
    )
    problems.add_mask(frame["status"].eq("bad").to_numpy(), None, lambda i: frame["error"].iat[i])
    reported = _reported(frame, centre.tz, problems)
    _check_lengths(frame, problems)
    ext = frame["external_id"].astype("string").replace("", pd.NA) if "external_id" in frame.columns else None
    if ext is not None:
        problems.add_mask(
            ext.duplicated(keep="first").fillna(False).to_numpy() & ext.notna().to_numpy(),
            None,
            lambda i: f"external_id {ext.iat[i]!r} appears twice in the file",
        )
    now = centre.now()
    with centre.engine.begin() as conn:
        if ext is not None and ext.notna().any():
            known = cases.known_external_ids(conn, channel, ext.dropna().unique().tolist())
            problems.add_mask(
                ext.isin(known).fillna(False).to_numpy(),
                None,
                lambda i: f"external_id {ext.iat[i]!r} was already received from {channel}",
            )
        problems.raise_if_any()
        written = _write(conn, centre, frame, reported, ext, src_lon, src_lat, channel, actor, now, progress)
    return written


def _json_text(why: pd.Series) -> pd.Series:
    """``{"why": …}`` as JSON text, vectorised (a million json.dumps calls would cost seconds)."""
    escaped = why.astype(str).str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False)
    return '{"why": "' + escaped + '"}'


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _write(conn, centre: Centre, frame, reported, ext, src_lon, src_lat, channel, actor, now, progress) -> dict:
    """COPY the cases, then their log (written by PostgreSQL from the cases just copied) and contacts; counts."""
    # both paths are checked against the loop's table once, not per row
    ctx = Context(roles=frozenset({SYSTEM}), matter_known=True, assignee="x")
    filed, dispatched = LOOP.fire("reported", "file", ctx), LOOP.fire("filed", "dispatch", ctx)
    routed = _route(centre, conn, frame)
    inside = frame["status"].eq("placed").to_numpy()
    full = dict.fromkeys(LEVELS_UP, "x")
    # a clock per (matter, inside), as text: COPY then writes strings, not a million datetimes
    clocks = {
        (c, ins): {
            k: _iso(v) for k, v in clock_columns(centre, m, now, m.level if ins else None, full if ins else {}).items()
        }
        for c, m in centre.catalogue.matters.items()
        for ins in (True, False)
    }
    keys = list(zip(frame["matter"], inside, strict=True))
    ids = np.array(cases.allocate_ids(conn, len(frame)), dtype="int64")
    points = shapely.points(frame["lon_wgs84"].to_numpy(float), frame["lat_wgs84"].to_numpy(float))
    geom = pd.Series(shapely.to_wkb(shapely.set_srid(points, 4326), hex=True, include_srid=True), dtype=object)
    geom[np.isnan(frame["lon_wgs84"].to_numpy(float))] = None
    specials = frame["special_codes"].astype(object)
    stamp = now.isoformat()
    out = pd.DataFrame(
        {
            "id": ids,
            "received_at": stamp,
            "reported_at": reported.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%z").fillna(stamp).to_numpy(),
            "source": channel,
            "external_id": None if ext is None else ext.astype(object).where(ext.notna(), None).to_numpy(),
            "text": frame["text"].astype(str).to_numpy() if "text" in frame.columns else "",
            "source_lon": src_lon,
            "source_lat": src_lat,
            "geom": geom.to_numpy(),
            **{f"{lv}_code": frame[f"{lv}_code"].astype(object).to_numpy() for lv in LEVELS_UP},
            "special_code": specials.where(specials.notna(), None).str.split(";").str[0].to_numpy(),
            "outside": ~inside,
            "state": routed["state"].to_numpy(),
            "matter_code": frame["matter"].to_numpy(),
            "handling_level": routed["handling_level"].to_numpy(),
            "department_code": routed["department_code"].to_numpy(),
            "assignee": routed["assignee"].to_numpy(),
            "route": _json_text(routed["why"]).to_numpy(),
            "due_at": [clocks[k]["due_at"] for k in keys],
            "warn_at": [clocks[k]["warn_at"] for k in keys],
            "tick_at": [clocks[k]["tick_at"] for k in keys],
        }
    )
    for start in range(0, len(out), CHUNK):
        cases.copy_cases(conn, out.iloc[start : start + CHUNK])
        if progress:
            progress(min(CHUNK, len(out) - start))
    detail = {"import": frame.attrs.get("name", "file")}
    steps = [
        (None, "report", "reported", actor, "ingest", None),
        (filed.state, filed.action, filed.target, SYSTEM, SYSTEM, None),
        (dispatched.state, dispatched.action, dispatched.target, SYSTEM, SYSTEM, "dispatched"),
    ]
    logged = (
        sum(cases.log_copied(conn, int(ids.min()), int(ids.max()), channel, now, *step, detail) for step in steps)
        if len(ids)
        else 0
    )
    contacts = 0
    if {"name", "phone"} & set(frame.columns):
        people = pd.DataFrame(
            {
                "report_id": ids,
                "kind": "reporter",
                "channel": channel,
                "name": frame.get("name", pd.Series([None] * len(frame))).replace("", None).to_numpy(),
                "phone": frame.get("phone", pd.Series([None] * len(frame))).replace("", None).to_numpy(),
            }
        )
        people = people[people["name"].notna() | people["phone"].notna()]
        contacts = cases.copy_contacts(conn, people)
    return {
        "cases": len(out),
        "dispatched": int(out["state"].eq("dispatched").sum()),
        "queued": int(out["state"].eq("filed").sum()),
        "outside": int((~inside).sum()),
        "log": logged,
        "contacts": contacts,
        "first_id": int(ids[0]) if len(ids) else None,
    }
