"""Issue #16: the lookup index persisted per version set, updated per edit, nearest grid in metres;
issue #17: ``at=`` resolved to the versions in force."""

import copy
import os
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lookup import Y1, lonlat, replace_micro

from gridmap import geo
from gridmap.domain.index_update import updated
from gridmap.domain.lookup import GridIndex
from gridmap.domain.nearest import Nearest
from gridmap.services import locator as lookups
from gridmap.store import db, index_files
from gridmap.store import grids as store

import cityfactory as cf


@pytest.fixture
def city(engine, cli, tmp_path):
    (tmp_path / "city").mkdir()
    cf.load(cli, cf.city(), tmp_path / "city")
    return engine


def move_boundary(cli, tmp_path, y):
    """Move the edge between micro-grids Y1 01 and 02 to ``y`` metres (a committed change)."""
    rows = cf.city()
    m1, m2 = cf.find(rows, "micro", Y1 + "01"), cf.find(rows, "micro", Y1 + "02")
    m1["geometry"], m2["geometry"] = cf.rect(0, 0, 1000, y), cf.rect(0, y, 1000, 2000)
    replace_micro(cli, tmp_path, [m1, m2], name=f"moved{y}")


def test_index_persisted_and_reused_by_another_process(city, tmp_path):
    home = tmp_path / "home"
    first = lookups.Locator(city, home=home)
    assert first.lookup(*lonlat(500, 1100))["micro"] == Y1 + "02"
    assert first.index().source == "built"
    folders = [p.name for p in (home / "index").iterdir()]
    assert len(folders) == 1 and not folders[0].startswith(".")
    # a new locator (another process: nothing shared in memory) loads it instead of building
    second = lookups.Locator(city, home=home)
    assert second.lookup(*lonlat(500, 1100))["micro"] == Y1 + "02"
    index = second.index()
    assert index.source == "disk" and index.key == folders[0]
    assert isinstance(index.cells, np.memmap)  # mapped, not read into the process


def test_the_version_digest_names_the_versions_and_reads_an_index(city, cli, tmp_path):
    """The key of a persisted index: the same for the same versions however they are asked for (now,
    or an instant after the last edit), another after an edit; read by an index-only scan of the
    current versions (migration 0020), not a scan of the grids and their geometry."""
    # the table's pages marked all-visible (as autovacuum leaves a city) and, below, the scans of
    # every row priced out, as on a city of 68,000 grids where they cost what the index spares
    with city.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM grid"))
    with city.connect() as conn:
        before = store.version_digest(conn)
        assert store.version_digest(conn, datetime.now(UTC)) == before
        for way in ("seqscan", "bitmapscan"):
            conn.execute(sa.text(f"SET LOCAL enable_{way} = off"))
        plan = "\n".join(
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT count(*), bit_xor(hashint8extended(id, 0) "
                    "# timestamp_hash_extended(valid_from AT TIME ZONE 'UTC', id)) FROM grid WHERE valid_to IS NULL"
                )
            ).scalars()
        )
    assert "Index Only Scan using ix_grid_current_version" in plan, plan
    move_boundary(cli, tmp_path, 1200)
    with city.connect() as conn:
        after = store.version_digest(conn)
        assert after != before and store.version_digest(conn, datetime.now(UTC)) == after
        (earlier,) = conn.execute(sa.text("SELECT max(valid_to) - interval '1 microsecond' FROM grid")).one()
        assert store.version_digest(conn, earlier) == before


def test_persisted_index_updated_after_an_edit_never_used_stale(city, cli, tmp_path):
    home = tmp_path / "home"
    lookups.Locator(city, home=home).index()
    move_boundary(cli, tmp_path, 1200)
    # the persisted index is of the old grids: a new process updates it from the change log
    fresh = lookups.Locator(city, home=home)
    assert fresh.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01"
    assert fresh.index().source == "updated"
    assert len(list((home / "index").iterdir())) == 2  # the new version set persisted too
    again = lookups.Locator(city, home=home)
    assert again.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01" and again.index().source == "disk"


def test_persisted_index_of_an_emptied_database_is_not_trusted(city, cli, engine, tmp_path):
    home = tmp_path / "home"
    lookups.Locator(city, home=home).index()
    # empty the database and load another city: ids restart, the change log is gone
    with engine.begin() as conn:
        db.truncate_all(conn)
    rows = cf.city()
    m1, m2 = cf.find(rows, "micro", Y1 + "01"), cf.find(rows, "micro", Y1 + "02")
    m1["geometry"], m2["geometry"] = cf.rect(0, 0, 1000, 1300), cf.rect(0, 1300, 1000, 2000)
    (tmp_path / "other").mkdir()
    cf.load(cli, rows, tmp_path / "other")
    fresh = lookups.Locator(city, home=home)
    assert fresh.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01"
    assert fresh.index().source == "built"


def test_damaged_persisted_index_is_rebuilt(city, tmp_path):
    home = tmp_path / "home"
    key = lookups.Locator(city, home=home).index().key
    (home / "index" / key / "meta.json").write_text("{not json")
    fresh = lookups.Locator(city, home=home)
    assert fresh.lookup(*lonlat(500, 1100))["micro"] == Y1 + "02" and fresh.index().source == "built"


def test_server_locator_updates_in_place_after_each_edit(city, cli, tmp_path):
    locator = lookups.Locator(city, home=tmp_path / "home", background=True)
    assert locator.lookup(*lonlat(500, 1100))["micro"] == Y1 + "02"
    for y in (1200, 900, 1150):
        move_boundary(cli, tmp_path, y)
        assert locator.lookup(*lonlat(500, 1100))["micro"] == (Y1 + "01" if y > 1100 else Y1 + "02")
        assert locator.index().source == "updated"
        assert locator.lookup(*lonlat(500, 800))["micro"] == Y1 + "01"


