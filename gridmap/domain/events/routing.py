"""Auto-dispatch: which department or grid worker gets a case, from the matter's rule and the
case's grid chain, and why.  Pure: the departments and workers registered per grid are given.

An automatic matter goes to the department kind its row names for its first handling level, at
the case's grid of that level (or to that micro-grid's/courtyard's grid workers for ``grid``);
every other case goes to the dispatchers' queue of the case's street.  A case outside every
grid goes to the city queue.  Escalation picks the next level up the same chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .catalogue import GRID_KIND, LEVELS_UP, Catalogue, Matter

#: The level whose dispatchers take cases that are not sent automatically.
QUEUE_LEVEL = "street"


@dataclass(frozen=True)
class Route:
    """Where a case goes: a department or grid workers at ``level``'s grid, or a queue."""

    level: str | None
    grid: str | None
    kind: str | None
    department: int | None
    workers: tuple[int, ...]
    queue: str | None  # grid code whose dispatchers' queue holds the case ("" for the city queue)
    why: str

    @property
    def assigned(self) -> bool:
        return self.department is not None or bool(self.workers)


def queue_of(chain: Mapping[str, str]) -> str:
    """The grid whose dispatchers take a case with this chain: its street, else the lowest level above."""
    for level in (QUEUE_LEVEL, "district"):
        if chain.get(level):
            return chain[level]
    return ""


def _handler(
    catalogue: Catalogue,
    matter: Matter,
    level: str,
    chain: Mapping[str, str],
    departments: Mapping[tuple[str, str], int],
    workers: Mapping[str, tuple[int, ...]],
    how: str,
) -> Route:
    """The route to ``level``'s handler of ``matter`` in ``chain``, or to the queue saying what is missing."""
    grid, kind = chain[level], matter.handlers[level]
    title = catalogue.department_title(kind, level)
    where = (matter.line or catalogue.source).rsplit("/", 1)[-1]  # the catalogue row, without the server's folders
    rule = f"matter {matter.code} {matter.name} ({where}) {how} at {level} level"
    if kind == GRID_KIND:
        found = tuple(workers.get(grid, ()))
        if found:
            return Route(level, grid, kind, None, found, None, f"{rule}: {title} of grid {grid}")
        missing = f"no grid worker is registered for grid {grid}"
    else:
        dept = departments.get((kind, grid))
        if dept is not None:
            return Route(level, grid, kind, dept, (), None, f"{rule}: {title} of grid {grid}")
        missing = f"no {title} ({kind}) is registered for grid {grid}"
    queue = queue_of(chain)
    return Route(
        level, grid, kind, None, (), queue, f"{rule}, but {missing}: dispatchers' queue of {queue or 'the city'}"
    )


def route(
    catalogue: Catalogue,
    matter: Matter,
    chain: Mapping[str, str],
    departments: Mapping[tuple[str, str], int],
    workers: Mapping[str, tuple[int, ...]],
) -> Route:
    """Where a newly filed case of ``matter`` goes; ``chain`` maps level → grid code (empty outside every grid)."""
    queue = queue_of(chain)
    if not chain:
        return Route(None, None, None, None, (), "", "outside every grid: the city dispatchers' queue")
    if not matter.auto:
        return Route(
            None,
            None,
            None,
            None,
            (),
            queue,
            f"matter {matter.code} {matter.name} is dispatched by hand: dispatchers' queue of {queue or 'the city'}",
        )
    level = next((lv for lv in LEVELS_UP[LEVELS_UP.index(matter.level) :] if chain.get(lv)), None)
    if level is None:
        return Route(None, None, None, None, (), queue, f"no grid at or above {matter.level} level in the chain")
    how = "is dispatched automatically" + ("" if level == matter.level else f" (no {matter.level} grid here)")
    return _handler(catalogue, matter, level, chain, departments, workers, how)


def escalation(
    catalogue: Catalogue,
    matter: Matter,
    level: str | None,
    chain: Mapping[str, str],
    departments: Mapping[tuple[str, str], int],
    workers: Mapping[str, tuple[int, ...]],
) -> Route | None:
    """The route one level up from ``level`` in ``chain`` (吹哨报到), or None at the top."""
    start = matter.level if level is None else level
    above = [lv for lv in matter.levels_above(start) if chain.get(lv)]
    if level is None and chain.get(start):
        above = [start] + above  # never handled at a level yet: its own level first
    if not above:
        return None
    return _handler(catalogue, matter, above[0], chain, departments, workers, f"escalated from {level or 'the queue'}")
