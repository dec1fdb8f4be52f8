"""The ``gridmap`` command: a root group that only attaches each feature's commands (defined beside
nothing else in their own module).  Errors become one line on stderr and exit code 2, in
:class:`.common.Group` only.

Each command's module is imported when that command runs, not at start: ``gridmap assign`` or
``gridmap lookup`` should not pay for importing the partitioner, the demo generator and the web app
(about a second of a short command's run)."""

from __future__ import annotations

import atexit
import importlib
import os
import sys

import click

from .common import Group

#: command name -> "module:attribute" (modules under gridmap.cli)
COMMANDS = {
    "db": "db:db",
    "import": "files:import_cmd",
    "export": "files:export_cmd",
    "validate": "validate:validate_cmd",
    "partition": "partition:partition_cmd",
    "stats": "validate:stats_cmd",
    "lookup": "lookup:lookup_cmd",
    "assign": "lookup:assign_cmd",
    "record": "lookup:record_cmd",
    "demo": "demo:demo",
    "serve": "serve:serve",
    "risk": "risk:risk",
    "users": "users:users",
    "edit": "edit:edit",
    "history": "edit:history_cmd",
    "people": "people:people",
    "qr": "qr:qr",
    "matters": "matters:matters",
    "events": "events:events_cmd",
}


class LazyGroup(Group):
    """The root group, importing a command's module only when it is asked for."""

    def list_commands(self, ctx):
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="gridmap")
def main():
    """gridmap: electronic grid map ("一张图") for community grid governance on PostGIS."""


def run() -> None:
    """The ``gridmap`` console script: :func:`main`, then out of the process once its work is done,
    without Python's teardown, which frees every object and module one by one (~0.12 s of a one-point
    `gridmap lookup` of 0.8 s on the Zhengzhou-scale city).  What that teardown would have done that
    matters is done here: the output flushed and the functions registered with ``atexit`` run (the
    command's files are closed and its transactions ended before it returns: with-blocks throughout)."""
    try:
        main.main(prog_name="gridmap")  # standalone: ends in SystemExit with the command's code
        code = 0
    except SystemExit as done:
        code = done.code
    if "gridmap.store.db" in sys.modules:  # the command used a database: when it wrote, the servers hear of it first
        # deferred: a command that never touched a database does not load the lookup machinery to find that out
        from ..services import locator

        locator.heard_by_servers(thread=False)
    if not isinstance(code, int):  # as Python's own exit: None is 0, anything else is printed, then 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `gridmap … | head`: the reader left
        code = code or 1
    atexit._run_exitfuncs()
    os._exit(code)