def test_a_server_answers_away_from_an_edit_while_its_update_runs(city, cli, tmp_path, monkeypatch):
    """After a commit, a server's lookup of a point outside the changed grids answers from the index it
    holds at once (the update runs in a thread of its own); a point the edit moved answers with its new
    grid and that grid's people as soon as the update has read the change, before the update is in
    force (a patch: the old index and the new outlines); a point outside every grid waits for the
    update.  The updated index keeps the people of the grids the edit left alone and reads those of
    the changed ones (before, every lookup after an edit read its grid's people, and a batch re-read
    the whole city's)."""
    import threading

    roster = pd.DataFrame(
        [
            {"网格编码": Y1 + "01", "职务": "网格员", "姓名": "张伟", "电话": "13812345678"},
            {"网格编码": "41019900200200202", "职务": "网格员", "姓名": "王芳", "电话": "13812345679"},
        ]
    )
    roster.to_csv(tmp_path / "roster.csv", index=False)
    assert cli("people", "import", tmp_path / "roster.csv").exit_code == 0
    locator = lookups.Locator(city, home=tmp_path / "home", background=True)
    locator.warm()
    far = locator.lookup(*lonlat(3500, 3500))
    assert far["micro"] == "41019900200200202" and far["people"][0]["name"] == "王芳"
    release = threading.Event()
    real = lookups.updated

    def held_update(*args, **kwargs):  # the real update, held until the test lets it go
        moved["nice"] = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's
        release.wait(30)
        return real(*args, **kwargs)

    real_patch = lookups.index_update.patch

    def patch_seen(*args, **kwargs):  # the real patch, its thread's priority noted
        moved["patch nice"] = os.getpriority(os.PRIO_PROCESS, 0)
        return real_patch(*args, **kwargs)

    monkeypatch.setattr(lookups, "updated", held_update)
    monkeypatch.setattr(lookups.index_update, "patch", patch_seen)
    moved = {}
    move_boundary(cli, tmp_path, 1200)
    started = time.monotonic()
    assert locator.lookup(*lonlat(3500, 3500))["micro"] == far["micro"]  # not waiting for the update
    assert time.monotonic() - started < 5 and locator._current.epoch < locator.epoch()
    # a point outside every grid waits: its nearest grid may be one the edit moved
    outside = threading.Thread(target=lambda: moved.update(outside=locator.lookup(*lonlat(-300, 1100))))
    outside.start()
    outside.join(0.5)
    assert outside.is_alive()
    early = locator.lookup(*lonlat(500, 1100))  # the moved point: from the patch, the update held
    assert early["micro"] == Y1 + "01" and early["people"][0]["name"] == "张伟"
    assert early["chain"][-1] == {"level": "micro", "code": Y1 + "01", "name": early["chain"][-1]["name"]}
    assert locator._current.epoch < locator.epoch() and outside.is_alive()
    release.set()
    outside.join(30)
    after = locator.lookup(*lonlat(500, 1100))
    assert {k: v for k, v in after.items() if k != "at"} == {k: v for k, v in early.items() if k != "at"}
    assert moved["outside"]["nearest"]["code"] == Y1 + "01"
    index = locator.index()
    assert index.source == "updated" and index.people_loaded
    assert index.people["41019900200200202"][0]["name"] == "王芳"
    # what the moved point waited for (the change read, the patch) ran at the usual priority, the rest
    # of the update at the lowest, in its own thread only: the lookups' threads keep theirs
    assert moved["patch nice"] == os.getpriority(os.PRIO_PROCESS, 0) != lookups.BACKGROUND_NICE
    assert moved["nice"] == lookups.BACKGROUND_NICE


def test_people_after_an_edit_lie_over_the_citys_not_copied():
    """An update keeps the city's people as they are and lays the changed grids' over them (a copy of
    the city's 46,000 grids at each edit cost each server worker a pause of the cyclic collector); a
    grid whose people the edit removed has none; past PEOPLE_OVERLAY changed grids, one dict again."""
    city = {"A": [{"name": "甲"}], "B": [{"name": "乙"}], "C": [{"name": "丙"}]}
    after = lookups.people_after(city, {"B", "D"}, {"D": [{"name": "丁"}]})
    assert isinstance(after, lookups.LayeredPeople) and after.city is city
    assert after.get("A") == [{"name": "甲"}] and after.get("B", []) == [] and after["D"] == [{"name": "丁"}]
    assert after.get("E") is None and "E" not in after and sorted(after) == ["A", "B", "C", "D"]
    again = lookups.people_after(after, {"A"}, {})
    assert isinstance(again, lookups.LayeredPeople) and again.city is city
    assert again.get("A", []) == [] and again["D"] == [{"name": "丁"}] and again["C"] == [{"name": "丙"}]
    assert city == {"A": [{"name": "甲"}], "B": [{"name": "乙"}], "C": [{"name": "丙"}]}  # never written to
    merged = lookups.people_after(again, {f"X{i}" for i in range(lookups.PEOPLE_OVERLAY)}, {})
    assert type(merged) is dict and merged == {"C": [{"name": "丙"}], "D": [{"name": "丁"}]}


