"""Every environment variable and app setting gridmap reads, read once into one frozen object.

``Settings.from_env()`` is the only place that looks at ``os.environ``; the CLI builds one per
command, :func:`gridmap.web.create_app` one per app (``test_config`` keys override it, as in
Flask's tutorial app).  Nothing else reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path

from limits import parse as parse_rate

from .domain.dates import DEFAULT_TIMEZONE, zone
from .domain.levels import HOUSEHOLD_BAND
from .errors import InputError

#: Port of the project's own PostGIS cluster (override with GRIDMAP_PG_PORT).
DEFAULT_PG_PORT = 55432
DEFAULT_DB_NAME = "gridmap"
DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
LOOKUP_ENGINES = ("index", "postgis")
#: Request-body limit of `gridmap serve` in bytes (10,000 batch points or a 20,000-vertex outline
#: are under 2 MB); larger bodies get 413 before they are read.
MAX_BODY = 4 * 1024 * 1024
#: Seconds a client has to send a whole request body (408 after), and its headers (connection closed).
BODY_TIMEOUT = 10.0
HEADER_TIMEOUT = 10.0
#: Bounds of a write transaction (boundary edits, partition commits): each statement at most this many
#: milliseconds, each wait for another write's row locks at most this many (then 503 busy / exit 2).
STATEMENT_TIMEOUT_MS = 20_000
LOCK_TIMEOUT_MS = 5_000
#: Seconds `gridmap serve` gives a worker to stop before killing it (more than a statement may run).
WORKER_STOP_TIMEOUT = STATEMENT_TIMEOUT_MS // 1000 + 5
#: Failed sign-ins allowed per client address and per user name in a moving window (then 429).
SIGN_IN_LIMIT = "10 per 5 minutes"
#: The shipped layer definitions (package data, see README "Layout").
PACKAGE_LAYERS = Path(str(resources.files("gridmap") / "resources" / "layers"))


def _checkout_home() -> Path:
    """State folder when GRIDMAP_HOME is unset: the checkout's ``.gridmap``, else the current folder's."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "setup.cfg").exists():
        return repo / ".gridmap"
    return Path.cwd() / ".gridmap"


def _band(text: str) -> tuple[int, int]:
    """``50-70`` → (50, 70); InputError naming GRIDMAP_HOUSEHOLD_BAND otherwise."""
    lo, sep, hi = text.partition("-")
    if sep and lo.strip().isdigit() and hi.strip().isdigit() and 0 < int(lo) <= int(hi):
        return int(lo), int(hi)
    raise InputError(f"GRIDMAP_HOUSEHOLD_BAND must be MIN-MAX households such as 50-70, got {text!r}")


def _milliseconds(get, field: str, default: int) -> int:
    """A positive whole number of milliseconds from the environment; InputError naming the variable."""
    text = get(field)
    if text is None:
        return default
    if not text.strip().isdigit() or int(text) <= 0:
        raise InputError(f"{Settings.ENV[field]} must be a positive whole number of milliseconds, got {text!r}")
    return int(text)


def _rate(text: str) -> str:
    """A rate such as ``10 per 5 minutes`` (the limits library's notation); InputError naming
    GRIDMAP_SIGN_IN_LIMIT otherwise."""
    try:
        parse_rate(text)
    except ValueError:
        raise InputError(f"GRIDMAP_SIGN_IN_LIMIT must be a rate such as '10 per 5 minutes', got {text!r}") from None
    return text


def _sqlalchemy_url(url: str | None) -> str | None:
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url or None


