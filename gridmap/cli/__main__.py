"""``python -m gridmap.cli …`` runs the ``gridmap`` command."""

from . import run

run()
