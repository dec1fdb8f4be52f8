"""Several app servers on one PostGIS: two ``gridmap serve`` processes (standing in for two machines),
an edit committed through one seen by the next lookup, tile and panel on the other."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import urllib.request

import mapbox_vector_tile
import mercantile
import psycopg
import pytest
import sqlalchemy as sa
from shapely.geometry import mapping

from gridmap.services import locator as lookups
from gridmap.store import db, grids
from gridmap.web import create_app

import cityfactory as cf
import servers
from eventcity import file, pick
from servers import serving

Y1 = "410199001001001"
M1, M2 = Y1 + "01", Y1 + "02"


def lonlat(x, y):
    p = cf.geo.from_local([cf.shapely.Point(cf.X0 + x, cf.Y0 + y)])[0]
    return p.x, p.y


def http(url, body=None, headers=None):
    """(status, headers, bytes) of a GET, or a POST of JSON ``body``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def lookup(base, x, y):
    lon, lat = lonlat(x, y)
    status, _, body = http(f"{base}/api/v1/lookup?lon={lon}&lat={lat}")
    assert status == 200, body
    return json.loads(body)


def micro_tile(base, x, y):
    """The names in the z15 micro-grid tile holding the point."""
    t = mercantile.tile(*lonlat(x, y), 15)
    status, _, body = http(f"{base}/tiles/micro/{t.z}/{t.x}/{t.y}.pbf?crs=wgs84")
    assert status == 200
    layers = mapbox_vector_tile.decode(body) if body else {}
    return {f["properties"]["code"]: f["properties"]["name"] for layer in layers.values() for f in layer["features"]}


def panel(base, code):
    status, _, body = http(f"{base}/api/v1/grids/{code}/panel")
    assert status == 200, body
    return json.loads(body)["properties"]


@pytest.fixture
def city(engine, cli, tmp_path):
    cf.load(cli, cf.city(), tmp_path)


def test_an_edit_through_one_server_is_seen_by_the_next_lookup_tile_and_panel_on_the_other(city, database_url, bearer):
    planner = bearer("planner")
    with (
        serving(database_url, "--workers", "1", "--threads", "2") as (a, _),
        serving(database_url, "--workers", "1", "--threads", "2") as (b, _),
    ):
        # server B has its index, tile cache and panel from before the edit
        assert lookup(b, 500, 950)["micro"] == M1
        assert micro_tile(b, 500, 950)[M1] == panel(b, M1)["name"] != "新一号网格"
        status, headers, _ = http(f"{a}/api/v1/grids/{M1}")
        etag_m1 = headers["ETag"]
        etag_m2 = http(f"{a}/api/v1/grids/{M2}")[1]["ETag"]
        shrunk = mapping(cf.geo.from_local([cf.rect(0, 0, 1000, 900)])[0])
        edit = {
            "op": "replace",
            "code": M1,
            "geometry": shrunk,
            "properties": {"name": "新一号网格"},
            "gap_to": M2,
            "if_match": {M2: etag_m2},
        }
        status, _, body = http(f"{a}/api/v1/edits", edit, {**planner, "If-Match": etag_m1})
        assert status == 201, body
        # the very next requests on B see it: the point in the strip given away, the new name
        assert lookup(b, 500, 950)["micro"] == M2
        assert lookup(b, 500, 500)["chain"][-1]["name"] == "新一号网格"
        assert micro_tile(b, 500, 950)[M1] == "新一号网格"
        assert panel(b, M1)["name"] == "新一号网格"


def listening_backends(engine):
    """The pids of the servers' listening connections (their epoch watches) on the test database: not
    this test process's own (apps of earlier tests may still hold one)."""
    with engine.connect() as conn:
        query = (
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE :watch AND application_name <> :ours "
            "AND datname = current_database()"
        )
        names = {"watch": f"{lookups.WATCH_NAME} %", "ours": f"{lookups.WATCH_NAME} {os.getpid()}"}
        return conn.execute(sa.text(query), names).scalars().all()


