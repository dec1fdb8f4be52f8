"""``gridmap assign --engine dask`` on a real local Dask cluster of 2 worker processes: the same rows
as the single-process command (boundary points, outside and bad rows, every input kind), a worker
killed mid-run, and no partial output when a run fails."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
import sqlalchemy as sa
from test_lookup import Y1

from gridmap.services import dask_assign
from gridmap.services.dask_assign import assign_dask
from gridmap.services.locator import Locator

import cityfactory as cf

distributed = pytest.importorskip("distributed")

MANIFEST = "_gridmap.json"


@pytest.fixture(scope="module")
def dask_cluster():
    """A local cluster of 2 worker processes shared by the module (its scheduler address)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)


def lonlat(xs, ys):
    pts = cf.geo.from_local(shapely.points(cf.X0 + np.asarray(xs, float), cf.Y0 + np.asarray(ys, float)))
    return shapely.get_x(pts), shapely.get_y(pts)


def points_frame(n_random=3000, seed=1) -> pd.DataFrame:
    """Random points over and around the city, every vertex and edge midpoint of the grids (the
    boundary cases), an outside point, and bad rows (NaN, swapped)."""
    rng = np.random.default_rng(seed)
    xs = list(rng.uniform(-300, 4300, n_random))
    ys = list(rng.uniform(-300, 4300, n_random))
    for x in range(0, 4001, 500):  # every grid corner and the midpoints of their edges
        for y in range(0, 4001, 500):
            xs.append(x)
            ys.append(y)
    lon, lat = lonlat(xs, ys)
    lon, lat = list(lon) + [np.nan, 34.75], list(lat) + [34.7, 113.7]
    return pd.DataFrame({"id": [f"p{i}" for i in range(len(lon))], "lon": lon, "lat": lat})


def write_geoparquet(frame, path, row_group):
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.lon.fillna(0), frame.lat), crs=4326)
    gdf.to_parquet(path, row_group_size=row_group)
    return path


def read_parts(folder) -> pd.DataFrame:
    return normalise(gpd.read_parquet(folder))


