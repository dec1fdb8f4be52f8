"""Bulk intake: a hotline export (CSV, GeoJSON, GeoPackage, Parquet) filed as cases, all rows or
none.  Every row is checked (matter, location, time, duplicate ids) and located on the grid with
the lookup index, routed with the same rule as one case (vectorised: a department per (kind,
grid) pair, grid workers per grid), logged (reported → filed → dispatched) and written with COPY
in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import lazy_loader
import numpy as np
import shapely

from ..domain import values
from ..domain.events.catalogue import GRID_KIND, LEVELS_UP
from ..domain.events.loop import LOOP, Context
from ..store import cases, departments
from .assignment import locate_frame
from .events import SYSTEM, Centre, clock_columns
from .ingest import Problems

pd = lazy_loader.load("pandas")

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


def _route(cat, conn, frame: pd.DataFrame) -> pd.DataFrame:
    """Handling level, kind, grid, department, grid-worker assignee and state of every row
    (``cat``: the matter catalogue)."""
    matter = frame["matter"]
    m_level = matter.map({c: m.level for c, m in cat.matters.items()})
    inside = frame["status"].eq("placed").to_numpy()
    grid = np.full(len(frame), None, dtype=object)
    for lv in LEVELS_UP:
        pick = (m_level == lv).to_numpy() & inside
        grid[pick] = frame[f"{lv}_code"].to_numpy(dtype=object)[pick]
    kind = matter.map({c: m.handlers[m.level] for c, m in cat.matters.items()}).to_numpy(dtype=object)
    # per distinct grid and kind, then taken per row (a dictionary lookup per row cost seconds a million)
    g_at, grids = pd.factorize(grid)  # -1: no grid
    k_at, kinds = pd.factorize(kind)
    depts, workers = departments.for_grids(conn, grids), departments.workers_for(conn, grids)
    table = np.full((len(kinds) + 1, len(grids) + 1), None, dtype=object)  # the last row, column: none
    k_pos, g_pos = {k: i for i, k in enumerate(kinds)}, {g: i for i, g in enumerate(grids)}
    for (k, g), code in depts.items():
        if k in k_pos and g in g_pos:
            table[k_pos[k], g_pos[g]] = code
    dept = table[k_at, g_at]
    has_workers = np.append(np.array([g in workers for g in grids], dtype=bool), False)[g_at]
    auto = matter.map({c: m.auto for c, m in cat.matters.items()}).to_numpy(dtype=bool)
    to_workers = auto & inside & (kind == GRID_KIND) & has_workers
    to_dept = auto & inside & (kind != GRID_KIND) & pd.notna(dept)
    assigned = to_workers | to_dept
    street, district = (frame[f"{lv}_code"].to_numpy(dtype=object) for lv in ("street", "district"))
    queue = np.where(pd.notna(street), street, district)
    # why, as text per distinct (reason, code), then taken per row (a string per row cost seconds)
    reason = np.select([to_dept, to_workers, ~inside], [0, 1, 2], 3)
    code = np.select([to_dept, to_workers], [dept, grid], queue)
    c_at, codes = pd.factorize(code)
    keys, at = np.unique(reason * (len(codes) + 1) + (c_at + 1), return_inverse=True)
    named = [*codes, None]  # c_at -1 (no code) names the last
    texts = [_WHY[k // (len(codes) + 1)].format(named[k % (len(codes) + 1) - 1]) for k in keys]
    grid_assignee = np.append(np.array(["grid:" + g for g in grids], dtype=object), None)[g_at]
    return pd.DataFrame(
        {
            "handling_level": np.where(inside, m_level, "city"),
            "department_code": np.where(to_dept, dept, None),
            "assignee": np.where(to_workers, grid_assignee, None),
            "state": np.where(assigned, "dispatched", "filed"),
            "why": np.array(texts, dtype=object)[at.reshape(-1)],
        },
        dtype=object,
    )


#: Why a case went where it went, by :func:`_route`'s reason (0 department, 1 grid workers,
#: 2 outside every grid, 3 the street's or district's queue), with the code in question.
_WHY = (
    "automatic: department {}",
    "automatic: grid workers of {}",
    "outside every grid: the city dispatchers' queue",
    "dispatchers' queue of {}",
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
    check_matter_column(frame.columns, matter_col, problems)
    reported, ext = check_rows(centre.catalogue, centre.tz, frame, matter_col, problems)
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
        routed, clock = _route(centre.catalogue, conn, frame), clocks(centre, now)

        def built(a, b):
            part = None if ext is None else ext.iloc[a:b]
            lon, lat = src_lon[a:b], src_lat[a:b]
            rows = frame.iloc[a:b], routed.iloc[a:b], reported.iloc[a:b], part, lon, lat
            return built_rows(*rows, channel, clock, now)

        written = _write(conn, frame, routed, built, channel, actor, now, src.name, progress)
    return written


def check_matter_column(columns, matter_col: str, problems: Problems) -> None:
    """ImportRejected when the file has no matter column (a problem of the file, not of a row)."""
    if matter_col not in columns:
        problems.add(1, f"no column {matter_col!r} naming the matter (columns: {', '.join(map(str, columns))})")
        problems.raise_if_any()


def check_rows(cat, tz: str, frame: pd.DataFrame, matter_col: str, problems: Problems):
    """The checks of each row on its own (matter known, located or placeable, time readable, texts
    not too long), added to ``problems``; sets ``frame["matter"]``; returns (reported_at, external
    ids or None).  Repeated ids are a question of the whole file: the caller's."""
    frame["matter"] = frame[matter_col].astype("string").fillna("").str.strip()
    problems.add_mask(
        ~frame["matter"].isin(list(cat.matters)).to_numpy(),
        None,
        lambda i: f"unknown matter {frame['matter'].iat[i]!r}",
    )
    problems.add_mask(frame["status"].eq("bad").to_numpy(), None, lambda i: frame["error"].iat[i])
    reported = _reported(frame, tz, problems)
    _check_lengths(frame, problems)
    ext = frame["external_id"].astype("string").replace("", pd.NA) if "external_id" in frame.columns else None
    return reported, ext


