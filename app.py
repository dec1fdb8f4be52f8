"""Flask entry point: ``flask --app app run`` or ``gridmap serve``."""

from gridmap.web import create_app

__all__ = ["create_app"]