def test_a_server_worker_imports_what_an_update_needs_before_the_first_edit(city, tmp_path):
    """scipy.ndimage's first import (~0.4 s with the interpreter held) fell on each server worker's
    first edit; a worker's warm-up makes it, a command loading a persisted index still does not.  The
    same for pandas, loaded at first use: a one-point lookup never loads it (0.4 s of a fresh
    command's start), a worker loads it before its threads could reach it at once."""
    import subprocess
    import sys

    url = city.url.render_as_string(hide_password=False)
    probe = (
        "import sys; from pathlib import Path; from gridmap.store import db; "
        "from gridmap.services.locator import Locator; "
        f"loc = Locator(db.engine({url!r}), home=Path({str(tmp_path / 'home')!r}), "
        "background=sys.argv[1] == 'server'); "
        "loc.warm() if sys.argv[1] == 'server' else loc.index(); "
        f"assert loc.lookup{lonlat(500, 1100)}['micro'] == {Y1 + '02'!r}; "
        "print(loc.index().source, 'scipy.ndimage' in sys.modules, type(sys.modules['pandas']).__name__)"
    )

    def run(kind):
        done = subprocess.run([sys.executable, "-c", probe, kind], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    run("command")  # builds and persists the index
    assert run("command") == ["disk", "False", "_LazyModule"]
    assert run("server") == ["disk", "True", "module"]


def test_the_command_leaves_without_teardown_and_loses_nothing(city, cli, tmp_path):
    """The ``gridmap`` script ends its process once the command is done (gridmap.cli.run: Python's
    teardown was ~0.12 s of a one-point lookup): the answer is whole through a pipe and the same as
    in-process, exit codes and the one-line error are kept, functions registered with atexit run."""
    import importlib.metadata
    import json
    import subprocess
    import sys

    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": city.url.render_as_string(hide_password=False),
        "GRIDMAP_HOME": str(tmp_path / "home"),
    }

    def gridmap(*args, prelude=""):
        code = f"import sys; sys.argv = ['gridmap', *sys.argv[1:]]; {prelude}from gridmap.cli import run; run()"
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=120
        )

    lon, lat = lonlat(500, 1100)
    done = gridmap("lookup", lon, lat)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["micro"] == Y1 + "02" and body == json.loads(cli("lookup", lon, lat).output)
    bad = gridmap("lookup", lon, "north")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["gridmap: error: lat must be a number, got 'north'"]
    said = gridmap("--version", prelude="import atexit; atexit.register(lambda: print('atexit ran')); ")
    version = f"gridmap, version {importlib.metadata.version('gridmap')}"
    assert said.returncode == 0 and said.stdout.splitlines()[-2:] == [version, "atexit ran"]


def test_the_leader_persists_the_index_after_edits_and_the_workers_never_do(city, cli, tmp_path, monkeypatch):
    """A serving worker updates its index in memory only; the leader's "index-persist" job brings the
    newest index on disk up to date and saves it once the edits pause (or, while they go on, at most
    every PERSIST_WHILE_EDITING seconds), so a worker starting after the edit loads it."""
    from gridmap.services import background

    home = tmp_path / "home"
    server = lookups.Locator(city, home=home, background=True)
    server.warm()  # a worker's start: built and persisted
    job = background._index_persister(city, home)
    assert job() == "" and job() == ""  # the first run notes the epoch; then nothing moved
    move_boundary(cli, tmp_path, 1200)
    assert server.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01"
    while server._refreshing:
        time.sleep(0.01)
    assert server.index().source == "updated"
    assert len(list((home / "index").iterdir())) == 1  # the worker wrote nothing
    assert job() == ""  # the epoch moved since the last run: edits may be under way
    assert len(list((home / "index").iterdir())) == 1
    assert job().startswith("index of epoch ")  # it stood still for a whole interval
    assert len(list((home / "index").iterdir())) == 2
    fresh = lookups.Locator(city, home=home)  # a worker starting now
    assert fresh.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01" and fresh.index().source == "disk"
    assert job() == ""
    monkeypatch.setattr(background, "PERSIST_WHILE_EDITING", 0.0)  # edits that never pause
    move_boundary(cli, tmp_path, 1100)
    assert job().startswith("index of epoch ") and len(list((home / "index").iterdir())) == 3


def test_updated_index_answers_with_the_new_names(city, cli, tmp_path):
    """The chains an index has answered are not carried into the index updated from it."""
    locator = lookups.Locator(city, home=tmp_path / "home", background=True)
    before = locator.lookup(*lonlat(500, 500))["chain"]
    assert before[-1]["code"] == Y1 + "01"
    rows = cf.city()
    m1 = cf.find(rows, "micro", Y1 + "01")
    m1["name"] = "新一号网格"
    replace_micro(cli, tmp_path, [m1], name="renamed")
    after = locator.lookup(*lonlat(500, 500))["chain"]
    assert locator.index().source == "updated"
    assert after[-1] == {"level": "micro", "code": Y1 + "01", "name": "新一号网格"}
    assert after[:-1] == before[:-1]


def test_at_shares_one_index_per_version_set(city, cli, tmp_path):
    locator = lookups.Locator(city)
    time.sleep(0.01)
    before = datetime.now(UTC)
    time.sleep(0.01)
    move_boundary(cli, tmp_path, 1200)
    old = locator.index(before)
    # another way of writing a moment in the same interval: the same index, not another build
    assert locator.index(before + timedelta(microseconds=3)) is old
    assert locator.index(before.astimezone(geo_zone())) is old
    assert locator.lookup(*lonlat(500, 1100), at=before)["micro"] == Y1 + "02"
    # on or after the last change: the current index
    assert locator.index(datetime.now(UTC) + timedelta(days=365)) is locator.index()
    # before the first grid existed: no grids
    assert locator.lookup(*lonlat(500, 1100), at=datetime(2000, 1, 1, tzinfo=UTC))["inside"] is False


