"""The project's own PostGIS cluster: created, started and stopped by gridmap.

PostgreSQL refuses to run as root, so when gridmap runs as root the data folder
belongs to the ``postgres`` user and every server binary runs through
``runuser``.  When that user cannot reach the project folder (a parent folder
closed to others), the cluster lives under /var/tmp and the project folder holds
a symlink to it.  The server listens on 127.0.0.1 only, on a port of its own,
with trust authentication: it is a development and test server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from ..errors import DatabaseUnavailable
from ..settings import DEFAULT_DB_NAME, DEFAULT_PG_PORT, Settings

POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")


def _shared_buffers() -> str:
    """A quarter of the machine's memory, PostgreSQL's own starting advice, between 512 MB and 8 GB: the
    event centre's statistics read a street's year of cases (30,000 scattered heap pages) from
    PostgreSQL's buffers instead of the OS cache (a street's figures: p95 146 ms with 512 MB, 87 ms
    with 4 GB, on 2.5 million cases)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return "512MB"
    return f"{min(8192, max(512, total // 4 // 2**20))}MB"


#: Settings for a fast local server (written at initdb): bulk loads and validation are the heavy work.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": _shared_buffers(),
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "synchronous_commit": "off",
    "max_connections": "100",
}


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(args, **kw):
    return subprocess.run(_as_postgres() + [str(a) for a in args], capture_output=True, text=True, **kw)


def data_dir(settings: Settings) -> Path:
    return settings.home / "pg"


def _postgres_can_use(folder: Path) -> bool:
    if os.geteuid() != 0:
        return True
    return (
        subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)], capture_output=True).returncode
        == 0
    )


def _prepare_dir(settings: Settings) -> Path:
    """Create the data folder, owned by the server's user, and return it."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    link = data_dir(settings)
    if link.is_symlink() or link.exists():
        return link.resolve()
    if _postgres_can_use(home):
        target = link
    else:
        digest = hashlib.sha1(str(home).encode()).hexdigest()[:10]
        target = Path("/var/tmp") / f"gridmap-{digest}" / "pg"
        target.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(target, "postgres", "postgres")
        os.chmod(target, 0o700)
    return target


def status(settings: Settings) -> dict:
    """Whether the local cluster exists and runs, with its folder, port and URL."""
    folder = data_dir(settings)
    initialised = (folder / "PG_VERSION").exists()
    running = False
    if initialised:
        running = _run([settings.pg_bin / "pg_ctl", "-D", folder.resolve(), "status"]).returncode == 0
    return {
        "data_dir": str(folder),
        "initialised": initialised,
        "running": running,
        "port": settings.pg_port(),
        "url": settings.local_database_url(),
    }


def start(settings: Settings) -> dict:
    """Create (first time) and start the cluster; create the database with PostGIS. Idempotent."""
    pg_bin = settings.pg_bin
    if not (pg_bin / "pg_ctl").exists():
        raise DatabaseUnavailable(f"PostgreSQL 15 binaries not found in {pg_bin} (set GRIDMAP_PG_BIN)")
    if not POSTGIS_CONTROL.exists():
        raise DatabaseUnavailable(
            "PostGIS is not installed: apt-get install -y postgresql-15-postgis-3 "
            "(or run scripts/install_system.sh postgis as root)"
        )
    folder = _prepare_dir(settings)
    if not (folder / "PG_VERSION").exists():
        res = _run(
            [pg_bin / "initdb", "-D", folder, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
        )
        if res.returncode:
            raise DatabaseUnavailable(f"initdb failed: {res.stderr.strip().splitlines()[-1]}")
        with open(folder / "postgresql.auto.conf", "a") as conf:
            for key, value in SERVER_SETTINGS.items():
                conf.write(f"{key} = '{value}'\n")
    taken = None
    if not status(settings)["running"]:
        taken = _choose_port(settings)
        opts = f"-p {settings.pg_port()} -k {folder}"
        res = _run(
            [pg_bin / "pg_ctl", "-D", folder, "-l", folder / "server.log", "-o", opts, "-w", "-t", "60", "start"]
        )
        if res.returncode:
            raise DatabaseUnavailable(
                f"could not start PostgreSQL on 127.0.0.1:{settings.pg_port()} (see {folder / 'server.log'}); "
                "is the port taken? set GRIDMAP_PG_PORT"
            )
    _wait_ready(settings)
    ensure_database(settings, DEFAULT_DB_NAME)
    return {**status(settings), "port_taken": taken}


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on ``port``.  Like PostgreSQL, with SO_REUSEADDR: the
    connections a stopped server closed linger in TIME_WAIT on its port, and without it a restart
    would wrongly move to another port (and leave running clients behind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port(settings: Settings) -> int | None:
    """When the port is taken (another checkout's cluster, say) and GRIDMAP_PG_PORT does not fix
    it, take the next free one and record it for this checkout; the port found taken, or None."""
    if settings.pg_port_override or _port_free(settings.pg_port()):
        return None
    taken = settings.pg_port()
    for port in range(DEFAULT_PG_PORT + 1, DEFAULT_PG_PORT + 200):
        if _port_free(port):
            settings.port_file.write_text(f"{port}\n")
            return taken
    return taken


def _wait_ready(settings: Settings, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = (
            subprocess.run(
                [settings.pg_bin / "pg_isready", "-h", "127.0.0.1", "-p", str(settings.pg_port())], capture_output=True
            ).returncode
            == 0
        )
        if ok:
            return
        time.sleep(0.2)
    raise DatabaseUnavailable(f"PostgreSQL on 127.0.0.1:{settings.pg_port()} did not become ready")


def ensure_database(settings: Settings, name: str, *, fresh: bool = False) -> str:
    """Create database ``name`` on the local cluster (dropping it first when ``fresh``)."""
    admin = f"host=127.0.0.1 port={settings.pg_port()} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return settings.local_database_url(name)


def stop(settings: Settings) -> dict:
    """Stop the cluster if it runs."""
    if status(settings)["running"]:
        _run([settings.pg_bin / "pg_ctl", "-D", data_dir(settings).resolve(), "-m", "fast", "-w", "stop"])
    return status(settings)