def normalise(frame) -> pd.DataFrame:
    """Plain values per column (categoricals and string dtypes as objects), geometry as WKB."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if col == "geometry":
            out[col] = [None if g is None else shapely.to_wkb(g) for g in s]
        elif isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or str(s.dtype).startswith("str"):
            out[col] = s.astype(object).where(s.notna(), None).tolist()
        else:
            out[col] = s.tolist()
    return pd.DataFrame(out)


def assert_same_rows(single, parts):
    assert list(single.columns) == list(parts.columns)
    assert len(single) == len(parts)
    pd.testing.assert_frame_equal(single, parts, check_dtype=False)


def test_dask_gives_the_single_process_rows_for_geoparquet_with_boundary_points(
    city, engine, cli, tmp_path, dask_cluster
):
    frame = points_frame()
    src = write_geoparquet(frame, tmp_path / "pts.parquet", row_group=700)
    assert pq.ParquetFile(src).num_row_groups >= 4  # several partitions
    single = tmp_path / "single.parquet"
    res = cli("assign", src, single)
    assert res.exit_code == 0, res.output
    res = cli("assign", src, tmp_path / "out", "--engine", "dask", "--scheduler", dask_cluster.scheduler_address)
    assert res.exit_code == 0, res.output
    expect = normalise(gpd.read_parquet(single))
    got = read_parts(tmp_path / "out")
    assert_same_rows(expect, got)
    statuses = set(got["status"])
    assert statuses == {"placed", "outside", "bad"}
    summary = res.output.strip().splitlines()[-1]
    counts = expect["status"].value_counts()
    assert f"{len(expect)} rows: {counts['placed']} placed, {counts['outside']} outside, {counts['bad']} bad" in summary
    assert len(list((tmp_path / "out").glob("part.*.parquet"))) == pq.ParquetFile(src).num_row_groups
    # the command's workers loaded the index persisted under the data folder, not a copy sent to them
    with distributed.Client(dask_cluster) as client:
        loaded = client.run(lambda: type(dask_assign._LOADED.get("source")).__name__)
    assert set(loaded.values()) == {"OnDisk"}
    # GeoParquet in, GeoParquet out: the input's geometry column passed through, as single-process
    assert pq.read_schema(sorted((tmp_path / "out").glob("part.*.parquet"))[0]).metadata[b"geo"]
    # a worker writes a partition a chunk at a time: the same rows again; with no data folder the
    # index's arrays are sent to the workers instead
    assign_dask(Locator(engine), src, tmp_path / "chunked", scheduler=dask_cluster.scheduler_address, chunk_rows=150)
    with distributed.Client(dask_cluster) as client:
        loaded = client.run(lambda: type(dask_assign._LOADED.get("source")).__name__)
    assert "tuple" in set(loaded.values())  # the workers that ran a task
    assert pq.ParquetFile(sorted((tmp_path / "chunked").glob("part.*.parquet"))[0]).num_row_groups == 5
    assert_same_rows(expect, read_parts(tmp_path / "chunked"))
    # boundary points each got exactly one micro-grid, the lowest code, in both
    corner = got[got["id"] == expect["id"][3000 + 2 * 9 + 2]]
    assert corner["micro_code"].iloc[0] is not None


def test_dask_reads_a_csv_glob_and_a_plain_parquet_folder(city, cli, tmp_path, dask_cluster):
    frame = points_frame(n_random=800, seed=2)
    whole = tmp_path / "all.csv"
    frame.to_csv(whole, index=False)
    halves = np.array_split(np.arange(len(frame)), 2)
    (tmp_path / "csv").mkdir()
    for i, rows in enumerate(halves):
        frame.iloc[rows].to_csv(tmp_path / "csv" / f"day{i}.csv", index=False)
    res = cli("assign", whole, tmp_path / "single.csv")
    assert res.exit_code == 0, res.output
    expect = pd.read_csv(tmp_path / "single.csv", dtype=str, keep_default_na=False)
    res = cli(
        "assign", str(tmp_path / "csv" / "day*.csv"), tmp_path / "out", "--engine", "dask",
        "--scheduler", dask_cluster.scheduler_address,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    got = pd.read_parquet(tmp_path / "out")  # plain Parquet in CSV's text columns, as single-process writes it
    mode = stat.S_IMODE  # the folder has a plain mkdir's permissions (0777 less the umask), not mkdtemp's 0700
    assert mode((tmp_path / "out").stat().st_mode) == mode((tmp_path / "csv").stat().st_mode)
    assert b"geo" not in (pq.read_schema(sorted((tmp_path / "out").glob("part.*"))[0]).metadata or {})
    assert list(got["id"]) == list(frame["id"]) and list(got["lon"]) == list(expect["lon"])
    for col in ("micro_code", "courtyard_code", "district_name", "status", "nearest_micro_code", "special_codes"):
        assert [str(v) if v is not None and v == v else "" for v in got[col]] == list(expect[col]), col
    # plain Parquet (lon/lat columns, no geometry) in a folder of two files
    (tmp_path / "pq").mkdir()
    for i, rows in enumerate(halves):
        pq.write_table(pa.Table.from_pandas(frame.iloc[rows], preserve_index=False), tmp_path / "pq" / f"{i}.parquet")
    # and on a local cluster the command starts itself (no --scheduler)
    res = cli("assign", tmp_path / "pq", tmp_path / "out2", "--engine", "dask", "--workers", "2")
    assert res.exit_code == 0, res.output
    assert "gridmap: dask: 2 workers at tcp://127.0.0.1:" in res.output
    assert cli("assign", tmp_path / "pq" / "0.parquet", tmp_path / "single0.parquet").exit_code == 0
    plain = pd.read_parquet(tmp_path / "out2")
    assert list(plain["micro_code"].astype(object)) == list(got["micro_code"].astype(object))
    assert_same_rows(normalise(pd.read_parquet(tmp_path / "single0.parquet")), normalise(plain.iloc[: len(halves[0])]))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lon-col", "x"], "no column 'x'"),
        (["--workers", "2", "--engine", "single"], "--scheduler and --workers go with --engine dask"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(city, cli, tmp_path, dask_cluster, args, message):
    src = write_geoparquet(points_frame(50), tmp_path / "pts.parquet", row_group=20)
    extra = [] if "--engine" in args else ["--engine", "dask", "--scheduler", dask_cluster.scheduler_address]
    res = cli("assign", src, tmp_path / "out", *extra, *args)
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.gridmap-*"))


def test_refuses_to_replace_a_folder_it_did_not_write(city, cli, tmp_path, dask_cluster):
    src = write_geoparquet(points_frame(50), tmp_path / "pts.parquet", row_group=20)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    res = cli("assign", src, tmp_path / "mine", "--engine", "dask", "--scheduler", dask_cluster.scheduler_address)
    assert res.exit_code == 2 and "did not write" in res.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _kill_a_worker_once_parts_appear(pid, tmp_path, stop):
    """Kill a worker process (SIGKILL) as soon as the run has written a few parts."""
    while not stop.is_set():
        if len(list(tmp_path.glob(".out.gridmap-*/part.*.parquet"))) >= 3:
            os.kill(pid, signal.SIGKILL)
            return True
        time.sleep(0.01)
    return False


def _run_with_a_killed_worker(cli, tmp_path, cluster, src):
    killed = []
    stop = threading.Event()
    with distributed.Client(cluster) as client:
        pid = next(iter(client.run(os.getpid).values()))
    t = threading.Thread(target=lambda: killed.append(_kill_a_worker_once_parts_appear(pid, tmp_path, stop)))
    t.start()
    try:
        res = cli("assign", src, tmp_path / "out", "--engine", "dask", "--scheduler", cluster.scheduler_address)
    finally:
        stop.set()
        t.join()
    assert killed == [True], "the run ended before a worker could be killed"
    return res


def test_a_killed_worker_is_retried_and_the_output_is_whole(city, cli, tmp_path):
    frame = points_frame(n_random=12_000, seed=3)
    src = write_geoparquet(frame, tmp_path / "pts.parquet", row_group=200)
    assert cli("assign", src, tmp_path / "single.parquet").exit_code == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        res = _run_with_a_killed_worker(cli, tmp_path, cluster, src)
    assert res.exit_code == 0, res.output
    assert_same_rows(normalise(gpd.read_parquet(tmp_path / "single.parquet")), read_parts(tmp_path / "out"))
    assert not list(tmp_path.glob(".out.gridmap-*"))


def test_a_run_that_cannot_recover_fails_cleanly_and_keeps_the_old_output(city, cli, tmp_path):
    import dask

    frame = points_frame(n_random=12_000, seed=4)
    src = write_geoparquet(frame, tmp_path / "pts.parquet", row_group=200)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MANIFEST).write_text("{}")  # an earlier run's output
    (tmp_path / "out" / "part.00000.parquet").write_bytes(b"old")
    # no retries: the killed worker's task fails the run
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
            res = _run_with_a_killed_worker(cli, tmp_path, cluster, src)
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("gridmap: error: dask run failed, nothing written") and "KilledWorker" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "part.00000.parquet"]
    assert (tmp_path / "out" / "part.00000.parquet").read_bytes() == b"old"
    assert not list(tmp_path.glob(".out.gridmap-*"))


def stored(engine, table):
    cols = "text, source_lon, source_lat" if table == "report" else "name, address, building_code, unit"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT {cols}, micro_code, ST_AsText(geom) FROM {table} ORDER BY id")).all()
        staged = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'gridmap_stage_%'")).scalar()
    return [tuple(r) for r in rows], staged


def test_record_reports_on_dask_stores_the_single_process_rows(city, engine, cli, tmp_path, dask_cluster):
    frame = points_frame(n_random=1500, seed=5).assign(text=lambda f: "路灯不亮 " + f["id"])
    src = write_geoparquet(frame, tmp_path / "reports.parquet", row_group=400)
    res = cli("record", "reports", src)
    assert res.exit_code == 0, res.output
    single, _ = stored(engine, "report")
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE report RESTART IDENTITY CASCADE"))
    res = cli("record", "reports", src, "--engine", "dask", "--scheduler", dask_cluster.scheduler_address)
    assert res.exit_code == 0, res.output
    got, staged = stored(engine, "report")
    assert got == single and len(got) == len(frame) and staged == 0


def test_record_is_all_or_nothing_when_a_partition_fails(city, engine, cli, tmp_path, dask_cluster):
    frame = points_frame(n_random=300, seed=6).assign(text="井盖缺失")
    (tmp_path / "in").mkdir()
    frame.iloc[:200].to_csv(tmp_path / "in" / "a.csv", index=False)
    frame.iloc[200:].drop(columns="text").to_csv(tmp_path / "in" / "b.csv", index=False)  # no text: fails
    res = cli("record", "reports", str(tmp_path / "in" / "*.csv"), "--engine", "dask",
              "--scheduler", dask_cluster.scheduler_address)  # fmt: skip
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].startswith("gridmap: error: dask run failed, nothing stored")
    assert stored(engine, "report") == ([], 0)


def intake(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT source, external_id, text, reported_at, micro_code, ST_AsText(geom), attrs FROM report "
                "ORDER BY id"
            )
        ).all()
    return [tuple(r) for r in rows]


def test_record_reports_on_dask_is_the_single_process_intake(city, engine, cli, tmp_path, dask_cluster):
    """Ids, own times, rejects (a repeated id across two files, no text, an unreadable time) and a
    re-run that changes nothing: the same rows stored, the same rejects file, the same summary."""
    frame = points_frame(n_random=400, seed=7).assign(text=lambda f: "积水 " + f["id"], reported_at="2026-11-28 09:30")
    frame.loc[5, "text"] = ""
    frame.loc[9, "reported_at"] = "昨天下午"
    frame.loc[300, "id"] = frame.loc[12, "id"]  # the same id in the second file
    frame.loc[301, "id"] = frame.loc[302, "id"]  # and twice within it
    (tmp_path / "in").mkdir()
    frame.iloc[:200].to_csv(tmp_path / "in" / "a.csv", index=False)
    frame.iloc[200:].to_csv(tmp_path / "in" / "b.csv", index=False)
    frame.to_csv(tmp_path / "all.csv", index=False)
    res = cli("record", "reports", tmp_path / "all.csv", "--rejects", tmp_path / "single.rejected.csv")
    assert res.exit_code == 1, res.output
    single_line, single = res.output.strip().splitlines()[-1], intake(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE report RESTART IDENTITY CASCADE"))
    args = ["--engine", "dask", "--scheduler", dask_cluster.scheduler_address]
    res = cli("record", "reports", str(tmp_path / "in" / "*.csv"), *args)
    assert res.exit_code == 1, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.split(" -> ")[0] == single_line.split(" -> ")[0]
    stored_n = len(frame) - 4
    assert "4 rejected" in line and f"{stored_n} new" in line
    assert intake(engine) == single
    rejects = tmp_path / "in.rejected.csv"  # beside the folder the glob reads, not in it
    expect = pd.read_csv(tmp_path / "single.rejected.csv", dtype=str, keep_default_na=False)
    assert pd.read_csv(rejects, dtype=str, keep_default_na=False).equals(expect)
    assert list(expect["gridmap_error"])[2:] == [
        f"duplicate id {frame.loc[12, 'id']} (also row 13)",
        f"duplicate id {frame.loc[302, 'id']} (also row 302)",
    ]
    # a re-run stores nothing new and says so
    res = cli("record", "reports", str(tmp_path / "in" / "*.csv"), *args, "--rejects", tmp_path / "again.csv")
    assert f"0 new, 0 updated, {stored_n} unchanged" in res.output
    assert len(intake(engine)) == stored_n and stored(engine, "report")[1] == 0


def test_record_residents_on_dask_stores_the_single_process_rows(city, engine, cli, tmp_path, dask_cluster):
    yard = f"测试{Y1[8:12]}1花园"
    addresses = [f"{yard}1号楼2单元", f"{yard}1号楼1单元", "不存在小区9号楼", f"{yard}1号楼"] * 30
    frame = pd.DataFrame({"name": [f"住户{i}" for i in range(len(addresses))], "address": addresses})
    frame.to_csv(tmp_path / "all.csv", index=False)
    (tmp_path / "in").mkdir()
    frame.iloc[:50].to_csv(tmp_path / "in" / "a.csv", index=False)
    frame.iloc[50:].to_csv(tmp_path / "in" / "b.csv", index=False)
    res = cli("record", "residents", tmp_path / "all.csv", "--address-col", "address")
    assert res.exit_code == 0, res.output
    single_line, (single, _) = res.output.strip().splitlines()[-1], stored(engine, "resident")
    assert {r[2] for r in single} > {None} and None in {r[4] for r in single}  # placed ones and one not
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE resident RESTART IDENTITY CASCADE"))
    res = cli("record", "residents", str(tmp_path / "in" / "*.csv"), "--address-col", "address",
              "--engine", "dask", "--scheduler", dask_cluster.scheduler_address)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == single_line
    assert stored(engine, "resident") == (single, 0)