def geo_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def test_nearest_known_case_in_metres(city):
    locator = lookups.Locator(city)
    index = locator.index()
    # a point west of the city and one south-west of its corner, measured independently in EPSG:4547
    for x, y in ((-500, 300), (-300, -400)):
        lon, lat = lonlat(x, y)
        body = locator.lookup(lon, lat)
        micro = index.micro_geom[np.flatnonzero(index.code[index.micro] == Y1 + "01")[0]]
        expected = shapely.distance(geo.to_metric([shapely.Point(lon, lat)])[0], geo.to_metric([micro])[0])
        assert body["nearest"] == {"code": Y1 + "01", "name": f"{Y1}01网格", "distance_m": round(expected, 1)}
        assert 400 < expected < 600


def demo_outside(demo_url, seed: int, n: int):
    """The demo city's index and the points of ``n`` uniform over its bounds (plus 0.05 degrees) that
    lie outside every micro-grid."""
    with db.engine(demo_url).connect() as conn:
        index = GridIndex(store.index_frame(conn))
    x0, y0, x1, y1 = shapely.total_bounds(index.micro_geom)
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(x0 - 0.05, x1 + 0.05, n), rng.uniform(y0 - 0.05, y1 + 0.05, n)
    out = index.locate(x, y).micro < 0
    return index, x[out], y[out]


def test_nearest_equals_exact_distance_on_demo_city(demo_url):
    index, x, y = demo_outside(demo_url, 3, 20_000)
    number, dist = index.nearest(x, y)
    metric = geo.to_metric(index.micro_geom)
    pts = geo.to_metric(shapely.points(x, y))
    (p, g), d = shapely.STRtree(metric).query_nearest(pts, all_matches=True, return_distance=True)
    best = np.full(len(x), np.iinfo(np.int64).max)
    np.minimum.at(best, p, g)  # ties: lowest code
    assert len(x) > 1000
    assert np.array_equal(number, best)
    assert np.allclose(dist, shapely.distance(pts, metric[best]), rtol=0, atol=1e-6)


def test_nearest_is_the_same_however_many_distances_are_taken_at_once(demo_url, monkeypatch):
    """The exact distances are computed a few thousand points at a time (whole points per chunk, so a
    point's lowest-code winner is final); the answer does not depend on the chunk size."""
    from gridmap.domain import nearest

    index, x, y = demo_outside(demo_url, 5, 5_000)
    near = index.nearest_index()
    monkeypatch.setattr(nearest, "SEGMENTS_AT_ONCE", 10**12)
    whole = near.query(x, y)
    assert len(x) > 500 and (whole[0] >= 0).all()
    for bound in (1, 97, 5_000):
        monkeypatch.setattr(nearest, "SEGMENTS_AT_ONCE", bound)
        number, dist = near.query(x, y)
        assert np.array_equal(number, whole[0]) and np.array_equal(dist, whole[1])


def test_nearest_drops_edges_shared_through_t_junctions():
    # two squares side by side; the right one's shared edge has an extra vertex (a T-junction)
    left = shapely.Polygon([(113.0, 34.0), (113.01, 34.0), (113.01, 34.01), (113.0, 34.01)])
    right = shapely.Polygon([(113.01, 34.0), (113.02, 34.0), (113.02, 34.01), (113.01, 34.01), (113.01, 34.005)])
    near = Nearest(np.array([left, right], dtype=object))
    assert len(near.owner) == 6  # three outer edges each: the shared edge and its two halves dropped
    number, dist = near.query(np.array([113.005, 113.03]), np.array([34.02, 34.005]))
    assert list(number) == [0, 1]


# --- incremental == rebuilt --------------------------------------------------------------------

