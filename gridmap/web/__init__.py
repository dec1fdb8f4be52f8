"""The web layer: a thin Flask app over the store and the domain."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .. import config
from ..errors import GridmapError, InputError


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. ``test_config`` may set DATABASE_URL (default: gridmap's configured database)."""
    app = Flask(__name__)
    app.config.update(DATABASE_URL=None, JSON_SORT_KEYS=False, AUTH_READ=None)  # AUTH_READ: see web/auth.py
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    from . import api, auth, edit_api, ogc, openapi, pages, people, risk_api, scan, tiles

    app.register_blueprint(api.bp)
    app.register_blueprint(risk_api.bp)
    app.register_blueprint(edit_api.bp)  # boundary edits, history
    app.register_blueprint(pages.bp)
    app.register_blueprint(tiles.bp)
    app.register_blueprint(ogc.bp)  # OGC API – Features at /ogc
    app.register_blueprint(openapi.bp)  # /api/v1/openapi.json
    app.register_blueprint(people.bp)  # grid people, party organisations, QR codes to print
    app.register_blueprint(scan.bp)  # /g/<code>: the page a QR code opens
    app.before_request(_refuse_nul)
    auth.init_app(app)  # who may call what: every view's require(), enforced before each request

    @app.errorhandler(GridmapError)
    def _gridmap_error(exc: GridmapError):
        return jsonify(exc.to_dict()), exc.status, getattr(exc, "http_headers", None) or {}

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        body = {"error": {"code": exc.name.lower().replace(" ", "_"), "message": exc.description}}
        return jsonify(body), exc.code

    return app


def _refuse_nul():
    """PostgreSQL text cannot hold a NUL character: a request carrying one is a 400 saying where, not a 500."""
    from flask import request

    where = ("the path" if "\x00" in request.path else
             next((f"query parameter {k!r}" for k, v in request.args.items(multi=True) if "\x00" in k + v), None) or
             ("the JSON body" if request.is_json and b"\\u0000" in request.get_data() else None))
    if where:
        raise InputError(f"{where} contains a NUL character (\\u0000), which no text field can hold")


def database_url(app: Flask) -> str:
    return app.config.get("DATABASE_URL") or config.database_url()
