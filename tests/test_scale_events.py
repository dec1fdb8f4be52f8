"""``gridmap events import --engine dask`` on a real local Dask cluster of 2 worker processes: the
same cases, routes, log and reporters as the single-process import, ids in file order, and a bad
file rejected whole with its rows numbered over every partition (issue #18 item 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from eventcity import lonlat, pick

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        yield cluster


def hotline(n=900, seed=3) -> pd.DataFrame:
    """Rows over and around the test city (some outside every grid, some on grid corners), automatic
    and queued matters of every level, ids, times, and a reporter on every third row."""
    rng = np.random.default_rng(seed)
    matters = [
        pick(True, "community", "cg").code,
        pick(False, "street").code,
        pick(True, "micro").code,
        pick(True, "street", "hb").code,
    ]
    xs = np.concatenate([rng.uniform(-300, 4300, n - 9), np.arange(0, 4001, 500)])
    ys = np.concatenate([rng.uniform(-300, 4300, n - 9), np.arange(0, 4001, 500)])
    pts = [lonlat(x, y) for x, y in zip(xs, ys)]
    frame = pd.DataFrame(
        {
            "external_id": [f"h{i:05d}" for i in range(n)],
            "matter": [matters[i % len(matters)] for i in range(n)],
            "lon": [p[0] for p in pts],
            "lat": [p[1] for p in pts],
            "text": [f"市民来电 {i}" for i in range(n)],
            "reported_at": [f"2026-11-{1 + i % 27:02d} 08:{i % 60:02d}" for i in range(n)],
            "name": [f"张{i}" if i % 3 == 0 else "" for i in range(n)],
            "phone": [f"1390000{i:04d}" if i % 3 == 0 else "" for i in range(n)],
        }
    )
    return frame


def filed(engine):
    """Every case as the import left it (all but its id, receipt time and clock), its log and
    reporter, in id order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("""
            SELECT r.external_id, r.matter_code, r.state, r.handling_level, r.department_code, r.assignee,
                   r.route, r.micro_code, r.community_code, r.street_code, r.outside, ST_AsText(r.geom),
                   r.source_lon, r.source_lat, r.reported_at, r.text, r.due_at > r.received_at,
                   (SELECT string_agg(l.action || ':' || coalesce(l.to_state, ''), ',' ORDER BY l.id)
                      FROM report_log l WHERE l.report_id = r.id),
                   (SELECT string_agg(c.name || '/' || c.phone, ',') FROM report_contact c WHERE c.report_id = r.id)
            FROM report r ORDER BY r.id""")
        ).all()
        staged = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'gridmap_stage_%'")).scalar()
    return [tuple(r) for r in rows], staged


def test_events_import_on_dask_files_the_single_process_cases(event_city, engine, cli, tmp_path, dask_cluster):
    frame = hotline()
    src = tmp_path / "hotline.parquet"
    frame.to_parquet(src, row_group_size=250)  # four partitions
    res = cli("events", "import", src)
    assert res.exit_code == 0, res.output
    single, _ = filed(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE report RESTART IDENTITY CASCADE"))
    res = cli("events", "import", src, "--engine", "dask", "--scheduler", dask_cluster.scheduler_address)
    assert res.exit_code == 0, res.output
    got, staged = filed(engine)
    assert staged == 0 and len(got) == len(frame)
    assert [r[0] for r in got] == frame["external_id"].tolist()  # ids in file order
    assert got == single
    states = {r[2] for r in got}
    assert states == {"dispatched", "filed"} and any(r[10] for r in got)  # routed and queued; some outside
    assert sum(r[-1] is not None for r in got) == (frame["name"] != "").sum()
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"filed {len(frame)} cases from ") and "outside every grid" in line


def test_events_import_on_dask_rejects_the_whole_file_naming_rows_over_every_part(
    event_city, engine, cli, tmp_path, dask_cluster
):
    frame = hotline(n=600, seed=4)
    (tmp_path / "in").mkdir()
    first, second = frame.iloc[:300].copy(), frame.iloc[300:].copy()
    second.loc[second.index[10], "matter"] = "nope"  # row 311 of the whole input
    second.loc[second.index[20], "external_id"] = first["external_id"].iloc[5]  # row 321 repeats row 6
    first.to_csv(tmp_path / "in" / "a.csv", index=False)
    second.to_csv(tmp_path / "in" / "b.csv", index=False)
    args = ["--engine", "dask", "--scheduler", dask_cluster.scheduler_address]
    res = cli("events", "import", str(tmp_path / "in" / "*.csv"), *args)
    assert res.exit_code == 2, res.output
    assert "rejected, nothing written: row 311: unknown matter 'nope'; and 1 more problem" in res.output
    assert filed(engine) == ([], 0)
    # a file accepted, then the same ids again: every row is already received
    first.to_csv(tmp_path / "in" / "b.csv", index=False)
    (tmp_path / "in" / "a.csv").unlink()
    res = cli("events", "import", str(tmp_path / "in" / "*.csv"), *args)
    assert res.exit_code == 0, res.output
    res = cli("events", "import", str(tmp_path / "in" / "*.csv"), *args)
    assert res.exit_code == 2 and "row 1: external_id 'h00000' was already received from hotline" in res.output
    assert len(filed(engine)[0]) == 300 and filed(engine)[1] == 0


def test_events_import_dask_options_are_checked(event_city, cli, tmp_path):
    frame = hotline(n=20)
    frame.to_csv(tmp_path / "h.csv", index=False)
    res = cli("events", "import", tmp_path / "h.csv", "--workers", "2")
    assert res.exit_code == 2 and "--scheduler and --workers go with --engine dask" in res.output
    res = cli("events", "import", tmp_path / "h.csv", "--engine", "dask", "--matter-col", "kind", "--workers", "1")
    assert res.exit_code == 2 and "no column 'kind' naming the matter" in res.output


def test_a_wholly_bad_archive_is_counted_whole_but_sent_back_in_part(event_city, engine, cli, tmp_path, dask_cluster):
    """Each partition sends back at most MAX_LISTED (1,000) problems; the count is of them all."""
    frame = hotline(n=1500, seed=5).assign(matter="nope")
    frame.to_csv(tmp_path / "bad.csv", index=False)
    res = cli(
        "events", "import", tmp_path / "bad.csv", "--engine", "dask", "--scheduler", dask_cluster.scheduler_address
    )
    assert res.exit_code == 2, res.output
    assert "row 1: unknown matter 'nope'; and 1499 more problems" in res.output
    assert filed(engine) == ([], 0)
