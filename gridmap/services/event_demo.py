"""The demo's event centre: a department of each kind at every community, street and district
grid, and a year of cases that went through the loop (``gridmap demo load`` adds them)."""

from __future__ import annotations

import json

import lazy_loader
import shapely

from ..domain.demo import cases as demo_cases
from ..store import cases, departments
from .events import Centre

pd = lazy_loader.load("pandas")

#: Cases per micro-grid and year in the demo (Zhengzhou: 2.49 million over 42,453 micro-grids in
#: some years, about 20 a year each; the demo keeps to a quarter of that so it loads in seconds).
PER_MICRO = 5


def load(centre: Centre, *, seed: int = 7, per_micro: int = PER_MICRO, limit: int | None = None) -> dict:
    """Departments and a year of cases for the grids in the database, in one transaction; counts."""
    now = centre.now()
    with centre.engine.begin() as conn:
        depts = demo_cases.department_rows(centre.catalogue, departments.grids_with_departments(conn))
        departments.insert_many(conn, depts)
        micros = departments.micro_chains(conn)
        if not micros:
            return {"departments": len(depts), "cases": 0}
        codes = {m[f"{lv}_code"] for m in micros for lv in ("micro", "courtyard", "community", "street", "district")}
        mapping = departments.for_grids(conn, codes)
        workers = departments.workers_for(conn, codes)
        n = limit if limit is not None else per_micro * len(micros)
        rows, logs = demo_cases.generate(centre.catalogue, centre.cal, micros, mapping, workers, now, n, seed)
        ids = cases.allocate_ids(conn, len(rows))
        frame = pd.DataFrame(rows)
        frame.insert(0, "id", ids)
        points = shapely.set_srid(
            shapely.points(frame.pop("lon").to_numpy(float), frame.pop("lat").to_numpy(float)), 4326
        )
        frame["geom"] = shapely.to_wkb(points, hex=True, include_srid=True)
        frame["route"] = [json.dumps(r, ensure_ascii=False) for r in frame["route"]]
        for col in ("escalations", "reopened", "rating"):
            if col in frame:
                frame[col] = frame[col].astype("Int64")
        cases.copy_cases(conn, frame)
        log = pd.DataFrame(
            [
                {**e, "report_id": i, "detail": json.dumps(e["detail"])}
                for i, entries in zip(ids, logs, strict=True)
                for e in entries
            ]
        )
        cases.copy_log(conn, log)
    return {
        "departments": len(depts),
        "cases": len(rows),
        "log": len(log),
        "open": int(frame["state"].isin(["filed", "dispatched", "suspended", "disposed", "verified"]).sum()),
    }
