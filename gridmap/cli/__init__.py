"""The ``gridmap`` command: a root group that only attaches each feature's commands (defined beside
nothing else in their own module).  Errors become one line on stderr and exit code 2, in
:class:`.common.Group` only."""

from __future__ import annotations

import click

from .common import Group
from .db import db
from .demo import demo
from .edit import edit, history_cmd
from .events import events_cmd
from .files import export_cmd, import_cmd
from .lookup import assign_cmd, lookup_cmd, record_cmd
from .matters import matters
from .partition import partition_cmd
from .risk import risk
from .serve import serve
from .users import users
from .validate import stats_cmd, validate_cmd


@click.group(cls=Group)
@click.version_option(package_name="gridmap")
def main():
    """gridmap: electronic grid map ("一张图") for community grid governance on PostGIS."""


for command in (
    db,
    import_cmd,
    export_cmd,
    validate_cmd,
    partition_cmd,
    stats_cmd,
    lookup_cmd,
    assign_cmd,
    record_cmd,
    demo,
    serve,
    risk,
    users,
    edit,
    history_cmd,
    matters,
    events_cmd,
):
    main.add_command(command)
