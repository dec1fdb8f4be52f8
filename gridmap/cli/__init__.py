"""The ``gridmap`` command: a root group that only attaches each feature's commands (defined beside
nothing else in their own module).  Errors become one line on stderr and exit code 2, in
:class:`.common.Group` only.

Each command's module is imported when that command runs, not at start: ``gridmap assign`` or
``gridmap lookup`` should not pay for importing the partitioner, the demo generator and the web app
(about a second of a short command's run)."""

from __future__ import annotations

import importlib

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
