"""``gridmap serve``: the map and API under granian."""

from __future__ import annotations

import os

import click

from ..services import background, users
from ..settings import BODY_TIMEOUT, HEADER_TIMEOUT, MAX_BODY
from .common import engine, settings


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=min(2, os.cpu_count() or 1),
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (each holds its own lookup index).",
)
@click.option(
    "--threads",
    # granian warns above 2 per core + 1 (mp.py); more threads than that only queue on the GIL
    default=min(8, (os.cpu_count() or 1) * 2 + 1),
    show_default=True,
    type=click.IntRange(min=1),
    help="Request threads per worker (default: 2 per core + 1, as many as granian deems sensible).",
)
@click.option(
    "--lookup-engine",
    default="index",
    show_default=True,
    type=click.Choice(["index", "postgis"]),
    help="Answer lookups from the in-memory index, or by one PostGIS query each (for comparison).",
)
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Build the current lookup index when a worker starts rather than on its first lookup.",
)
@click.option(
    "--max-body",
    default=MAX_BODY,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Request-body limit in bytes (413 beyond, before reading it).",
)
@click.option(
    "--body-timeout",
    default=BODY_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0.1, max=600),
    help="Seconds a client has to send its whole request body (408 after).",
)
@click.option(
    "--header-timeout",
    default=HEADER_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0.1, max=60),
    help="Seconds a client has to send its request headers (the connection is closed after).",
)
@click.option(
    "--tick-seconds",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds between the event centre's clock ticks, run once across all servers (0: leave it to cron).",
)
@click.option(
    "--rollup-every",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between risk roll-up refreshes, run by one server of all on the database (0: never).",
)
def serve(
    host,
    port,
    workers,
    threads,
    lookup_engine,
    warm,
    max_body,
    body_timeout,
    header_timeout,
    tick_seconds,
    rollup_every,
):
    """Serve the map and API (granian, one process per worker).  Background jobs run once across
    every server on the database (README "Beyond one machine")."""
    # deferred: the web app (Flask, folium, granian) adds ~0.6 s to every other command's start
    from ..web import auth, server

    read = auth.read_mode(settings().auth_read)
    n = users.count_active(engine())
    server.check_bind(host, port)
    click.echo(f"gridmap on http://{host}:{port}/ ({workers} workers, lookups: {lookup_engine})", err=True)
    reads = "open" if read == "open" else "viewer token or above"
    click.echo(
        f"reads: {reads} ({auth.ENV_READ}); writes: a token of the route's role; {n} active users"
        + ("" if n else ": every write gets 401 until `gridmap users add NAME --role admin`"),
        err=True,
    )
    eng = engine()
    url = eng.url.set(drivername="postgresql").render_as_string(hide_password=False)
    background.start_process(
        url,
        rollup_every=rollup_every,
        rules_path=settings().risk_rules_path,
        settings=settings(),
        tick_every=tick_seconds,
        persist_index=lookup_engine == "index",
    )
    server.serve(
        host,
        port,
        workers=workers,
        threads=threads,
        lookup_engine=lookup_engine,
        warm=warm,
        max_body=max_body,
        body_timeout=body_timeout,
        header_timeout=header_timeout,
    )
