"""The clock's tick: warnings at 80 % of the handling time and, at 100 %, escalation one level up
the case's grid chain to that level's handler (吹哨报到), logged, until the district; and closed
cases nobody rated within the rating period assessed without a rating.

Exactly once per due case however many tickers run (cron, every server worker, several servers):
each batch takes its cases with ``FOR UPDATE SKIP LOCKED`` and moves their ``tick_at`` forward in
the same transaction, so another ticker either skips a case while it is held or no longer finds it
due once it is committed.
"""

from __future__ import annotations

import functools
from datetime import datetime

from ..domain.events import clock, routing
from ..domain.events.catalogue import LEVELS_UP
from ..domain.events.loop import LOOP, Context
from ..store import cases, departments
from .events import SYSTEM, Centre, can_climb, clock_columns, route_json

BATCH = 2000


def tick(centre: Centre, now: datetime | None = None, *, batch: int = BATCH) -> dict:
    """Warn and escalate every case due by ``now``; counts of what was done."""
    now = now or centre.now()
    done = {"warned": 0, "escalated": 0, "at_top": 0, "assessed": 0}
    while True:
        with centre.engine.begin() as conn:
            due = cases.due(conn, now, batch)
            if not due:
                return done
            _batch(conn, centre, due, now, done)
        if len(due) < batch:
            return done


@functools.lru_cache(maxsize=32)
def _system_step(state: str, action: str):
    """The step the tick takes (assess a closed case whose rating window is over; escalate a case
    that can climb), fired through the loop once per state and action: the same for every case, and
    a state machine built per case cost the tick milliseconds each."""
    ctx = Context(roles=frozenset({SYSTEM}), can_climb=True, rating_window_open=False)
    return LOOP.fire(state, action, ctx)


def _batch(conn, centre: Centre, due: list[dict], now, done: dict) -> None:
    codes = {c[col] for c in due for col in cases.CHAIN_COLUMNS if c[col]}
    depts, workers = departments.for_grids(conn, codes), departments.workers_for(conn, codes)
    entries, updates = [], []
    for case in due:
        matter = centre.catalogue.matters.get(case["matter_code"])
        chain = {lv: case[f"{lv}_code"] for lv in LEVELS_UP if case[f"{lv}_code"]}
        if matter is None:  # a matter dropped from the catalogue: nothing to escalate by
            updates.append((case["id"], {"tick_at": None}))
            continue
        values, entry = {}, None
        if case["state"] == "closed":  # the reporter did not rate it in time: assessed without a rating
            step = _system_step("closed", "assess")
            values = {"state": step.target, "tick_at": None}
            entry = {
                "action": step.action,
                "from_state": step.state,
                "to_state": step.target,
                "note": "not rated in time",
                "detail": {},
            }
            done["assessed"] += 1
        elif case["due_at"] is not None and case["due_at"] <= now:
            up = routing.escalation(centre.catalogue, matter, case["handling_level"], chain, depts, workers)
            if up is not None and case["state"] in ("filed", "dispatched"):
                step = _system_step(case["state"], "escalate")
                values = {
                    "handling_level": up.level,
                    "department_code": up.department,
                    "assignee": f"grid:{up.grid}" if up.workers else None,
                    "route": route_json(up),
                    "escalations": case["escalations"] + 1,
                    "escalated_at": now,
                    **clock_columns(centre, matter, now, up.level, chain),
                }
                entry = {
                    "action": step.action,
                    "from_state": step.state,
                    "to_state": step.target,
                    "note": up.why,
                    "detail": {"from_level": case["handling_level"], "to_level": up.level},
                }
                done["escalated"] += 1
            else:
                values = {"tick_at": None}
                entry = {
                    "action": "overdue",
                    "from_state": case["state"],
                    "to_state": case["state"],
                    "note": "overdue at the top of its grid chain",
                    "detail": {"level": case["handling_level"]},
                }
                done["at_top"] += 1
        elif case["warned_at"] is None and case["warn_at"] is not None and case["warn_at"] <= now:
            values = {
                "warned_at": now,
                "tick_at": clock.next_tick(
                    case["warn_at"], now, case["due_at"], can_climb(matter, case["handling_level"], chain)
                ),
            }
            entry = {
                "action": "warn",
                "from_state": case["state"],
                "to_state": case["state"],
                "note": f"{centre.catalogue.defaults.warn_ratio:.0%} of the handling time used",
                "detail": {},
            }
            done["warned"] += 1
        else:  # tick_at ran ahead of the clock (an edit): look again at the next instant
            values = {"tick_at": clock.next_tick(case["warn_at"], case["warned_at"], case["due_at"], True)}
        updates.append((case["id"], values))
        if entry:
            entries.append({"report_id": case["id"], "at": now, "actor": SYSTEM, "role": SYSTEM, **entry})
    cases.update_many(conn, updates)  # one statement per set of columns, not one round trip per case
    cases.log_many(conn, entries)