EDITS = st.lists(
    st.tuples(
        st.sampled_from(["shrink", "grow", "delete", "shift", "rename", "special"]),
        st.integers(min_value=0, max_value=10_000),
        st.floats(min_value=0.1, max_value=0.9),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture(scope="module")
def demo_frame(demo_url):
    with db.engine(demo_url).connect() as conn:
        return store.index_frame(conn)


def _multi(geom):
    """``geom`` as a MultiPolygon, however many parts it has (shrinking a narrow grid splits it)."""
    return shapely.MultiPolygon([part for part in shapely.get_parts(geom) if not part.is_empty])


def apply_edit(frame, edit, serial):
    """A new frame with one random edit applied; returns (frame, changed codes)."""
    kind, pick, share = edit
    frame = frame.copy()
    micro = np.flatnonzero(frame["level"].to_numpy() == "micro")
    row = micro[pick % len(micro)]
    code = frame.at[row, "code"]
    geom = frame.at[row, "geometry"]
    if kind == "shrink":  # a gap appears
        frame.at[row, "geometry"] = _multi(shapely.box(*geom.bounds).intersection(geom).buffer(-share * 2e-4))
    elif kind == "grow":  # overlaps its neighbours (lowest code wins there)
        frame.at[row, "geometry"] = _multi(geom.convex_hull.buffer(share * 3e-4))
    elif kind == "delete":
        frame = frame.drop(index=row).reset_index(drop=True)
    elif kind == "shift":
        frame.at[row, "geometry"] = shapely.affinity.translate(geom, share * 5e-4, -share * 3e-4)
    elif kind == "rename":  # names and parents only: no geometry work
        frame.at[row, "name"] = f"改名{serial}"
    else:  # a new special grid in this micro-grid's courtyard
        new = {
            "id": 10_000_000 + serial,
            "code": f"{code[:12]}S{90 + serial % 10:02d}",
            "name": "新市场",
            "level": "special",
            "parent_code": code[:12],
            "geometry": _multi(geom.centroid.buffer(share * 1e-4)),
        }
        frame = frame.loc[frame["code"] != new["code"]]
        frame = pd.concat([frame, pd.DataFrame([new])], ignore_index=True)
        code = new["code"]
    return frame, {code}


def answers(index, x, y):
    found = index.locate(x, y)
    codes = np.where(found.micro >= 0, index.code[index.micro[np.maximum(found.micro, 0)]], None)
    rows = index.chain_rows(found.micro)
    chain = {lv: np.where(r >= 0, index.code[np.maximum(r, 0)], None) for lv, r in rows.items()}
    names = np.where(found.micro >= 0, index.name[index.micro[np.maximum(found.micro, 0)]], None)
    specials = sorted(zip(found.special_points.tolist(), index.code[index.special[found.special_ids]].tolist()))
    return codes, chain, names, specials


@settings(
    max_examples=int(os.environ.get("GRIDMAP_TEST_EXAMPLES", "5")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(edits=EDITS, loaded=st.booleans())
def test_incremental_update_equals_rebuild(demo_frame, edits, loaded):
    base = GridIndex(demo_frame, epoch=1)
    base.nearest_index()  # found once: every update brings its outer segments along (Nearest.updated)
    if loaded:  # as a server's worker holds it: from the persisted form, its grids still WKB
        base = GridIndex.from_state(*base.state())
    frame, index, changed = demo_frame, base, set()
    for serial, edit in enumerate(edits):
        frame, codes = apply_edit(frame, edit, serial)
        rows = frame[frame["code"].isin(codes)]
        index = updated(index, rows, codes, epoch=serial + 2) or GridIndex(frame, epoch=serial + 2)
        changed |= codes
    rebuilt = GridIndex(frame, epoch=index.epoch)
    # the same cells wherever both grids lie (labels compared as codes)
    assert (index.x0, index.y0, index.dx, index.dy) == (rebuilt.x0, rebuilt.y0, rebuilt.dx, rebuilt.dy)
    if index.cells.shape == rebuilt.cells.shape:

        def as_codes(ix):
            cells = ix.cells.astype(np.int64)
            cells[cells >= 65_534] -= 65_536
            return np.where(cells >= 0, ix.code[ix.micro[np.maximum(cells, 0)]], cells.astype(str))

        assert np.array_equal(as_codes(index), as_codes(rebuilt))
        assert np.array_equal(index.mixed_cells, rebuilt.mixed_cells)
        assert np.array_equal(index.code[index.micro[index.cand]], rebuilt.code[rebuilt.micro[rebuilt.cand]])
    # the same answers: random points, and every vertex of the edited grids
    rng = np.random.default_rng(len(edits))
    x0, y0, x1, y1 = shapely.total_bounds(base.micro_geom)
    x, y = rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)
    edited = frame[frame["code"].isin(changed)]["geometry"].dropna().to_numpy()
    if len(edited):
        verts = shapely.get_coordinates(np.asarray(edited, dtype=object))
        x, y = np.concatenate([x, verts[:, 0]]), np.concatenate([y, verts[:, 1]])
    ours, theirs = answers(index, x, y), answers(rebuilt, x, y)
    assert np.array_equal(ours[0], theirs[0])
    for level in ours[1]:
        assert np.array_equal(ours[1][level], theirs[1][level])
    assert np.array_equal(ours[2], theirs[2]) and ours[3] == theirs[3]
    out = ours[0] == None  # noqa: E711
    # brought along (found at first use from the base's, see nearest_index), never found afresh
    assert index._nearest is not None or index._nearest_pending is not None or index.source != "updated"
    if index.nearest_index().levels:  # its blocks as walking every segment again makes them
        near = index.nearest_index()
        again = copy.copy(near)
        ny, nx = near.levels[0].shape[1:]
        blocks = again._bucket(nx, ny)
        assert np.array_equal(again.seg, near.seg) and np.array_equal(again._starts(blocks, nx, ny), near.start)
        again._index_blocks(blocks, nx, ny)
        # each block's first bound comes from an occupied block (the nearest when found afresh; one
        # kept from before an edit while it stays occupied)
        occupied = near.start[1:] > near.start[:-1]
        assert occupied[near.near_y.astype(np.int64) * nx + near.near_x].all()
        assert occupied[again.near_y.astype(np.int64) * nx + again.near_x].all()
        assert len(again.levels) == len(near.levels)
        assert all(np.array_equal(a, b) for a, b in zip(again.levels, near.levels, strict=True))
    a, b = index.nearest(x[out][:500], y[out][:500]), rebuilt.nearest(x[out][:500], y[out][:500])
    assert np.array_equal(index.code[index.micro[a[0]]], rebuilt.code[rebuilt.micro[b[0]]])
    assert np.allclose(a[1], b[1], rtol=0, atol=1e-9)


def _moved_between_neighbours(frame, share):
    """``frame`` with the edge between the first two neighbouring micro-grids of one courtyard moved
    to ``share`` of their union's width (a planner's boundary move); (frame, changed codes)."""
    micro = frame[frame["level"] == "micro"].sort_values("code")
    geoms = micro["geometry"].to_numpy()
    tree = shapely.STRtree(geoms)
    for i, j in zip(*tree.query(geoms, predicate="touches"), strict=True):
        a, b = micro.iloc[i], micro.iloc[j]
        if i < j and a["parent_code"] == b["parent_code"] and shapely.length(a.geometry.intersection(b.geometry)) > 0:
            break
    union = shapely.union(a.geometry, b.geometry)
    x0, y0, x1, y1 = union.bounds
    first = union.intersection(shapely.box(x0 - 1, y0 - 1, x0 + (x1 - x0) * share, y1 + 1))
    frame = frame.copy()
    frame.loc[frame["code"] == a["code"], "geometry"] = [_multi(first)]
    frame.loc[frame["code"] == b["code"], "geometry"] = [_multi(union.difference(first))]
    return frame, {a["code"], b["code"]}


@pytest.mark.parametrize("edit", ["move", "shrink", "grow", "shift"])
def test_a_patch_answers_as_the_updated_index_before_the_update(demo_frame, edit):
    """While a server's update runs, a lookup in the edit's box answers from a patch (the old index and
    the changed grids' new outlines): exactly what the updated index answers (the lowest-numbered grid
    covering the point), on random points in the box and on every vertex of the old and new outlines;
    a point no grid covers is left to the update."""
    from gridmap.domain import index_update

    base = GridIndex(demo_frame, epoch=1)
    if edit == "move":
        frame, codes = _moved_between_neighbours(demo_frame, 0.45)
    else:
        frame, codes = apply_edit(demo_frame, (edit, 7, 0.6), 0)
    rows = frame[frame["code"].isin(codes)]
    early = index_update.patch(base, rows, codes, epoch=2)
    index = updated(base, rows, codes, epoch=2)
    assert early is not None and index is not None
    old = demo_frame[demo_frame["code"].isin(codes)]["geometry"].to_numpy()
    outlines = np.concatenate([old, rows["geometry"].to_numpy()])
    x0, y0, x1, y1 = shapely.total_bounds(outlines)
    rng = np.random.default_rng(5)
    verts = shapely.get_coordinates(outlines)
    x = np.concatenate([rng.uniform(x0, x1, 3000), verts[:, 0]])
    y = np.concatenate([rng.uniform(y0, y1, 3000), verts[:, 1]])
    answered = inside = 0
    for a, b in zip(x.tolist(), y.tolist()):
        ours, theirs = early.answer_one(a, b), index.answer_one(a, b)
        inside += theirs["inside"]
        if ours is not None:
            answered += 1
            assert ours == theirs
    assert answered >= 0.9 * inside > 0
    # anything more than outlines moving is left to the update
    for other in ("rename", "delete", "special"):
        frame, codes = apply_edit(demo_frame, (other, 7, 0.6), 1)
        assert index_update.patch(base, frame[frame["code"].isin(codes)], codes, epoch=2) is None


def test_an_update_of_a_loaded_index_decodes_only_the_grids_near_the_edit(demo_frame):
    """A server worker's index comes from disk with its grids as WKB; an edit's update decodes the
    grids around the edit, not the city's (that took a worker ~0.5 s at city scale, on the first edit),
    and answers as a rebuilt index does."""
    built = GridIndex(demo_frame, epoch=1)
    loaded = GridIndex.from_state(*built.state())
    frame, codes = apply_edit(demo_frame, ("shift", 7, 0.5), 0)
    index = updated(loaded, frame[frame["code"].isin(codes)], codes, epoch=2)
    assert index is not None and index.source == "updated"
    decoded = int((~shapely.is_missing(index._micro_geom)).sum())
    assert 0 < decoded < len(index.micro) // 10, (decoded, len(index.micro))
    rebuilt = GridIndex(frame, epoch=2)
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = shapely.total_bounds(built.micro_geom)
    x, y = rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)
    ours, theirs = answers(index, x, y), answers(rebuilt, x, y)
    assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[2], theirs[2])
    assert index.nearest_index() is not None and index._nearest_pending is None  # brought along on first use
    out = ours[0] == None  # noqa: E711
    a, b = index.nearest(x[out][:300], y[out][:300]), rebuilt.nearest(x[out][:300], y[out][:300])
    assert np.array_equal(index.code[index.micro[a[0]]], rebuilt.code[rebuilt.micro[b[0]]])


def test_index_files_written_atomically_and_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(index_files, "KEEP", 2)
    for i in range(4):
        index_files.save(tmp_path, f"k{i}", {"epoch": i, "current": True, "database": "d"}, {"a": np.arange(3)})
        time.sleep(0.01)
    names = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert names == ["k2", "k3"]  # no temporary folder left, the oldest pruned
    meta, arrays = index_files.load(tmp_path, "k3")
    assert meta["epoch"] == 3 and list(arrays["a"]) == [0, 1, 2]
    assert index_files.latest(tmp_path, "d")[0] == "k3" and index_files.latest(tmp_path, "other") is None
    assert index_files.load(tmp_path, "missing") is None


def test_a_server_learns_new_epochs_from_announcements_and_queries_when_it_cannot(city, cli, tmp_path):
    """A server's locator takes the epoch from PostgreSQL's announcements (no query per lookup); when
    its listening connection is cut it answers by query, then listens again; a periodic read on the
    listening connection corrects an epoch whose announcement never came."""
    url = city.url.set(drivername="postgresql").render_as_string(hide_password=False)
    watch = lookups.EpochWatch(url, retry_s=0.2, confirm_s=3600)
    with city.connect() as conn:
        start = store.epoch(conn)
    assert watch.current() == start
    move_boundary(cli, tmp_path, 1200)  # another process commits: announced at its commit
    with city.connect() as conn:
        after = store.epoch(conn)
    assert after > start and watch.current() == after
    with city.begin() as conn:  # cut the listening connection from the server side
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": watch._conn.info.backend_pid})
    time.sleep(0.1)
    seen = [watch.current() for _ in range(3)]  # psycopg reads the goodbye first, then finds it closed
    assert seen[-1] is None and set(seen) <= {after, None}  # down: the caller queries
    assert watch.current() is None  # and does not reconnect at every lookup
    time.sleep(0.25)
    assert watch.current() == after  # listening again
    # an epoch moved without an announcement, by a connection outside this process's SQLAlchemy
    # engines (as another process's would be): not seen before the next confirmation
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("UPDATE grid_epoch SET epoch = epoch + 5 WHERE id = 1")
    assert watch.current() == after
    watch.confirm_s = 0
    assert watch.current() == after + 5
    locator = lookups.Locator(city, home=tmp_path / "home", background=True)
    assert locator.epoch() == after + 5 and locator._watch is not None
    assert lookups.Locator(city, home=tmp_path / "home")._watch is None  # a command queries
    with city.begin() as conn:  # a commit of this process: read at once, not left to the announcement
        conn.execute(sa.text("UPDATE grid_epoch SET epoch = epoch + 1 WHERE id = 1"))
    assert watch.current() == after + 6


def test_each_epoch_is_announced_with_the_box_of_what_it_changed(city, cli, tmp_path):
    """Migration 0018: with each grid epoch PostgreSQL announces the lon/lat box of the rows the
    statement touched, old versions and new; a statement touching no grid (no row, or a building's)
    announces nothing changed; one touching a grid above the micro-grids announces no box, nor does
    an epoch moved otherwise (a server then waits for its update, as before)."""
    url = city.url.set(drivername="postgresql").render_as_string(hide_password=False)
    watch = lookups.EpochWatch(url, retry_s=0.2, confirm_s=3600)
    start = watch.current()
    move_boundary(cli, tmp_path, 1200)
    after = watch.current()
    box = watch.box(start, after)
    assert after > start and box is not None
    # the two micro-grids' old and new outlines: the courtyard x 0..1000, y 0..2000, and no more
    for x, y in ((1, 1), (999, 1999), (500, 1100)):
        assert lookups._within(lonlat(x, y), box)
    for x, y in ((1010, 1000), (500, 2010), (3500, 3500)):
        assert not lookups._within(lonlat(x, y), box)
    assert watch.box(after, after) == store.NO_CHANGE
    with city.begin() as conn:  # a statement that touched no row: an epoch that changed nothing
        conn.execute(sa.text("UPDATE grid SET name = name WHERE false"))
    assert watch.current() == after + 1 and watch.box(after, after + 1) == store.NO_CHANGE
    assert watch.box(start, after + 1) == box
    with city.begin() as conn:  # a street renamed: every chain below it changed, no box says where
        conn.execute(sa.text("UPDATE grid SET name = name || '街' WHERE level = 'street' AND valid_to IS NULL"))
    assert watch.current() == after + 2 and watch.box(after, after + 2) is None
    with city.begin() as conn:  # an epoch announced without a box (as a building's write is)
        conn.execute(sa.text("UPDATE grid_epoch SET epoch = epoch + 1 WHERE id = 1"))
    assert watch.current() == after + 3 and watch.box(after + 2, after + 3) is None
    with city.begin() as conn:  # a building's write: no grid changed
        conn.execute(sa.text("UPDATE building SET name = name WHERE code = (SELECT min(code) FROM building)"))
    assert watch.current() == after + 4 and watch.box(after + 3, after + 4) == store.NO_CHANGE


def test_a_server_answers_away_from_an_edit_before_its_update_has_read_it(city, cli, tmp_path, monkeypatch):
    """A lookup away from a committed edit answers from the index the server holds at once, from the
    box announced with the epoch, while the update has not yet read the change log (before 0018 it
    waited for that read, up to a second, then for the whole update); a point in the box waits for
    the update and gets the new grid."""
    import threading

    locator = lookups.Locator(city, home=tmp_path / "home", background=True)
    locator.warm()
    far = locator.lookup(*lonlat(3500, 3500))["micro"]
    release = threading.Event()
    real = lookups.Locator._update

    def held_update(self, *args, **kwargs):  # the update, held before it reads anything
        release.wait(30)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lookups.Locator, "_update", held_update)
    move_boundary(cli, tmp_path, 1200)
    try:
        started = time.monotonic()
        assert locator.lookup(*lonlat(3500, 3500))["micro"] == far
        assert time.monotonic() - started < 0.5 and locator._current.epoch < locator.epoch()
        moved = {}
        waiting = threading.Thread(target=lambda: moved.update(locator.lookup(*lonlat(500, 1100))))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive()  # in the box: waits for the update
    finally:
        release.set()
    waiting.join(30)
    assert moved["micro"] == Y1 + "01"