def test_an_edit_answers_once_every_server_has_heard_of_it_even_when_the_notice_is_late(
    city, engine, database_url, bearer
):
    """PostgreSQL signals the listening backends at commit, but each must be scheduled to pass the
    notice on; on a loaded machine that came after the writer's answer and the next request to the
    other server (a CI run: B's next lookup answered from the old grids).  Here the listening
    backends are held (SIGSTOP) for 0.6 s across the edit: the edit answers only after they have
    passed the notice on and the servers have acknowledged it, and B's next lookup sees it."""
    planner = bearer("planner")
    with (
        serving(database_url, "--workers", "1", "--threads", "2") as (a, _),
        serving(database_url, "--workers", "1", "--threads", "2") as (b, _),
    ):
        assert lookup(a, 500, 500)["micro"] == M1 and lookup(b, 500, 950)["micro"] == M1
        status, headers, _ = http(f"{a}/api/v1/grids/{M1}")
        etag_m2 = http(f"{a}/api/v1/grids/{M2}")[1]["ETag"]
        shrunk = mapping(cf.geo.from_local([cf.rect(0, 0, 1000, 900)])[0])
        edit = {"op": "replace", "code": M1, "geometry": shrunk, "gap_to": M2, "if_match": {M2: etag_m2}}
        listeners = listening_backends(engine)
        assert len(listeners) == 2, listeners  # one per server (one worker each)
        held = 0.6
        lookup(b, 500, 950)  # B's confirming read done just now: it relies on the notice next
        release = threading.Timer(held, lambda: [os.kill(pid, signal.SIGCONT) for pid in listeners])
        try:
            for pid in listeners:
                os.kill(pid, signal.SIGSTOP)
        except PermissionError:
            pytest.skip("holding PostgreSQL's backends needs root or the postgres user")
        try:
            started = time.monotonic()
            release.start()
            status, _, body = http(f"{a}/api/v1/edits", edit, {**planner, "If-Match": headers["ETag"]})
            answered = time.monotonic() - started
            assert status == 201, body
            assert lookup(b, 500, 950)["micro"] == M2
        finally:
            release.cancel()
            for pid in listeners:
                os.kill(pid, signal.SIGCONT)
        assert answered >= held - 0.05, answered  # it waited for the held servers to hear


@pytest.fixture
def replica_url(database_url, city, cli, tmp_path):
    """A second database holding the same city, standing in for a read replica (``_replica`` beside
    the test database, made on the same server)."""
    url = sa.engine.make_url(database_url)
    name = f"{url.database}_replica"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    replica = url.set(database=name).render_as_string(hide_password=False)
    db.migrate(replica)
    (tmp_path / "replica").mkdir()
    cf.load(lambda *a: cli(*a, url=replica), cf.city(), tmp_path / "replica")
    return replica


def copy_epochs(source_url, target_url):
    """Make the replica's data epochs the primary's: it has "caught up"."""
    with db.engine(source_url).connect() as conn:
        grid = conn.execute(sa.text("SELECT epoch FROM grid_epoch WHERE id = 1")).scalar_one()
        layers = conn.execute(sa.text("SELECT name, epoch FROM layer_epoch")).all()
    with db.engine(target_url).begin() as conn:
        conn.execute(sa.text("UPDATE grid_epoch SET epoch = :e WHERE id = 1"), {"e": grid})
        conn.execute(sa.text("DELETE FROM layer_epoch"))
        for name, epoch in layers:
            conn.execute(sa.text("INSERT INTO layer_epoch VALUES (:n, :e)"), {"n": name, "e": epoch})


