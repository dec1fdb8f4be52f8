"""The demo city: generate its files (``gridmap demo generate``) and load them in one transaction
(``gridmap demo load``), risk elements, visits and reports included."""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import lazy_loader
import numpy as np
import shapely
from sqlalchemy.engine import Connection, Engine

from .. import geo
from ..domain.demo import city
from ..domain.demo import people as demo_people
from ..domain.demo.risk import anchor_today
from ..domain.lookup import GridIndex, assign_table
from ..domain.risk import Rules
from ..store import db, grids, points, risk
from . import resources
from .imports import import_file
from .risk_elements import iso_utc, read_elements, read_visits_csv

pd = lazy_loader.load("pandas")

#: Levels loaded after the grids, placed in them on the same transaction.
RISK_LEVELS = ("risk_element", "risk_visit", "report")
RISK_FILES = {"risk_element": "risk_elements.csv", "risk_visit": "risk_visits.csv", "report": "reports.csv"}


def sources() -> city.Sources:
    """The shipped real data the demo city is built in."""
    return city.Sources(
        districts=resources.demo_districts(),
        streets=resources.demo_divisions("zhengzhou_streets.csv"),
        communities=resources.demo_divisions("guancheng_communities.csv"),
    )


def generate(
    scale_name: str, seed: int, out_dir, *, workers: int | None = None, progress=None, anchor: datetime | None = None
) -> dict:
    """Generate the demo city into ``out_dir``; return its manifest (files in import order and counts).

    Risk elements, their visits and citizen reports are dated relative to ``anchor`` (default: today,
    midnight UTC), so their overdue states look live when loaded."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    anchor = anchor_today(anchor or datetime.now(UTC))
    rows, risk_frames = city.build(
        scale_name, seed, sources(), anchor, workers=workers or os.cpu_count() or 1, progress=progress
    )
    manifest = {"scale": scale_name, "seed": seed, "files": [], "counts": {}}
    for level, name, crs in city.FILES:
        level_rows = rows[level]
        if level == "share":  # the membership file: which floors each micro-grid holds
            pd.DataFrame(level_rows).to_csv(out_dir / name, index=False)
            manifest["files"].append({"level": level, "file": name, "crs": None})
            manifest["counts"][level] = len(level_rows)
            continue
        attrs = pd.DataFrame(level_rows).drop(columns="geometry")
        if "floor_households" in attrs.columns:  # households per floor, per unit: a JSON column
            attrs["floor_households"] = attrs["floor_households"].map(json.dumps)
        frame = gpd.GeoDataFrame(
            attrs,
            geometry=[r["geometry"] for r in level_rows],
            crs=None if crs == "gcj02" else crs,
        )
        path = out_dir / name
        if path.exists():
            path.unlink()
        with warnings.catch_warnings():  # GCJ-02 has no EPSG code: the file carries none, by design
            warnings.filterwarnings("ignore", message="'crs' was not provided")
            frame.to_file(path, engine="pyogrio")
        manifest["files"].append({"level": level, "file": name, "crs": crs})
        manifest["counts"][level] = len(level_rows)
    people, orgs = demo_people.build(rows, city.Names(np.random.default_rng([seed, 14])), seed)
    for level, name, frame in (("party_org", "party_orgs.csv", orgs), ("person", "people.csv", people)):
        pd.DataFrame(frame).to_csv(out_dir / name, index=False)  # organisations first: posts name them
        manifest["files"].append({"level": level, "file": name, "crs": None})
        manifest["counts"][level] = len(frame)
    for level, frame in risk_frames.items():
        frame.to_csv(out_dir / RISK_FILES[level], index=False)
        manifest["files"].append({"level": level, "file": RISK_FILES[level], "crs": "EPSG:4326"})
        manifest["counts"][level] = len(frame)
    manifest["anchor"] = anchor.isoformat()
    manifest["counts"]["households"] = int(sum(d["households"] for d in rows["district"]))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
    return manifest


def load_demo(
    eng: Engine, scale: str, seed: int, *, rules: Rules, out_dir=None, fresh: bool = False, progress=None
) -> dict:
    """Generate the demo city and import it in one transaction; returns timings and counts."""
    timings = {}
    t0 = time.perf_counter()
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gridmap-demo-")
        out_dir = tmp.name
    try:
        manifest = generate(scale, seed, out_dir, progress=progress)
        timings["generate_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        load_manifest(eng, out_dir, manifest, rules=rules, fresh=fresh, progress=progress)
        timings["load_s"] = time.perf_counter() - t1
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"scale": scale, "seed": seed, "counts": manifest["counts"], "timings": timings}


def load_manifest(eng: Engine, folder, manifest: dict, *, rules: Rules, fresh: bool = False, progress=None) -> None:
    """Import every file a demo manifest lists, all in one transaction."""
    folder = Path(folder)
    with eng.begin() as conn:
        if fresh:
            db.truncate_all(conn)
        later = [e for e in manifest["files"] if e["level"] in RISK_LEVELS]
        with_shares = any(e["level"] == "share" for e in manifest["files"])
        for entry in manifest["files"]:
            if entry not in later:
                import_file(
                    conn,
                    folder / entry["file"],
                    entry["level"],
                    rules=rules,
                    crs=entry["crs"],
                    actor="demo",
                    fill_shares=not with_shares,
                )
                progress and progress(f"imported {entry['level']}")
        # elements, visits and reports need the grids to be placed in: after them, same transaction
        if later:
            load_risk_files(conn, folder, later, rules=rules)
            progress and progress("imported risk elements and reports")
        db.analyze(conn)


def load_risk_files(conn: Connection, folder: Path, entries: list[dict], *, rules: Rules) -> dict:
    """Store the demo's elements, visits and reports on ``conn``'s transaction, placed by a lookup index
    of the grids on that transaction (the city is not committed yet).  Demo visits name elements by
    their row in the element file (``element_row``)."""
    if not entries:
        return {}
    index = GridIndex(grids.index_frame(conn))
    by_level = {e["level"]: e for e in entries}
    out, ids = {}, []
    visits = None
    if "risk_visit" in by_level:
        visits = read_visits_csv(folder / by_level["risk_visit"]["file"])
        rows_of = visits.pop("element_row").astype("int64").to_numpy() - 1
    if "risk_element" in by_level:
        e = by_level["risk_element"]
        rows, summary = read_elements(folder / e["file"], index, crs=e["crs"])
        if visits is not None:
            # written with the elements, so the visits' trigger finds every row right and rewrites none
            # (150k rewritten rows and their index entries cost seconds at Zhengzhou scale)
            when = pd.to_datetime(visits["visited_at"], format="ISO8601", utc=True)
            latest = when.groupby(rows_of).max()
            rows["last_visit_at"] = iso_utc(pd.Series(latest, index=range(len(rows))))
            rows.loc[rows["last_visit_at"] == "NaT+00:00", "last_visit_at"] = None
        ids = np.asarray(risk.insert_elements(conn, rows))
        out["risk_element"] = len(ids)
    if visits is not None:
        # generated visits are right by construction (after the mark, in the past: tested), and the
        # foreign key holds the ids: no per-row check, which costs seconds at Zhengzhou scale
        out["risk_visit"] = risk.insert_visits(
            conn,
            pd.DataFrame(
                {
                    "element_id": ids[rows_of],
                    "visited_at": iso_utc(when),
                    "visitor": visits["visitor"],
                    "note": visits["note"],
                }
            ),
        )
    if "report" in by_level:
        e = by_level["report"]
        frame = pd.read_csv(folder / e["file"], dtype={"text": str, "status": str, "received_at": str})
        crs = geo.parse_crs(e["crs"])
        table = assign_table(index, frame["lon"].to_numpy(), frame["lat"].to_numpy(), crs)
        pts = shapely.set_srid(shapely.points(table["lon_wgs84"], table["lat_wgs84"]), geo.STORAGE_SRID)
        micro = table["micro_code"].astype(object).where(table["micro_code"].notna(), None)
        out["report"] = points.insert(
            conn,
            "report",
            pd.DataFrame(
                {
                    "text": frame["text"],
                    "address": None,
                    "source_lon": frame["lon"],
                    "source_lat": frame["lat"],
                    "source_crs": crs,
                    "geom": shapely.to_wkb(pts, hex=True, include_srid=True),
                    "micro_code": micro,
                    "status": frame["status"],
                    "received_at": frame["received_at"],
                }
            ),
        )
    out["grids_rolled_up"] = risk.refresh_rollup(conn, rules)
    return out
