"""Three-colour risk elements: importing elements and visits, recording a visit, the roll-up.

Elements are placed by the same batch assignment as reports (:func:`gridmap.domain.lookup.assign_table`
on the locator's index: covers, lowest code wins); a polygon by its representative point (GEOS
point-on-surface, the same point ``ST_PointOnSurface`` gives in PostGIS).  Imports are
all-or-nothing: every row is checked first, and one bad row rejects the file (ImportRejected naming
the first bad row and its problem, ``detail`` listing them all).  Rows are numbered from 1 in file
order (a CSV header is not a row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lazy_loader
import numpy as np
import shapely
from sqlalchemy.engine import Connection, Engine

from .. import geo
from ..domain.lookup import GridIndex, assign_table
from ..domain.risk import COLOURS, KINDS, Rules, check_colour, check_kind
from ..errors import ImportRejected, InputError, NotFound
from ..store import audit, risk
from . import ingest

pd = lazy_loader.load("pandas")

#: Clocks differ: a mark or visit up to this far in the future is accepted.
CLOCK_SKEW = timedelta(minutes=5)
ELEMENT_FORMATS = (".csv", ".geojson", ".json", ".gpkg", ".parquet")


@dataclass
class ElementColumns:
    """Which source columns hold each field (``lon``/``lat`` for CSVs without a WKT column)."""

    kind: str = "kind"
    colour: str = "colour"
    name: str = "name"
    reason: str = "reason"
    marked_by: str = "marked_by"
    marked_at: str = "marked_at"
    lon: str = "lon"
    lat: str = "lat"


def _texts(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as stripped strings, None for empty or missing cells (vectorised: demo files are big)."""
    out = frame[column].astype("string").str.strip().to_numpy(dtype=object, na_value=None)
    out[out == ""] = None
    return out


def _instants(texts, problems: ingest.Problems, column: str, *, required: bool, default=None) -> pd.Series:
    """ISO text -> UTC timestamps (no zone: UTC, as everywhere in gridmap); problems name the row.
    Missing cells get ``default`` (NaT when None)."""
    texts = pd.Series(texts, dtype=object)
    parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    given = texts.notna().to_numpy()
    for i in np.flatnonzero(given & parsed.isna().to_numpy()):
        problems.add(i + 1, f"{column} {texts[i]!r} is not an ISO date/time such as 2026-01-31T08:00+08:00")
    if required:
        problems.add_mask(~given, None, f"missing {column}")
    elif default is not None:
        parsed = parsed.where(given, pd.Timestamp(default))
    return parsed


def iso_utc(times: pd.Series) -> np.ndarray:
    """UTC timestamps as ISO text for COPY (numpy's formatter: pandas' takes seconds per 100k rows)."""
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return np.char.add(np.datetime_as_string(naive, unit="us"), "+00:00")


