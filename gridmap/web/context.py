"""What the blueprints get from the app: its settings, the database engine, the locator (one lookup
index per process) and the risk rules in force."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.engine import Engine

from ..domain.risk import Rules
from ..services import database, events, read_routing, resources
from ..services.locator import Locator
from ..settings import Settings

SETTINGS = "gridmap.settings"
LOCATOR = "gridmap.locator"


def settings() -> Settings:
    """The app's settings (built once by :func:`gridmap.web.create_app`)."""
    return current_app.extensions[SETTINGS]


def engine() -> Engine:
    return database.engine(settings())


def read_engine() -> Engine:
    """Where a tile or panel reads: the read replica when one is configured and has caught up with
    the primary, else the primary (:func:`gridmap.services.read_routing.fresh_engine`)."""
    return read_routing.read_engine(settings())


def locator() -> Locator:
    """The app's locator (one in-memory index per process, kept true to the database); a new one when
    the database moved (``gridmap db start`` on another port), so lookups follow it like every route."""
    loc = current_app.extensions.get(LOCATOR)
    if loc is None or loc.engine is not engine():
        loc = current_app.extensions[LOCATOR] = Locator(engine(), home=settings().home, background=True)
    return loc


def risk_rules() -> Rules:
    """The risk rules in force: the settings' ``risk_rules`` (``RISK_RULES`` in ``test_config``), else the
    layers folder's risk.toml (re-read when the file changes)."""
    return resources.load_rules(settings().risk_rules_path)


def centre() -> events.Centre:
    """The event centre: the engine, the matter catalogue in force (re-read when its files change), the
    working calendar, the locator and the time zone."""
    return events.make_centre(settings(), engine(), locator())