def test_read_replica_serves_tiles_and_panels_only_while_caught_up(database_url, replica_url, bearer, engine):
    app = create_app({"DATABASE_URL": database_url, "READ_DATABASE_URL": replica_url, "TESTING": True})
    client = app.test_client()
    # a difference only the replica has, to see where reads go
    with db.engine(replica_url).begin() as conn:
        conn.execute(sa.text("UPDATE grid SET name = '副本网格' WHERE code = :c AND valid_to IS NULL"), {"c": M1})
    copy_epochs(database_url, replica_url)
    t = mercantile.tile(*lonlat(500, 500), 15)
    tile_url = f"/tiles/micro/{t.z}/{t.x}/{t.y}.pbf?crs=wgs84"

    def tile_names():
        layers = mapbox_vector_tile.decode(client.get(tile_url).data)
        return {f["properties"]["code"]: f["properties"]["name"] for ly in layers.values() for f in ly["features"]}

    assert client.get(f"/api/v1/grids/{M1}/panel").get_json()["properties"]["name"] == "副本网格"
    assert tile_names()[M1] == "副本网格"
    # an edit on the primary: the replica is behind, so the next panel and tile read the primary
    etag = client.get(f"/api/v1/grids/{M1}").headers["ETag"]
    res = client.post(
        "/api/v1/edits",
        json={"op": "update", "code": M1, "properties": {"name": "主库网格"}},
        headers={**bearer("planner"), "If-Match": etag},
    )
    assert res.status_code == 201, res.get_json()
    assert client.get(f"/api/v1/grids/{M1}/panel").get_json()["properties"]["name"] == "主库网格"
    assert tile_names()[M1] == "主库网格"
    lon, lat = lonlat(500, 500)
    assert client.get(f"/api/v1/lookup?lon={lon}&lat={lat}").get_json()["chain"][-1]["name"] == "主库网格"
    # a report on the primary moves a layer epoch: panels read the primary for that too
    copy_epochs(database_url, replica_url)
    assert client.get(f"/api/v1/grids/{M1}/panel").get_json()["properties"]["name"] == "副本网格"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO report (text, micro_code) VALUES ('井盖缺失', :c)"), {"c": M1})
    props = client.get(f"/api/v1/grids/{M1}/panel").get_json()["properties"]
    assert props["name"] == "主库网格" and props["reports"]["open"] == 1


def test_an_unreachable_replica_is_no_failure(database_url, city):
    dead = sa.engine.make_url(database_url).set(port=servers.free_port()).render_as_string(hide_password=False)
    client = create_app({"DATABASE_URL": database_url, "READ_DATABASE_URL": dead, "TESTING": True}).test_client()
    res = client.get(f"/api/v1/grids/{M1}/panel")
    assert res.status_code == 200 and res.get_json()["properties"]["code"] == M1


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_background_jobs_run_on_one_server_and_move_when_it_stops(city, database_url, tmp_path):
    logs = [tmp_path / f"{name}.log" for name in "abc"]
    args = ("--workers", "1", "--threads", "2", "--rollup-every", "0.5")
    ran = "job risk-rollup ran"
    first = contextlib.ExitStack()
    first.enter_context(serving(database_url, *args, log=logs[0]))
    try:
        assert wait_for(lambda: ran in logs[0].read_text())
        with serving(database_url, *args, log=logs[1]):
            assert wait_for(lambda: "jobs: standing by" in logs[1].read_text())
            before = logs[0].read_text().count(ran)
            assert wait_for(lambda: logs[0].read_text().count(ran) >= before + 3)  # the leader goes on
            assert ran not in logs[1].read_text() and "jobs: leading" not in logs[1].read_text()
        with serving(database_url, *args, log=logs[2]):
            assert wait_for(lambda: "jobs: standing by" in logs[2].read_text())
            first.close()  # the leading server stops: its lock goes with it, the standing-by one takes over
            assert wait_for(lambda: ran in logs[2].read_text(), timeout=20)
    finally:
        first.close()