def _geometries(path: Path, frame: pd.DataFrame, geoms, source: str, cols: ElementColumns, crs):
    """Geometries for every row: a geo file's own, a CSV's WKT column, or a CSV's lon/lat columns."""
    if geoms is not None:
        return geoms, source
    wkt = next((c for c in ingest.WKT_COLUMNS if c in frame.columns), None)
    if wkt is not None:
        text = frame.pop(wkt).replace("", None).to_numpy(dtype=object)
        try:
            return shapely.from_wkt(text, on_invalid="raise"), source
        except shapely.errors.GEOSException:  # find the bad rows one by one
            return np.array([ingest.wkt_or_none(t) for t in text], dtype=object), source
    missing = [c for c in (cols.lon, cols.lat) if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path.name}: no column {', '.join(map(repr, missing))} and no WKT column "
            f"(columns: {', '.join(map(str, frame.columns))}); use --lon-col/--lat-col or a wkt column"
        )
    lon = pd.to_numeric(frame.pop(cols.lon), errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(frame.pop(cols.lat), errors="coerce").to_numpy(dtype="float64")
    ok = np.isfinite(lon) & np.isfinite(lat)
    pts = np.full(len(lon), None, dtype=object)
    pts[ok] = shapely.points(lon[ok], lat[ok])
    return pts, source


def read_elements(
    path, index: GridIndex, *, crs=None, columns: ElementColumns = ElementColumns(), now: datetime | None = None
) -> tuple[pd.DataFrame, dict]:
    """Read and check an element file and place every element in its micro-grid.

    Returns (frame ready for ``store.risk.insert_elements``, summary).  Raises ImportRejected with
    every bad row (unknown kind or colour, missing name or marker, bad date, missing, unreadable,
    wrongly typed or invalid geometry, coordinates outside China), InputError for a bad file.
    """
    path = Path(path)
    now = now or datetime.now(UTC)
    if path.suffix.lower() not in ELEMENT_FORMATS:
        raise InputError(f"unsupported file type {path.suffix!r} for {path.name}: use " + ", ".join(ELEMENT_FORMATS))
    fmt = ingest.file_format(path)
    frame, geoms, source = ingest.read_table(path, crs, need_geometry=fmt != "csv")
    geoms, source = _geometries(path, frame, geoms, source, columns, crs)
    if len(frame) == 0:
        raise InputError(f"{path.name}: no rows")
    for need in (columns.kind, columns.colour, columns.name, columns.marked_by):
        if need not in frame.columns:
            raise InputError(f"{path.name}: no column {need!r} (columns: {', '.join(map(str, frame.columns))})")
    problems = ingest.Problems(path)
    kind, colour, name, marked_by = (
        _texts(frame, c) for c in (columns.kind, columns.colour, columns.name, columns.marked_by)
    )
    reason = _texts(frame, columns.reason) if columns.reason in frame.columns else np.full(len(frame), None)
    for i in np.flatnonzero(~np.isin(kind, KINDS)):
        problems.add(i + 1, check_kind(kind[i]))
    for i in np.flatnonzero(~np.isin(colour, COLOURS)):
        problems.add(i + 1, check_colour(colour[i]))
    problems.add_mask(name == None, None, "missing name")  # noqa: E711
    problems.add_mask(marked_by == None, None, "missing marked_by")  # noqa: E711
    if columns.marked_at in frame.columns:
        marked_at = _instants(
            _texts(frame, columns.marked_at), problems, columns.marked_at, required=False, default=now
        )
        late = (marked_at > pd.Timestamp(now + CLOCK_SKEW)).to_numpy()
        problems.add_mask(late, None, lambda i: f"{columns.marked_at} {marked_at[i].isoformat()} is in the future")
    else:
        marked_at = pd.Series(pd.Timestamp(now), index=range(len(frame)))

    geoms = np.array([g if isinstance(g, shapely.Geometry) else None for g in geoms], dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    problems.add_mask(missing, None, "missing or unreadable geometry")
    types = shapely.get_type_id(geoms)
    wrong = ~missing & ~np.isin(types, (0, 3, 6))
    problems.add_mask(
        wrong, None, lambda i: f"wrong geometry type {geoms[i].geom_type} (expected Point, Polygon or MultiPolygon)"
    )
    ok = ~missing & ~wrong
    out = np.full(len(geoms), None, dtype=object)
    if ok.any():
        out[ok] = geo.transform_geoms(geoms[ok], source)
    # lon/lat sources are checked as given (so swapped axes are recognised), others once in lon/lat
    bounds = shapely.bounds(geoms if geo.is_geographic(source) else out)
    for i in np.flatnonzero(ok):
        why = geo.bounds_problem(*bounds[i])
        if why:
            problems.add(i + 1, why)
            ok[i] = False
    invalid = ok & ~shapely.is_valid(out)
    problems.add_mask(invalid, None, lambda i: f"invalid geometry: {shapely.is_valid_reason(out[i])}")
    problems.raise_if_any()

    point = shapely.point_on_surface(out)
    table = assign_table(index, shapely.get_x(point), shapely.get_y(point), f"EPSG:{geo.STORAGE_SRID}")
    micro = table["micro_code"].astype(object).where(table["micro_code"].notna(), None)
    mapped = {columns.kind, columns.colour, columns.name, columns.reason, columns.marked_by, columns.marked_at}
    extra = [c for c in frame.columns if c not in mapped]
    attrs = (
        [
            json.dumps({c: v for c, v in zip(extra, row) if v is not None and str(v) != ""}, ensure_ascii=False)
            for row in frame[extra].itertuples(index=False)
        ]
        if extra
        else ["{}"] * len(frame)
    )
    rows = pd.DataFrame(
        {
            "kind": kind,
            "colour": colour,
            "name": name,
            "reason": reason,
            "marked_by": marked_by,
            "marked_at": iso_utc(marked_at),
            "geom": shapely.to_wkb(shapely.set_srid(out, geo.STORAGE_SRID), hex=True, include_srid=True),
            "micro_code": micro.to_numpy(),
            "attrs": attrs,
        }
    )
    placed = int(micro.notna().sum())
    summary = {
        "file": path.name,
        "rows": len(rows),
        "placed": placed,
        "outside": len(rows) - placed,
        "crs": source,
        "by_colour": {c: int((colour == c).sum()) for c in COLOURS},
        "by_kind": {k: int((kind == k).sum()) for k in KINDS},
    }
    return rows, summary


def check_visits(name: str, frame: pd.DataFrame, conn: Connection, *, now: datetime | None = None) -> pd.DataFrame:
    """Check visit rows (``element``, ``visited_at``, ``visitor``, optional ``note``); ImportRejected
    naming every bad row: unknown element, bad or future time, a visit before the element was
    marked (it would make a fresh element look visited), missing visitor."""
    now = now or datetime.now(UTC)
    for need in ("element", "visited_at", "visitor"):
        if need not in frame.columns:
            raise InputError(f"{name}: no column {need!r} (columns: {', '.join(map(str, frame.columns))})")
    problems = ingest.Problems(Path(name))
    raw = pd.Series(_texts(frame, "element"), dtype=object)
    ids = pd.to_numeric(raw, errors="coerce")
    bad = (ids.isna() | (ids % 1 != 0)).to_numpy()
    problems.add_mask(
        bad,
        None,
        lambda i: "missing element id" if raw[i] is None else f"element must be a whole number, got {raw[i]!r}",
    )
    ids = ids.fillna(-1).astype("int64").to_numpy()
    marks = risk.element_marks(conn, np.unique(ids[ids >= 0]))
    marked = pd.Series(ids).map(marks)
    when = _instants(_texts(frame, "visited_at"), problems, "visited_at", required=True)
    unknown = ~bad & marked.isna().to_numpy()
    problems.add_mask(unknown, None, lambda i: f"no risk element with id {ids[i]}")
    known = ~bad & ~unknown & when.notna().to_numpy()
    future = known & (when > pd.Timestamp(now + CLOCK_SKEW)).to_numpy()
    problems.add_mask(future, None, lambda i: f"visited_at {when[i].isoformat()} is in the future")
    early = known & ~future & (when < pd.to_datetime(marked, utc=True)).to_numpy()
    problems.add_mask(
        early,
        None,
        lambda i: (
            f"visited_at {when[i].isoformat()} is before element {ids[i]} was "
            f"marked ({pd.Timestamp(marked[i]).isoformat()})"
        ),
    )
    visitor = _texts(frame, "visitor")
    problems.add_mask(visitor == None, None, "missing visitor")  # noqa: E711
    note = _texts(frame, "note") if "note" in frame.columns else np.full(len(frame), None)
    problems.raise_if_any()
    return pd.DataFrame({"element_id": ids, "visited_at": iso_utc(when), "visitor": visitor, "note": note})


def read_visits_csv(path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path.name}: visits come as CSV (element, visited_at, visitor, note)")
    frame, _, _ = ingest.read_table(path, None, need_geometry=False)
    if "element" not in frame.columns and "element_id" in frame.columns:
        frame = frame.rename(columns={"element_id": "element"})
    return frame


# --- services (CLI and web) -------------------------------------------------------------


def import_elements(
    locator, path, *, rules: Rules, crs=None, columns: ElementColumns = ElementColumns(), actor: str = "cli"
) -> dict:
    """Check, place and store every element of ``path`` in one transaction, then refresh the roll-up
    with ``rules`` (the rules in force)."""
    rows, report = read_elements(path, locator.index(), crs=crs, columns=columns)
    with locator.engine.begin() as conn:
        ids = risk.insert_elements(conn, rows)
        report["ids"] = [ids[0], ids[-1]] if ids else []
        report["grids_rolled_up"] = risk.refresh_rollup(conn, rules)
        audit.log(conn, actor, "import risk elements", None, dict(report))
    return report


def import_visits(eng: Engine, path, *, rules: Rules, actor: str = "cli") -> dict:
    """Check and store every visit of the CSV ``path`` in one transaction; refresh the roll-up."""
    frame = read_visits_csv(path)
    with eng.begin() as conn:
        rows = check_visits(Path(path).name, frame, conn)
        n = risk.insert_visits(conn, rows)
        rolled = risk.refresh_rollup(conn, rules)
        audit.log(conn, actor, "import risk visits", None, {"file": Path(path).name, "rows": n})
    return {
        "file": Path(path).name,
        "rows": n,
        "elements": int(rows["element_id"].nunique()),
        "grids_rolled_up": rolled,
    }


def record_visit(
    eng: Engine, element_id, visitor, *, rules: Rules, visited_at=None, note=None, actor: str = "api"
) -> dict:
    """Record one visit (now unless ``visited_at``), refresh the roll-up, log ``actor``; the element's new state."""
    frame = pd.DataFrame(
        {
            "element": [element_id],
            "visited_at": [visited_at or datetime.now(UTC).isoformat()],
            "visitor": [visitor],
            "note": [note],
        }
    )
    with eng.begin() as conn:
        if risk.element(conn, rules, element_id_of(element_id)) is None:
            raise NotFound(f"no risk element with id {element_id}")
        try:
            rows = check_visits("visit", frame, conn)
        except ImportRejected as exc:  # one visit: its problem is the message
            raise InputError(exc.detail["problems"][0]["problem"]) from None
        risk.insert_visits(conn, rows)
        risk.refresh_rollup(conn, rules)
        audit.log(
            conn,
            actor,
            "record risk visit",
            None,
            {"element": int(rows["element_id"][0]), "visitor": visitor, "note": note},
        )
        return risk.element(conn, rules, int(rows["element_id"][0]))


def rollup(eng: Engine, rules: Rules) -> tuple[int, dict]:
    """Recompute every grid's colour; (grids rolled up, rolled-up grids per colour per level)."""
    with eng.begin() as conn:
        n = risk.refresh_rollup(conn, rules)
    with eng.connect() as conn:
        return n, risk.summary(conn, rules)["grids"]


def list_elements(eng: Engine, rules: Rules, **filters) -> dict:
    """Elements as an RFC 7946 FeatureCollection (filters: see :func:`gridmap.store.risk.list_elements`)."""
    with eng.connect() as conn:
        return risk.list_elements(conn, rules, **filters)


def grid_summary(eng: Engine, code: str, rules: Rules, at=None) -> dict:
    """The live colour and counts of the elements below one current grid; NotFound when unknown."""
    with eng.connect() as conn:
        body = risk.grid_summary(conn, code, rules, at=at)
    if body is None:
        raise NotFound(f"no current grid with code {code!r}")
    return body


def summary(eng: Engine, rules: Rules, at=None) -> dict:
    """Counts by colour and kind, overdue by colour, and rolled-up grids per colour per level."""
    with eng.connect() as conn:
        return risk.summary(conn, rules, at=at)


def element_id_of(value) -> int:
    if isinstance(value, bool):
        raise InputError(f"element must be an element id (a whole number), got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"element must be an element id (a whole number), got {value!r}") from None
