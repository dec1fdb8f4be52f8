"""What every command shares: the settings, a ready database engine, the --at and --crs options, and
the one place gridmap errors become one line on stderr and an exit code."""

from __future__ import annotations

import click
from sqlalchemy.engine import Engine

from ..domain.dates import parse_at
from ..domain.risk import Rules
from ..errors import GridmapError
from ..services import database, resources
from ..services.files import CSV_ENCODINGS
from ..settings import Settings

EXIT_PROBLEMS = 1  # validate found problems; db status: not running
EXIT_ERROR = 2  # bad input, rejected import, unreachable database


class Group(click.Group):
    """The root group: turns gridmap errors into one readable line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GridmapError as exc:
            click.echo(f"gridmap: error: {exc.message}", err=True)
            ctx.exit(EXIT_ERROR)


def settings() -> Settings:
    """This command's settings, read from the environment once."""
    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = Settings.from_env()
    return root.obj


def engine() -> Engine:
    """The configured database, checked to be reachable and migrated."""
    return database.ready_engine(settings())


def rules() -> Rules:
    """The risk rules in force."""
    return resources.load_rules(settings().risk_rules_path)


def _parse_at(ctx, param, value):
    try:
        return parse_at(value, settings().timezone)
    except GridmapError as exc:
        raise click.BadParameter(exc.message) from None


AT = click.option(
    "--at",
    callback=_parse_at,
    help="Use the versions valid at this ISO date-time; a date alone is the end of that day, in the office zone.",
)
ENCODING = click.option(
    "--encoding",
    default="utf-8-sig",
    show_default=True,
    type=click.Choice(CSV_ENCODINGS),
    help="CSV output: UTF-8 with a BOM (opens in Excel), plain UTF-8, or GBK/GB18030.",
)
CRS = click.option("--crs", default=None, help="Coordinates' CRS: wgs84 (default), cgcs2000, gcj02, bd09, EPSG:n.")


ENGINE_OPTIONS = [
    click.option(
        "--engine",
        "run_engine",
        type=click.Choice(["single", "dask"]),
        default="single",
        show_default=True,
        help="dask: run on a Dask cluster, the input read in partitions (README 'Beyond one machine').",
    ),
    click.option("--scheduler", default=None, help="With --engine dask: a running scheduler (tcp://host:8786)."),
    click.option(
        "--workers", type=click.IntRange(1), default=None, help="With --engine dask and no scheduler: local workers."
    ),
]


def engine_options(fn):
    """--engine, --scheduler, --workers: the commands that run on Dask too."""
    for option in reversed(ENGINE_OPTIONS):
        fn = option(fn)
    return fn


def check_engine(run_engine, scheduler, workers):
    if run_engine != "dask" and (scheduler or workers):
        raise click.UsageError("--scheduler and --workers go with --engine dask")