def test_the_event_tick_runs_in_the_leader_once_across_servers(event_city, client, database_url, engine, tmp_path):
    """The clock tick is a job of the leader, not of each worker: with two servers ticking every
    second, a case past its warning time is warned once, by the leading server's jobs process."""
    case = file(client, event_city["ingest"], pick(True, "micro"))["id"]
    with engine.begin() as conn:  # its warning time has come
        conn.execute(
            sa.text(
                "UPDATE report SET warn_at = now() - interval '1 minute', tick_at = now() - interval '1 minute' "
                "WHERE id = :id"
            ),
            {"id": case},
        )
    logs = [tmp_path / f"{name}.log" for name in "ab"]
    args = ("--workers", "2", "--threads", "2", "--rollup-every", "0", "--tick-seconds", "1")
    with serving(database_url, *args, log=logs[0]), serving(database_url, *args, log=logs[1]):
        assert wait_for(lambda: any("job event-tick ran" in log.read_text() for log in logs))
        time.sleep(2.5)  # more ticks of the leader, and of nobody else
        texts = [log.read_text() for log in logs]
    assert sum(t.count("1 warned") for t in texts) == 1, texts
    assert sorted("jobs: leading" in t for t in texts) == [False, True]
    with engine.connect() as conn:
        warns = conn.execute(
            sa.text("SELECT count(*) FROM report_log WHERE report_id = :id AND action = 'warn'"), {"id": case}
        ).scalar_one()
        warned = conn.execute(sa.text("SELECT warned_at IS NOT NULL FROM report WHERE id = :id"), {"id": case}).scalar()
    assert (warns, warned) == (1, True)


def test_a_write_waits_for_listeners_behind_but_not_for_silent_or_gone_ones(engine, database_url):
    """``await_servers`` on a listener entered by hand (a plain connection standing in for a server's
    watch): behind the epoch it is waited for, up to the timeout, and named; once it acknowledges the
    wait ends at once; a listener silent for ``FRESH_S`` (a stopped process) or whose backend is gone
    is not waited for."""
    plain = sa.engine.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def bump(conn):  # as the grid triggers do: the epoch moved and announced (other listeners hear it)
        epoch = conn.execute(
            sa.text("UPDATE grid_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch")
        ).scalar_one()
        conn.execute(
            sa.text("SELECT pg_notify(:channel, :epoch)"), {"channel": grids.EPOCH_CHANNEL, "epoch": str(epoch)}
        )
        return epoch

    with engine.begin() as conn:
        now = bump(conn)
    listener = psycopg.connect(plain, autocommit=True)
    try:
        started = grids.register_listener(listener, now - 1)
        pid = listener.info.backend_pid
        t = time.monotonic()
        assert pid in lookups.await_servers(engine, timeout_s=0.3)  # (other listeners of this process's apps hear)
        assert time.monotonic() - t >= 0.3
        threading.Timer(0.2, grids.acknowledge_epoch, (listener, started, now)).start()
        t = time.monotonic()
        assert lookups.await_servers(engine, timeout_s=5) == []
        assert 0.2 <= time.monotonic() - t < 2
        with engine.begin() as conn:  # behind again, but silent for longer than FRESH_S
            bump(conn)
            conn.execute(
                sa.text("UPDATE epoch_listener SET seen_at = now() - make_interval(secs => :s) WHERE pid = :p"),
                {"s": lookups.FRESH_S + 1, "p": pid},
            )
        assert lookups.await_servers(engine, timeout_s=5) == []
        grids.acknowledge_epoch(listener, started, now)  # alive again (seen now), still behind
        assert pid in lookups.await_servers(engine, timeout_s=0.1)
    finally:
        listener.close()
    assert lookups.await_servers(engine, timeout_s=5) == []  # its backend gone: not waited for


def test_the_blueprints_that_skip_the_wait_exist_and_none_writes_grids():
    """The writes that answer without waiting for the servers to hear are of blueprints that exist
    (a misspelt name would make another blueprint skip nothing, silently) and never of the ones that
    write grids: edits, the OGC transactions, the partitioner's commit."""
    import gridmap.web as web

    app = create_app({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    assert web.NO_GRID_WRITES <= set(app.blueprints)
    assert not web.NO_GRID_WRITES & {"edits", "ogc", "partition", "grids"}