def clocks(centre: Centre, now) -> dict:
    """Deadline, warning and tick per (matter, inside a grid), as ISO text: the same for every row of
    an import (COPY then writes strings, not a million datetimes)."""
    full = dict.fromkeys(LEVELS_UP, "x")
    return {
        (c, ins): {
            k: _iso(v) for k, v in clock_columns(centre, m, now, m.level if ins else None, full if ins else {}).items()
        }
        for c, m in centre.catalogue.matters.items()
        for ins in (True, False)
    }


def _json_text(why: pd.Series) -> pd.Series:
    """``{"why": …}`` as JSON text, vectorised (a million json.dumps calls would cost seconds)."""
    escaped = why.astype(str).str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False)
    return '{"why": "' + escaped + '"}'


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def case_rows(cat, conn, frame, reported, ext, src_lon, src_lat, channel, clock, now) -> pd.DataFrame:
    """The ``report`` rows (no ids yet) of checked rows, routed, with the reporter's ``contact_name``
    and ``contact_phone``: one partition of ``--engine dask`` (the single-process import routes the
    whole file once and builds its slices with :func:`built_rows`)."""
    return built_rows(frame, _route(cat, conn, frame), reported, ext, src_lon, src_lat, channel, clock, now)


def built_rows(frame, routed, reported, ext, src_lon, src_lat, channel, clock, now) -> pd.DataFrame:
    """:func:`case_rows` of rows already routed (``routed``: :func:`_route` of the same rows, same
    order): no database read, so a slice of a file can be built while PostgreSQL writes the slice before."""
    inside = frame["status"].eq("placed").to_numpy()
    points = shapely.points(frame["lon_wgs84"].to_numpy(float), frame["lat_wgs84"].to_numpy(float))
    geom = pd.Series(shapely.to_wkb(shapely.set_srid(points, 4326), hex=True, include_srid=True), dtype=object)
    geom[np.isnan(frame["lon_wgs84"].to_numpy(float))] = None
    specials = frame["special_codes"].astype(object)
    stamp = now.isoformat()
    n = len(frame)
    # the deadline columns by (matter, inside): each matter's pair of values, taken per row
    matters, uniques = pd.factorize(frame["matter"])

    def clock_column(name):
        pairs = np.array([[clock[(u, False)][name], clock[(u, True)][name]] for u in uniques], dtype=object)
        return pairs[matters, inside.astype(np.intp)] if len(uniques) else np.full(n, None, dtype=object)

    def contact(column):
        if column not in frame.columns:
            return np.full(n, None, dtype=object)
        values = frame[column].astype(object).to_numpy()
        return np.where(pd.isna(values) | (values == ""), None, values)

    return pd.DataFrame(
        {
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
            "due_at": clock_column("due_at"),
            "warn_at": clock_column("warn_at"),
            "tick_at": clock_column("tick_at"),
            "contact_name": contact("name"),
            "contact_phone": contact("phone"),
        },
        index=pd.RangeIndex(n),
    )


