"""The web layer: a thin Flask app over the store and the domain."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .. import config
from ..errors import GridmapError


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. ``test_config`` may set DATABASE_URL (default: gridmap's configured database)."""
    app = Flask(__name__)
    app.config.update(DATABASE_URL=None, JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    from . import api, pages, risk_api, tiles

    app.register_blueprint(api.bp)
    app.register_blueprint(risk_api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(tiles.bp)

    @app.errorhandler(GridmapError)
    def _gridmap_error(exc: GridmapError):
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        body = {"error": {"code": exc.name.lower().replace(" ", "_"), "message": exc.description}}
        return jsonify(body), exc.code

    return app


def database_url(app: Flask) -> str:
    return app.config.get("DATABASE_URL") or config.database_url()
