"""A year of demo cases that went through the loop with realistic timings: most handled on time,
some escalated up the grid chain, some suspended, sent back or reopened after an unhappy rating,
a few cancelled, and the last days' cases still open (some overdue today).  Pure: grids,
departments and workers are given; returns the cases and their log as rows.

Every path below is run through the loop's table once (:func:`check_paths`), so the demo holds
only transitions the loop allows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from ..events import clock, routing
from ..events.catalogue import LEVELS_UP, Catalogue
from ..events.loop import LOOP, Context

#: (weight, actions after filing).  ``dispatch`` is skipped for cases routed automatically.
PATHS = (
    (64, ("dispatch", "dispose", "verify", "close", "rate")),
    (10, ("dispatch", "escalate", "dispose", "verify", "close", "rate")),
    (2, ("dispatch", "escalate", "escalate", "dispose", "verify", "close", "rate")),
    (8, ("dispatch", "dispose", "verify", "close", "assess")),
    (5, ("dispatch", "dispose", "verify", "close", "rate_low", "reopen", "dispose", "verify", "close", "assess")),
    (3, ("dispatch", "suspend", "resume", "dispose", "verify", "close", "rate")),
    (3, ("dispatch", "send_back", "dispatch", "dispose", "verify", "close", "rate")),
    (3, ("dispatch", "dispose", "reject", "dispose", "verify", "close", "rate")),
    (2, ("dispatch", "send_back", "cancel")),
    (4, ("dispatch", "dispose_late", "verify", "close", "rate")),
)
ROLE_OF = {
    "dispatch": "dispatcher",
    "dispose": "handler",
    "dispose_late": "handler",
    "verify": "verifier",
    "close": "dispatcher",
    "rate": "reporter",
    "rate_low": "reporter",
    "assess": "system",
    "escalate": "system",
    "reopen": "dispatcher",
    "suspend": "handler",
    "resume": "handler",
    "send_back": "handler",
    "reject": "verifier",
    "cancel": "dispatcher",
}
#: Demo variants of the loop's actions: an unhappy rating, a disposal long past the deadline.
REAL = {"rate_low": "rate", "dispose_late": "dispose"}
#: Hours after the previous step (median), before scaling by the matter's deadline where it is work.
DELAY = {
    "dispatch": 0.7,
    "verify": 3.0,
    "close": 1.0,
    "rate": 20.0,
    "rate_low": 20.0,
    "assess": 14 * 24.0,
    "reopen": 6.0,
    "suspend": 2.0,
    "resume": 30.0,
    "send_back": 1.5,
    "reject": 4.0,
    "cancel": 2.0,
}


def _ctx(action: str, rating: int | None = None) -> Context:
    """A context in which ``action`` passes every guard (the demo writes only what the loop allows)."""
    return Context(
        roles=frozenset({ROLE_OF[action]}),
        actor="v",
        disposer="h",
        note="demo",
        is_assignee=True,
        assignee="d",
        matter_known=True,
        can_climb=True,
        disposal_checked=True,
        rating=rating,
        rating_window_open=action != "assess",
    )


def _steps(path: tuple, auto: bool) -> list[str]:
    """The path's actions after filing: an automatic case was dispatched with it."""
    return list(path[1:]) if auto and path[0] == "dispatch" else list(path)


def check_paths() -> dict[tuple, list[str]]:
    """Each path's states after each step, from the loop itself (ValueError if one is not allowed)."""
    out = {}
    for _, path in PATHS:
        for auto in (True, False):
            state, states = ("dispatched" if auto else "filed"), []
            for action in _steps(path, auto):
                real = REAL.get(action, action)
                state = LOOP.fire(state, real, _ctx(action, 1 if action == "rate_low" else 5)).target
                states.append(state)
            out[(path, auto)] = states
    return out


def generate(
    catalogue: Catalogue,
    cal: clock.WorkCalendar,
    micros: list[dict],
    departments: dict,
    workers: dict,
    now: datetime,
    n: int,
    seed: int = 7,
) -> tuple[list[dict], list[list[dict]]]:
    """``n`` cases over the year before ``now`` in ``micros`` (dicts with the chain's ``*_code`` and
    ``lon``/``lat``): (case rows, each case's log rows)."""
    rng = np.random.default_rng(seed)
    states_of = check_paths()
    matters = list(catalogue.matters.values())
    weights = np.array([3.0 if m.auto else 1.0 for m in matters])
    weights /= weights.sum()
    path_w = np.array([w for w, _ in PATHS], dtype=float)
    path_w /= path_w.sum()
    start = now - timedelta(days=365)
    rows, logs = [], []
    for _ in range(n):
        matter = matters[rng.choice(len(matters), p=weights)]
        micro = micros[rng.integers(len(micros))]
        chain = {lv: micro[f"{lv}_code"] for lv in LEVELS_UP if micro.get(f"{lv}_code")}
        day = start + timedelta(days=float(rng.uniform(0, 365)))
        t = day.replace(hour=int(rng.choice([8, 9, 10, 11, 14, 15, 16, 17, 19, 21])), minute=int(rng.integers(60)))
        if t > now:
            t = now - timedelta(hours=float(rng.uniform(1, 48)))
        path = PATHS[rng.choice(len(PATHS), p=path_w)][1]
        r = routing.route(catalogue, matter, chain, departments, workers)
        row, log = _life(
            catalogue,
            cal,
            matter,
            chain,
            r,
            micro,
            t,
            now,
            path,
            states_of[(path, r.assigned)],
            rng,
            (departments, workers),
        )
        rows.append(row)
        logs.append(log)
    return rows, logs