def test_covered_segments_are_the_same_however_many_blocks_are_taken_at_once(monkeypatch):
    """The collinear-cover check compares every pair of segments sharing a block, a few blocks at a
    time so its memory stays bounded; the answer does not depend on how many."""
    from gridmap.domain import nearest

    rng = np.random.default_rng(1)
    found = 0
    for _ in range(30):
        n, blocks = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        ax, ay = rng.integers(0, 5, n).astype(float), rng.integers(0, 5, n).astype(float)
        bx, by = ax + rng.integers(-2, 3, n), ay + rng.integers(-2, 3, n)
        owner = rng.integers(0, 4, n)
        lists = [[] for _ in range(blocks)]
        for i in range(n):
            for b in set(rng.integers(0, blocks, int(rng.integers(1, 3)))):
                lists[b].append(i)
        seg = np.array([i for block in lists for i in block], dtype=np.int64)
        start = np.concatenate(([0], np.cumsum([len(block) for block in lists])))
        monkeypatch.setattr(nearest, "PAIRS_AT_ONCE", 10**12)
        whole = nearest._covered(ax, ay, bx, by, owner, seg, start)
        for bound in (1, 7, 50):
            monkeypatch.setattr(nearest, "PAIRS_AT_ONCE", bound)
            assert (nearest._covered(ax, ay, bx, by, owner, seg, start) == whole).all()
        found += int(whole.sum())
    assert found > 0  # the cases do have covered segments


