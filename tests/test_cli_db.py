"""`gridmap db`: the project's own PostGIS, and GRIDMAP_DATABASE_URL taking over."""

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gridmap.cli import main


def test_local_cluster_status_and_url(database_url):
    runner = CliRunner()
    res = runner.invoke(main, ["db", "status"], env={"GRIDMAP_DATABASE_URL": ""})
    info = json.loads(res.output)
    if "GRIDMAP_TEST_DATABASE_URL" not in __import__("os").environ:
        assert (
            res.exit_code == 0
            and info["running"]
            and info["url"].startswith("postgresql+psycopg://postgres@127.0.0.1:")
        )
    res = runner.invoke(main, ["db", "url"], env={"GRIDMAP_DATABASE_URL": ""})
    assert res.output.strip() == info["url"]


def test_external_url_wins(database_url):
    runner = CliRunner()
    res = runner.invoke(main, ["db", "start"], env={"GRIDMAP_DATABASE_URL": database_url})
    assert res.exit_code == 0, res.output
    assert "GRIDMAP_DATABASE_URL is set: using that database, no local cluster" in res.output
    assert res.output.strip().splitlines()[-1] == database_url


def test_unreachable_database_is_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["stats"], env={"GRIDMAP_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridmap: error: cannot reach the database")


def test_db_start_takes_the_next_free_port_when_the_default_is_taken(tmp_path, monkeypatch):
    import socket

    from gridmap.settings import DEFAULT_PG_PORT, Settings
    from gridmap.store import cluster

    monkeypatch.setenv("GRIDMAP_HOME", str(tmp_path))
    monkeypatch.delenv("GRIDMAP_PG_PORT", raising=False)
    settings = Settings.from_env()
    assert settings.pg_port() == DEFAULT_PG_PORT
    holder = socket.socket()
    try:
        if cluster._port_free(DEFAULT_PG_PORT):  # take it ourselves when no cluster holds it
            holder.bind(("127.0.0.1", DEFAULT_PG_PORT))
            holder.listen()
        assert cluster._choose_port(settings) == DEFAULT_PG_PORT  # said by `db start` (the port it found taken)
        port = settings.pg_port()
        assert port != DEFAULT_PG_PORT and cluster._port_free(port)
        assert (tmp_path / "pg.port").read_text().strip() == str(port)
    finally:
        holder.close()
    monkeypatch.setenv("GRIDMAP_PG_PORT", "55999")
    assert Settings.from_env().pg_port() == 55999  # the variable still wins


def test_one_external_test_database_refuses_several_test_workers():
    # GRIDMAP_TEST_DATABASE_URL names one database: three workers emptying it under each other's tests
    # would fail at random, so the run stops before any test, with one line saying what to do
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["GRIDMAP_TEST_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/nowhere"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", "tests/test_settings.py"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert res.returncode == 4, res.stdout + res.stderr
    assert "GRIDMAP_TEST_DATABASE_URL names one database for 2 workers: make test TEST_WORKERS=1" in res.stderr