@dataclass(frozen=True)
class Settings:
    """What a gridmap process is configured with.  Field = environment variable (see ``ENV``)."""

    home: Path
    #: GRIDMAP_DATABASE_URL: an existing PostGIS; then no local cluster is started.
    external_database_url: str | None = None
    #: GRIDMAP_READ_DATABASE_URL: a read replica for tiles and panels, used while it has caught up
    #: (:mod:`gridmap.services.read_routing`); lookups always follow the primary.
    read_database_url: str | None = None
    #: GRIDMAP_PG_PORT: the local cluster's port, fixed (else the recorded one, else 55432).
    pg_port_override: int | None = None
    pg_bin: Path = Path(DEFAULT_PG_BIN)
    db_name: str = DEFAULT_DB_NAME
    layers_dir: Path = PACKAGE_LAYERS
    #: The risk rules in force: a risk.toml or a folder holding one (default: ``layers_dir``).
    risk_rules: Path | None = None
    basemap_url: str | None = None
    basemap_crs: str | None = None
    #: GRIDMAP_AUTH_READ: ``open`` or ``viewer`` (checked by :func:`gridmap.web.auth.read_mode`).
    auth_read: str | None = None
    lookup_engine: str = "index"
    #: Build the lookup index when a server worker starts.
    warm: bool = False
    #: Request threads per server worker, the request-body limit (bytes) and its read timeout (s).
    threads: int = 8
    max_body: int = MAX_BODY
    body_timeout: float = BODY_TIMEOUT
    #: GRIDMAP_STATEMENT_TIMEOUT_MS, GRIDMAP_LOCK_TIMEOUT_MS: bounds of a write transaction.
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS
    lock_timeout_ms: int = LOCK_TIMEOUT_MS
    #: GRIDMAP_SIGN_IN_LIMIT: failed sign-ins per address and per user name, e.g. ``10 per 5 minutes``.
    sign_in_limit: str = SIGN_IN_LIMIT
    secret_key: str | None = None
    #: GRIDMAP_PUBLIC_URL: the address residents' phones reach; QR codes hold it (issue 13).
    public_url: str | None = None
    #: Who runs the CLI ($USER), for the audit log.
    user: str = "cli"
    #: GRIDMAP_TZ: the office's time zone, in which times are shown and exported (an IANA name); a
    #: street office's roster dates without a zone are read in it too, and it is the working calendar's
    #: day for the event centre's deadlines.
    timezone: str = DEFAULT_TIMEZONE
    #: GRIDMAP_HOUSEHOLD_BAND: households a micro-grid should hold, ``MIN-MAX`` (the map's histogram).
    household_band: tuple[int, int] = HOUSEHOLD_BAND

    ENV = {
        "home": "GRIDMAP_HOME",
        "external_database_url": "GRIDMAP_DATABASE_URL",
        "read_database_url": "GRIDMAP_READ_DATABASE_URL",
        "pg_port_override": "GRIDMAP_PG_PORT",
        "pg_bin": "GRIDMAP_PG_BIN",
        "db_name": "GRIDMAP_DB_NAME",
        "layers_dir": "GRIDMAP_LAYERS",
        "risk_rules": "GRIDMAP_RISK_RULES",
        "basemap_url": "GRIDMAP_BASEMAP_URL",
        "basemap_crs": "GRIDMAP_BASEMAP_CRS",
        "auth_read": "GRIDMAP_AUTH_READ",
        "lookup_engine": "GRIDMAP_LOOKUP_ENGINE",
        "warm": "GRIDMAP_WARM_INDEX",
        "threads": "GRIDMAP_THREADS",
        "max_body": "GRIDMAP_MAX_BODY",
        "body_timeout": "GRIDMAP_BODY_TIMEOUT",
        "statement_timeout_ms": "GRIDMAP_STATEMENT_TIMEOUT_MS",
        "lock_timeout_ms": "GRIDMAP_LOCK_TIMEOUT_MS",
        "sign_in_limit": "GRIDMAP_SIGN_IN_LIMIT",
        "secret_key": "GRIDMAP_SECRET_KEY",
        "public_url": "GRIDMAP_PUBLIC_URL",
        "user": "USER",
        "timezone": "GRIDMAP_TZ",
        "household_band": "GRIDMAP_HOUSEHOLD_BAND",
    }

    @classmethod
    def from_env(cls, overrides: dict | None = None, environ=None) -> Settings:
        """Settings from the environment (``environ``, default ``os.environ``), then ``overrides``
        (field names; None values are ignored)."""
        env = os.environ if environ is None else environ

        def get(field: str) -> str | None:
            return env.get(cls.ENV[field]) or None

        port = get("pg_port_override")
        home = get("home")
        layers = get("layers_dir")
        settings = cls(
            home=Path(home).resolve() if home else _checkout_home(),
            external_database_url=_sqlalchemy_url(get("external_database_url")),
            read_database_url=_sqlalchemy_url(get("read_database_url")),
            pg_port_override=int(port) if port else None,
            pg_bin=Path(get("pg_bin") or DEFAULT_PG_BIN),
            db_name=get("db_name") or DEFAULT_DB_NAME,
            layers_dir=Path(layers) if layers else PACKAGE_LAYERS,
            risk_rules=Path(get("risk_rules")) if get("risk_rules") else None,
            # an empty GRIDMAP_BASEMAP_URL means "no base map", so it is kept when set
            basemap_url=env.get(cls.ENV["basemap_url"]),
            basemap_crs=get("basemap_crs"),
            auth_read=get("auth_read"),
            lookup_engine=get("lookup_engine") or "index",
            warm=get("warm") == "1",
            threads=int(get("threads") or 8),
            max_body=int(get("max_body") or MAX_BODY),
            body_timeout=float(get("body_timeout") or BODY_TIMEOUT),
            statement_timeout_ms=_milliseconds(get, "statement_timeout_ms", STATEMENT_TIMEOUT_MS),
            lock_timeout_ms=_milliseconds(get, "lock_timeout_ms", LOCK_TIMEOUT_MS),
            sign_in_limit=_rate(get("sign_in_limit") or SIGN_IN_LIMIT),
            secret_key=get("secret_key"),
            public_url=get("public_url"),
            user=get("user") or "cli",
            timezone=get("timezone") or DEFAULT_TIMEZONE,
            household_band=_band(get("household_band")) if get("household_band") else HOUSEHOLD_BAND,
        )
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for key in ("external_database_url", "read_database_url"):
            if key in given:
                given[key] = _sqlalchemy_url(given[key])
        settings = replace(settings, **given)
        zone(settings.timezone)  # an unknown zone is an error now, not at the first time shown
        return settings

    @classmethod
    def export(cls, **values) -> None:
        """Put settings (field names) into this process's environment, for the worker processes it
        starts (a server's workers build their own Settings from it)."""
        for field, value in values.items():
            os.environ[cls.ENV[field]] = "1" if value is True else "0" if value is False else str(value)

    @property
    def port_file(self) -> Path:
        """Where `gridmap db start` records the port it chose when the default was taken."""
        return self.home / "pg.port"

    def pg_port(self) -> int:
        """GRIDMAP_PG_PORT, else the port recorded for this checkout's cluster, else 55432."""
        if self.pg_port_override:
            return self.pg_port_override
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return DEFAULT_PG_PORT

    def local_database_url(self, dbname: str | None = None) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port()}/{dbname or self.db_name}"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL everything uses."""
        return self.external_database_url or self.local_database_url()

    @property
    def risk_rules_path(self) -> Path:
        """The risk.toml in force: ``risk_rules`` (a file or a folder), else the layers folder's."""
        path = self.risk_rules or self.layers_dir
        return path / "risk.toml" if path.is_dir() or path.suffix != ".toml" else path