CONTACT = ("contact_name", "contact_phone")
#: The ``report`` columns of :func:`case_rows`, in its order.
CASE_COLUMNS = (
    "received_at",
    "reported_at",
    "source",
    "external_id",
    "text",
    "source_lon",
    "source_lat",
    "geom",
    *(f"{lv}_code" for lv in LEVELS_UP),
    "special_code",
    "outside",
    "state",
    "matter_code",
    "handling_level",
    "department_code",
    "assignee",
    "route",
    "due_at",
    "warn_at",
    "tick_at",
)


def log_steps(actor: str):
    """The three transitions every imported case went through (reported → filed → dispatched), checked
    against the loop's table once, not per row: (from, action, to, actor, role, only in state)."""
    ctx = Context(roles=frozenset({SYSTEM}), matter_known=True, assignee="x")
    filed, dispatched = LOOP.fire("reported", "file", ctx), LOOP.fire("filed", "dispatch", ctx)
    return [
        (None, "report", "reported", actor, "ingest", None),
        (filed.state, filed.action, filed.target, SYSTEM, SYSTEM, None),
        (dispatched.state, dispatched.action, dispatched.target, SYSTEM, SYSTEM, "dispatched"),
    ]


def _write(conn, frame, routed, built, channel, actor, now, name: str, progress) -> dict:
    """COPY the cases (``built(a, b)``: the rows a..b of :func:`built_rows`, made in a thread while
    PostgreSQL writes the slice before; the progress bar counts the rows sent), then their log
    (written by PostgreSQL from the cases just copied) and contacts; counts."""
    steps = log_steps(actor)
    ids = cases.allocate_ids(conn, len(frame))
    people = []

    def slices():
        for start in range(0, len(frame), CHUNK):
            out = built(start, start + CHUNK)
            people.append(
                pd.DataFrame(
                    {
                        "report_id": ids[start : start + len(out)],
                        "name": out["contact_name"].to_numpy(),
                        "phone": out["contact_phone"].to_numpy(),
                    }
                )
            )
            yield out.drop(columns=list(CONTACT)).assign(id=ids[start : start + len(out)])

    cases.copy_cases_from(conn, ["id", *CASE_COLUMNS], slices(), progress)
    first, last, detail = (int(ids.min()), int(ids.max()), {"import": name}) if len(ids) else (0, 0, None)
    logged = cases.log_copied(conn, first, last, channel, now, steps, detail) if len(ids) else 0
    contacts = pd.concat(people, ignore_index=True) if people else pd.DataFrame(columns=["report_id", "name", "phone"])
    contacts = contacts[contacts["name"].notna() | contacts["phone"].notna()].assign(kind="reporter", channel=channel)
    written = cases.copy_contacts(conn, contacts) if len(contacts) else 0
    state = routed["state"]
    return {
        "cases": len(frame),
        "dispatched": int(state.eq("dispatched").sum()),
        "queued": int(state.eq("filed").sum()),
        "outside": int((~frame["status"].eq("placed")).sum()),
        "log": logged,
        "contacts": written,
        "first_id": int(ids[0]) if len(ids) else None,
    }
