"""The partitioner as a package (stand-in until the layout of issue #11 lands: it re-exports the one-module
partitioner, now ``search``, under its old names)."""

from . import search as _search
from .search import *  # noqa: F403


def __getattr__(name):
    return getattr(_search, name)
