"""Where gridmap keeps its state and which database it talks to."""
from __future__ import annotations

import os
from pathlib import Path

#: Port of the project's own PostGIS cluster (override with GRIDMAP_PG_PORT).
DEFAULT_PG_PORT = 55432
DEFAULT_DB_NAME = "gridmap"


def project_home() -> Path:
    """Folder for the local cluster and other state: GRIDMAP_HOME, else the checkout, else cwd."""
    if os.environ.get("GRIDMAP_HOME"):
        return Path(os.environ["GRIDMAP_HOME"]).resolve()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "setup.cfg").exists():
        return repo / ".gridmap"
    return Path.cwd() / ".gridmap"


def port_file() -> Path:
    """Where `gridmap db start` records the port it chose when the default was taken."""
    return project_home() / "pg.port"


def pg_port() -> int:
    """GRIDMAP_PG_PORT, else the port recorded for this checkout's cluster, else 55432."""
    if os.environ.get("GRIDMAP_PG_PORT"):
        return int(os.environ["GRIDMAP_PG_PORT"])
    try:
        return int(port_file().read_text().strip())
    except (OSError, ValueError):
        return DEFAULT_PG_PORT


def external_database_url() -> str | None:
    """GRIDMAP_DATABASE_URL when set: then no local cluster is started."""
    url = os.environ.get("GRIDMAP_DATABASE_URL") or None
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def local_database_url(dbname: str = DEFAULT_DB_NAME) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{pg_port()}/{dbname}"


def database_url() -> str:
    """The SQLAlchemy URL everything uses."""
    return external_database_url() or local_database_url(os.environ.get("GRIDMAP_DB_NAME", DEFAULT_DB_NAME))
