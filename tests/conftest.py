"""Fixtures: a real PostGIS started by the project, the real Flask app, the real CLI.

Databases: ``gridmap_test`` is emptied before each test that asks for ``engine``;
``gridmap_test_demo`` holds the Guancheng demo city, loaded once per session and
only read.  Under pytest-xdist (``make test`` runs three workers) each worker has its
own pair, named with the worker's id (``gridmap_test_gw0``, ...).  Set
GRIDMAP_TEST_DATABASE_URL (and GRIDMAP_TEST_DEMO_DATABASE_URL) to use an existing
PostGIS instead of the local cluster; they name one database each, so run one worker
(``make test TEST_WORKERS=1``).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from gridmap.cli import main
from gridmap.services import resources
from gridmap.services.demo import load_demo
from gridmap.settings import Settings
from gridmap.store import cluster, db, users
from gridmap.web import create_app

import cityfactory

OUTPUT = Path(__file__).resolve().parent / "output"
#: Fixtures kept beside the tests that use them (the event centre's test city).
pytest_plugins = ("eventcity",)
DEMO_SEED = 7


def pytest_configure(config):
    workers = getattr(config.option, "numprocesses", None) or 0  # pytest-xdist's -n, resolved
    named = [v for v in ("GRIDMAP_TEST_DATABASE_URL", "GRIDMAP_TEST_DEMO_DATABASE_URL") if os.environ.get(v)]
    if named and workers > 1 and "PYTEST_XDIST_WORKER" not in os.environ:
        raise pytest.UsageError(f"{named[0]} names one database for {workers} workers: make test TEST_WORKERS=1")


def _database(env_var: str, name: str) -> str:
    url = os.environ.get(env_var)
    if not url:
        settings = Settings.from_env()
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... under pytest-xdist
        # One worker starts the cluster; the others wait for it rather than race initdb and pg_ctl.
        with open(Path(tempfile.gettempdir()) / "gridmap-test-cluster.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            cluster.start(settings)
        url = cluster.ensure_database(settings, f"{name}_{worker}" if worker else name, fresh=True)
    db.migrate(url)
    return url


@pytest.fixture(scope="session")
def database_url() -> str:
    return _database("GRIDMAP_TEST_DATABASE_URL", "gridmap_test")


def _background_threads_done(timeout: float = 30.0) -> None:
    """Wait for the index and share readers a server locator of an earlier test started: one still
    reading while the tables are emptied deadlocks with the TRUNCATE (PostgreSQL aborts either)."""
    import threading

    for thread in threading.enumerate():
        if thread.name in ("gridmap-index", "gridmap-members"):
            thread.join(timeout)


@pytest.fixture
def engine(database_url):
    _background_threads_done()
    eng = db.engine(database_url)
    with eng.begin() as conn:
        db.truncate_all(conn)
        users.truncate(conn)
    return eng


@pytest.fixture
def city(engine, cli, tmp_path):
    """The small test city (tests/cityfactory.py) imported through the real CLI; its engine."""
    cityfactory.load(cli, cityfactory.city(), tmp_path)
    return engine


@pytest.fixture
def bearer(engine):
    """Headers carrying a fresh token of a role in the test database: ``headers=bearer("planner")``."""
    made = {}

    def make(role: str) -> dict:
        if role not in made:
            with engine.begin() as conn:
                users.add_user(conn, f"test-{role}", role)
                made[role] = {"Authorization": "Bearer " + users.issue_token(conn, f"test-{role}")}
        return made[role]

    return make


@pytest.fixture(scope="session")
def demo_url() -> str:
    url = _database("GRIDMAP_TEST_DEMO_DATABASE_URL", "gridmap_test_demo")
    load_demo(
        db.engine(url),
        "guancheng",
        DEMO_SEED,
        rules=resources.load_rules(Settings.from_env().risk_rules_path),
        fresh=True,
    )
    return url


@pytest.fixture(scope="session")
def demo_viewer(demo_url) -> dict:
    """Headers with a viewer token in the demo database: personal data needs one (web/privacy.py)."""
    name = f"test-viewer-{os.urandom(4).hex()}"
    with db.engine(demo_url).begin() as conn:
        users.add_user(conn, name, "viewer")
        return {"Authorization": "Bearer " + users.issue_token(conn, name)}


@pytest.fixture
def cli(database_url):
    """Run the real ``gridmap`` command against the test database: cli("validate", "--format", "json");
    ``env`` adds environment variables (settings)."""
    runner = CliRunner()

    def run(*args, url=None, input=None, env=None):
        return runner.invoke(
            main,
            [str(a) for a in args],
            env={"GRIDMAP_DATABASE_URL": url or database_url, **(env or {})},
            catch_exceptions=False,
            input=input,
        )

    return run


@pytest.fixture
def client(engine, database_url):
    return create_app({"DATABASE_URL": database_url, "TESTING": True}).test_client()


@pytest.fixture(scope="session")
def demo_client(demo_url):
    return create_app({"DATABASE_URL": demo_url, "TESTING": True}).test_client()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
