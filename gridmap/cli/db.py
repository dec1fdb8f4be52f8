"""``gridmap db``: the project's own PostGIS cluster and the schema."""

from __future__ import annotations

import json
import sys

import click

from ..services import database
from .common import EXIT_PROBLEMS, settings


@click.group()
def db():
    """The project's own PostGIS (ignored when GRIDMAP_DATABASE_URL is set)."""


def _external_note() -> bool:
    if settings().external_database_url:
        click.echo("GRIDMAP_DATABASE_URL is set: using that database, no local cluster", err=True)
        return True
    return False


@db.command("start")
def db_start():
    """Create (first time) and start the local cluster, create the database and migrate it."""
    if not _external_note():
        info = database.start(settings())
        if info.get("port_taken"):
            click.echo(
                f"port {info['port_taken']} is taken (another cluster?): this one listens on {info['port']}, "
                f"recorded in {settings().port_file} (GRIDMAP_PG_PORT to choose)",
                err=True,
            )
        click.echo(f"PostGIS running on 127.0.0.1:{info['port']} (data in {info['data_dir']})", err=True)
    revision = database.migrate(settings())
    click.echo(f"schema at revision {revision}", err=True)
    click.echo(settings().database_url)


@db.command("stop")
def db_stop():
    """Stop the local cluster."""
    if not _external_note():
        info = database.stop(settings())
        click.echo("stopped" if not info["running"] else "still running")


@db.command("status")
def db_status():
    """Say whether the local cluster runs; exit 1 when it does not."""
    if _external_note():
        click.echo(settings().database_url)
        return
    info = database.status(settings())
    click.echo(json.dumps(info, indent=2))
    sys.exit(0 if info["running"] else EXIT_PROBLEMS)


@db.command("url")
def db_url():
    """Print the SQLAlchemy URL gridmap uses."""
    click.echo(settings().database_url)


@db.command("upgrade")
def db_upgrade():
    """Apply the Alembic migrations to the configured database."""
    click.echo(f"schema at revision {database.migrate(settings())}")