def test_an_update_whose_grids_are_empty_before_and_after_rebuilds_instead_of_failing():
    """A micro-grid stored empty and edited to another empty geometry has no window to relabel:
    the update says a rebuild is needed (it raised converting NaN bounds to a cell number)."""
    frame = pd.DataFrame(
        {
            "id": [1, 2],
            "code": ["A", "B"],
            "name": ["A", "B"],
            "level": ["micro", "micro"],
            "parent_code": [None, None],
            "geometry": [shapely.box(113.60, 34.70, 113.61, 34.71), shapely.Polygon()],
        }
    )
    index = GridIndex(frame, epoch=1)
    edit = frame[frame["code"] == "B"].assign(geometry=[shapely.MultiPolygon()])
    assert updated(index, edit, {"B"}, epoch=2) is None
    rebuilt = GridIndex(pd.concat([frame[frame["code"] == "A"], edit]), epoch=2)
    assert rebuilt.locate(np.array([113.605]), np.array([34.705])).micro.tolist() == [0]


def test_a_lookup_that_must_not_wait_answers_from_what_the_server_holds_or_says_so(city, cli, tmp_path, monkeypatch):
    """``lookup(wait=False)`` (a server's single lookup tried on its event loop): the same answer as
    the usual way while the index is current; during an update, a point away from the edit is
    answered from the index held, while a point the edit may have moved, or one outside every grid,
    raises WouldWait (the guard then runs it in a thread, where it waits); a command's locator
    (no announcements to go by) never answers without its query.  Nor does a server right after a
    commit of its own process (the index's read-only snapshot counts): the next lookup the usual
    way reads the epoch, as it would anyway."""
    import threading

    locator = lookups.Locator(city, home=tmp_path / "home", background=True)
    # no confirming read falls due by the clock in this test (on a loaded machine a second passed
    # between the lookup that read the epoch and the one that must not wait: WouldWait, as it should)
    locator._watch.confirm_s = 3600

    def at_once(x, y):
        """``lookup(wait=False)``, tried again a few times: the watch's own thread holds its lock for a
        moment now and then (an acknowledgement, a heartbeat), and a lookup that must not wait then
        says so; what this test holds still (the update, no confirming read due) holds every try."""
        for attempt in range(20):
            try:
                return locator.lookup(*lonlat(x, y), wait=False)
            except lookups.WouldWait:
                if attempt == 19:
                    raise
                time.sleep(0.01)

    locator.warm()
    with pytest.raises(lookups.WouldWait):  # warm's own snapshot committed: the epoch is read first
        locator.lookup(*lonlat(500, 1100), wait=False)
    for x, y in ((500, 1100), (3500, 3500), (-300, 1100)):  # inside, far away, outside every grid
        usual = locator.lookup(*lonlat(x, y))
        assert at_once(x, y) == usual
    assert at_once(-300, 1100)["nearest"]["code"] == Y1 + "02"
    with pytest.raises(lookups.WouldWait):
        lookups.Locator(city, home=tmp_path / "home").lookup(*lonlat(500, 1100), wait=False)
    entered, release = threading.Event(), threading.Event()
    real = lookups.updated

    def held_update(*args, **kwargs):  # the real update, held until the test lets it go
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(lookups, "updated", held_update)
    move_boundary(cli, tmp_path, 1200)  # a commit of this process, then as another's announced
    assert locator.lookup(*lonlat(3500, 3500))["micro"] == "41019900200200202"  # reads the epoch
    # the update's thread and the shares' reader have read the epoch too (a lookup that must not
    # wait does not wait for the announcements' lock either: it would have gone the usual way)
    assert entered.wait(10)
    deadline = time.monotonic() + 10
    watch = locator._watch  # and the watch's thread has acknowledged the epoch (it holds the watch's lock meanwhile)
    while (locator._members_reading or watch._acked < watch._epoch) and time.monotonic() < deadline:
        time.sleep(0.01)

    try:
        far = at_once(3500, 3500)  # the update under way, answers at once
        assert far["micro"] == "41019900200200202" and locator._current.epoch < locator.epoch()
        for x, y in ((500, 1100), (-300, 1100)):  # in the edit's box; outside every grid
            with pytest.raises(lookups.WouldWait):
                locator.lookup(*lonlat(x, y), wait=False)
    finally:
        release.set()
    assert locator.lookup(*lonlat(500, 1100))["micro"] == Y1 + "01"  # the usual way waits for it
    deadline = time.monotonic() + 10
    while (locator._refreshing or locator._current.epoch < locator.epoch()) and time.monotonic() < deadline:
        time.sleep(0.01)  # the update in force
    locator.lookup(*lonlat(3500, 3500))  # the update's snapshot committed: the epoch read again
    assert at_once(500, 1100)["micro"] == Y1 + "01"