def _hours(rng, median: float) -> timedelta:
    return timedelta(hours=float(median * rng.lognormal(0.0, 0.6)))


def _life(catalogue, cal, matter, chain, r, micro, t0, now, path, states, rng, handlers) -> tuple[dict, list[dict]]:
    """One case's row and log, cut at ``now`` (a case whose next step lies in the future is still open)."""
    budget, working = clock.budget(matter.deadline, cal)

    def deadline(t):
        run = clock.Clock(budget, working, 0.0, t)
        return clock.when_used(run, 1.0, cal), clock.when_used(run, catalogue.defaults.warn_ratio, cal)

    jitter = rng.uniform(-0.00025, 0.00025, 2)
    channel = str(rng.choice(["hotline", "app", "wechat", "patrol", "qr"]))
    row = {
        "received_at": t0,
        "reported_at": t0,
        "source": channel,
        "text": f"{matter.name}（演示）",
        "lon": micro["lon"] + jitter[0],
        "lat": micro["lat"] + jitter[1],
        **{f"{lv}_code": chain.get(lv) for lv in LEVELS_UP},
        "outside": False,
        "matter_code": matter.code,
        "handling_level": r.level or matter.level,
        "department_code": r.department,
        "assignee": f"grid:{r.grid}" if r.workers else None,
        "route": {"why": r.why},
        "escalations": 0,
        "reopened": 0,
    }
    due, warn = deadline(t0)
    log = [_entry(t0, "report", None, "reported", "reporter"), _entry(t0, "file", "reported", "filed", "system")]
    state, t, paused = "filed", t0, None
    if r.assigned:
        log.append(_entry(t0, "dispatch", "filed", "dispatched", "system", r.why))
        state = "dispatched"
    steps = _steps(path, r.assigned)
    for action, target in zip(steps, states, strict=True):
        if action == "escalate":
            nxt = due
        elif action in ("dispose", "dispose_late"):
            share = rng.uniform(1.2, 4.0) if action == "dispose_late" else rng.beta(2.0, 3.0)
            nxt = cal.add_working(t, share * budget) if working else t + timedelta(seconds=share * budget)
        else:
            nxt = t + _hours(rng, DELAY[action])
        if nxt > now:
            break
        t, real = nxt, REAL.get(action, action)
        note = None
        if action == "dispatch" and not row["department_code"]:
            row["department_code"] = handlers[0].get((matter.handlers[matter.level], chain.get(matter.level)))
        elif action == "escalate":
            up = routing.escalation(catalogue, matter, row["handling_level"], chain, *handlers)
            if up is not None:
                row.update(
                    handling_level=up.level,
                    escalations=row["escalations"] + 1,
                    escalated_at=t,
                    department_code=up.department,
                    assignee=f"grid:{up.grid}" if up.workers else None,
                )
                note = up.why
            due, warn = deadline(t)
        elif action == "suspend":
            paused = t
        elif action == "resume":
            due = clock.carry(due, paused, t, working, cal)
            warn = clock.carry(warn, paused, t, working, cal)
            paused = None
        elif real == "dispose":
            row["disposed_by"] = "handler"
        elif action == "verify":
            row["verified_by"] = "verifier"
        elif action == "close":
            row["closed_at"] = t
        elif action in ("rate", "rate_low"):
            score = int(rng.choice([1, 2])) if action == "rate_low" else int(rng.choice([3, 4, 4, 5, 5, 5]))
            row.update(rating=score, rated_at=t)
        elif action == "reopen":
            row.update(reopened=row["reopened"] + 1, closed_at=None, disposed_by=None, verified_by=None)
            due, warn = deadline(t)
        log.append(_entry(t, real, state, target, ROLE_OF[action], note))
        state = target
    open_ = state not in ("closed", "assessed", "cancelled", "reopen_requested")
    row.update(
        state=state,
        due_at=due,
        warn_at=warn,
        paused_at=paused,
        warned_at=warn if open_ and warn <= now else None,
        tick_at=(
            None
            if paused or not open_ or state in ("disposed", "verified")
            else clock.next_tick(warn, warn if warn <= now else None, due, True)
        ),
    )
    if state == "closed":  # not rated yet: the tick assesses it when the rating period ends
        row["tick_at"] = row["closed_at"] + timedelta(days=catalogue.defaults.rating_days)
    return row, log


def department_rows(catalogue: Catalogue, grids: list[dict]) -> list[dict]:
    """One department per kind that exists at each grid's level (``grids``: code, level, name)."""
    out = []
    for g in grids:
        for kind, dept in catalogue.departments.items():
            title = dept.titles.get(g["level"])
            if title:
                out.append(
                    {
                        "code": f"{g['code']}-{kind}",
                        "name": f"{g['name']}{title}",
                        "level": g["level"],
                        "grid_code": g["code"],
                        "categories": [kind],
                    }
                )
    return out


def _entry(at, action, src, dst, role, note=None) -> dict:
    actor = {"system": "system", "reporter": "reporter"}.get(role, f"demo-{role}")
    return {
        "at": at,
        "actor": actor,
        "role": role,
        "action": action,
        "from_state": src,
        "to_state": dst,
        "note": note,
        "detail": {},
    }
