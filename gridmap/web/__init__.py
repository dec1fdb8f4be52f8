"""The web layer: a thin Flask app over the services.  Blueprints parse (:mod:`.params`), call a
service and write JSON; gridmap errors become HTTP responses here, once."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import Gone, GridmapError, InputError
from ..services import locator
from ..settings import Settings
from . import (
    auth,
    edits,
    events,
    faults,
    grids,
    lookup,
    ogc,
    open311,
    openapi,
    pages,
    partition,
    people,
    queue_page,
    reports,
    risk,
    scan,
    session,
    throttle,
    tiles,
)
from .context import SETTINGS
from .privacy import private

#: ``test_config`` keys that set a setting (the rest go to Flask's config as they are).
SETTING_KEYS = {
    "DATABASE_URL": "external_database_url",
    "READ_DATABASE_URL": "read_database_url",
    "AUTH_READ": "auth_read",
    "LOOKUP_ENGINE": "lookup_engine",
    "RISK_RULES": "risk_rules",
    "BASEMAP_CRS": "basemap_crs",
    "LAYERS": "layers_dir",
    "TIMEZONE": "timezone",
    "HOUSEHOLD_BAND": "household_band",
    "STATEMENT_TIMEOUT_MS": "statement_timeout_ms",
    "LOCK_TIMEOUT_MS": "lock_timeout_ms",
    "SIGN_IN_LIMIT": "sign_in_limit",
}


def create_app(test_config: dict | None = None, settings: Settings | None = None) -> Flask:
    """Build the app with ``settings`` (default: from the environment, with ``test_config``'s
    DATABASE_URL, AUTH_READ, LOOKUP_ENGINE, RISK_RULES, BASEMAP_CRS, LAYERS and the other
    :data:`SETTING_KEYS` on top)."""
    config = dict(test_config or {})
    overrides = {SETTING_KEYS[k]: config.pop(k) for k in list(config) if k in SETTING_KEYS}
    for key in ("risk_rules", "layers_dir"):
        if overrides.get(key) is not None:
            overrides[key] = Path(overrides[key])
    settings = Settings.from_env(overrides) if settings is None else settings
    app = Flask(__name__)
    app.config.update(JSON_SORT_KEYS=False, SECRET_KEY=settings.secret_key, **config)
    app.extensions[SETTINGS] = settings
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    for blueprint in (
        grids.bp,
        lookup.bp,
        partition.bp,
        reports.bp,
        risk.bp,
        edits.bp,
        pages.bp,
        tiles.bp,
        ogc.bp,
        openapi.bp,
        events.bp,
        open311.bp,
        queue_page.bp,
        session.bp,
        people.bp,  # grid people, party organisations, QR codes to print
        scan.bp,  # /g/<code>: the page a QR code opens
    ):
        app.register_blueprint(blueprint)
    app.before_request(_refuse_nul)
    app.before_request(_note_commits)
    app.after_request(_heard_by_servers)
    auth.init_app(app, settings.auth_read)  # who may call what: every view's require(), enforced before each request
    faults.init_app(app)  # database outages are 503s; every request's work has a time budget
    throttle.init_app(app, settings.sign_in_limit)  # failed sign-ins per address and per user name are bounded

    @app.errorhandler(GridmapError)
    def _gridmap_error(exc: GridmapError):
        body = exc.to_dict()
        retired_by = (body["error"].get("detail") or {}).get("retired_by") if isinstance(exc, Gone) else None
        if retired_by:  # a retired grid's 410 names the edit that retired it: who and why are personal
            private(retired_by, *edits.EDIT_PRIVATE)
        return jsonify(body), exc.status, getattr(exc, "http_headers", None) or {}

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        body = {"error": {"code": exc.name.lower().replace(" ", "_"), "message": exc.description}}
        return jsonify(body), exc.code

    return app


#: Blueprints none of whose requests writes grids, buildings, units or shares (the grid epoch): their
#: writes (a citizen's report, a case's step, a visit, a sign-in) answer without asking whether the
#: servers heard, two queries (0.76 ms median, measured alone) that the busiest writes, report
#: intake, need not pay.  Any other blueprint's writing request waits (:func:`_heard_by_servers`), so
#: one added later is fresh first.
NO_GRID_WRITES = frozenset({"events", "open311", "lookup", "people", "risk", "scan", "session", "reports"})


def _note_commits():
    if request.blueprint not in NO_GRID_WRITES:
        locator.note_commits()
        g.noting_commits = True


def _heard_by_servers(response):
    """A request that may have written grids answers once every server has heard of it: the next
    request, to any server, sees the write (:func:`gridmap.services.locator.heard_by_servers`)."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and g.get("noting_commits"):
        behind = locator.heard_by_servers(thread=True)
        if behind:
            current_app.logger.warning(
                "servers not yet told of this write after %ss (listening backends %s): they catch up "
                "at their next confirming read",
                locator.HEAR_WAIT_S,
                behind,
            )
    return response


def _refuse_nul():
    """PostgreSQL text cannot hold a NUL character: a request carrying one is a 400 saying where, not a 500."""
    where = (
        "the path"
        if "\x00" in request.path
        else next((f"query parameter {k!r}" for k, v in request.args.items(multi=True) if "\x00" in k + v), None)
        or ("the JSON body" if request.is_json and b"\\u0000" in request.get_data() else None)
    )
    if where:
        raise InputError(f"{where} contains a NUL character (\\u0000), which no text field can hold")
