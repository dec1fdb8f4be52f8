"""The closed loop of a case (发现 → 立案 → 派遣 → 处置 → 核查 → 结案 → 考核, 监督 throughout) as one
table of (state, action, roles, next state, guards), enforced by python-statemachine.

The table is data: :data:`TABLE` is checked when the module loads (unknown states, roles or
guards, duplicate rows) and handed to ``statemachine.io.create_machine_class_from_definition``,
which checks it again as a chart (every non-final state has a way out, final states none).
python-statemachine was chosen over ``transitions``: it builds the machine from a plain
definition, evaluates guards as conditions with the event's keyword arguments, and refuses an
event with no enabled transition instead of ignoring it.

:meth:`Loop.fire` answers in three ways a caller can show: the action is not possible from this
state (409, naming the actions that are), the caller's role may not take it (403, naming the
roles that may and the actions the caller may take), or a guard fails (409, naming the rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from statemachine.exceptions import TransitionNotAllowed
from statemachine.io import create_machine_class_from_definition

from ...errors import Conflict, Forbidden, InputError

#: States with their Chinese stage names; the first is where every case starts.
STATES = {
    "reported": "发现",
    "filed": "立案",
    "dispatched": "派遣",
    "suspended": "挂起",
    "disposed": "处置",
    "verified": "核查",
    "closed": "结案",
    "assessed": "考核",
    "reopen_requested": "申请重办",
    "split_up": "已拆分",
    "merged": "已合并",
    "cancelled": "已撤销",
}
FINAL = ("merged", "cancelled")
#: States whose deadline clock runs (suspended pauses it; later states have stopped it).
CLOCK_RUNNING = ("filed", "dispatched")
OPEN = ("reported", "filed", "dispatched", "suspended", "disposed", "verified", "split_up", "reopen_requested")
ROLES = ("reporter", "dispatcher", "handler", "verifier", "supervisor", "system")
RATING_OK = 3  # a rating of 3..5 is satisfied; 1..2 opens a reopen request


@dataclass(frozen=True)
class Context:
    """What the guards look at, filled in by the service from the case and the request."""

    roles: frozenset = frozenset()
    actor: str | None = None
    note: str = ""
    is_assignee: bool = False  # the actor is the assigned worker or a member of the assigned department
    disposer: str | None = None
    assignee: str | None = None  # the new assignee of a dispatch or reassign
    matter_known: bool = False
    can_climb: bool = False  # a level above the current one exists in the case's chain
    disposal_checked: bool = False  # after-photo present and, for verify = site, taken near the case
    target: int | None = None  # the case merged into
    children: int = 0  # child cases of a split
    children_open: int = 0
    rating: int | None = None
    rating_window_open: bool = False


#: Guards by name: a test of the context and the rule it states (shown when it fails).
GUARDS: dict[str, tuple[Callable[[Context], bool], str]] = {
    "has_note": (lambda c: bool(c.note.strip()), "a note saying why is required"),
    "has_matter": (lambda c: c.matter_known, "the case needs a matter from the catalogue"),
    "has_assignee": (lambda c: bool(c.assignee), "name the department or grid worker to send it to"),
    "is_assignee": (lambda c: c.is_assignee, "only the assigned department or grid worker may do this"),
    "assignee_or_dispatcher": (
        lambda c: c.is_assignee or "dispatcher" in c.roles,
        "only the assigned department or grid worker, or a dispatcher, may do this",
    ),
    "not_disposer": (lambda c: c.actor is None or c.actor != c.disposer, "the verifier must not be the disposer"),
    "disposal_checked": (lambda c: c.disposal_checked, "the disposal needs an after-photo taken at the case"),
    "can_climb": (lambda c: c.can_climb, "the case is already at the top of its grid chain"),
    "has_target": (lambda c: c.target is not None, "name the case to merge into"),
    "has_children": (lambda c: c.children >= 2, "a split needs at least two child cases"),
    "children_closed": (lambda c: c.children_open == 0, "child cases are still open"),
    "satisfied": (lambda c: c.rating is not None and c.rating >= RATING_OK, "the rating is below 3"),
    "unsatisfied": (lambda c: c.rating is not None and c.rating < RATING_OK, "the rating is 3 or more"),
    "rating_open": (lambda c: c.rating_window_open, "the rating period of this case is over"),
    "rating_over": (lambda c: not c.rating_window_open, "the reporter may still rate this case"),
}


@dataclass(frozen=True)
class Step:
    """One row of the table."""

    state: str
    action: str
    roles: tuple[str, ...]
    target: str
    guards: tuple[str, ...] = field(default=())


def _rows(text: str) -> tuple[Step, ...]:
    """Rows from a whitespace table: state action roles(,) target guards(,) or -."""
    out = []
    for line in text.strip().splitlines():
        state, action, roles, target, guards = line.split()
        out.append(
            Step(state, action, tuple(roles.split(",")), target, () if guards == "-" else tuple(guards.split(",")))
        )
    return tuple(out)


# fmt: off
TABLE = _rows("""
reported         file       dispatcher,system       filed             has_matter
reported         cancel     dispatcher              cancelled         has_note
reported         merge      dispatcher              merged            has_target
filed            dispatch   dispatcher,system       dispatched        has_assignee
filed            escalate   system                  filed             can_climb
filed            supervise  supervisor              filed             has_note
filed            split      dispatcher              split_up          has_children
filed            merge      dispatcher              merged            has_target
filed            cancel     dispatcher              cancelled         has_note
dispatched       dispose    handler                 disposed          is_assignee,disposal_checked
dispatched       send_back  handler                 filed             is_assignee,has_note
dispatched       suspend    handler,dispatcher      suspended         assignee_or_dispatcher,has_note
dispatched       reassign   dispatcher              dispatched        has_assignee
dispatched       escalate   system                  dispatched        can_climb
dispatched       supervise  supervisor              dispatched        has_note
dispatched       split      dispatcher              split_up          has_children
dispatched       merge      dispatcher              merged            has_target
suspended        resume     handler,dispatcher      dispatched        assignee_or_dispatcher
suspended        supervise  supervisor              suspended         has_note
suspended        cancel     dispatcher              cancelled         has_note
disposed         verify     verifier                verified          not_disposer
disposed         reject     verifier                dispatched        not_disposer,has_note
verified         close      dispatcher,system       closed            -
split_up         close      system                  closed            children_closed
closed           rate       reporter                assessed          rating_open,satisfied
closed           rate       reporter                reopen_requested  rating_open,unsatisfied
closed           assess     system                  assessed          rating_over
reopen_requested reopen     dispatcher,supervisor   dispatched        -
reopen_requested decline    dispatcher,supervisor   assessed          has_note
assessed         reopen     supervisor              dispatched        has_note
""")
# fmt: on

ACTIONS = tuple(dict.fromkeys(s.action for s in TABLE))


def check_table(table: tuple[Step, ...]) -> None:
    """ValueError naming the first row with an unknown state, role or guard, or a repeated row."""
    seen = set()
    for i, step in enumerate(table, start=1):
        where = f"loop table row {i} ({step.state} {step.action})"
        for state in (step.state, step.target):
            if state not in STATES:
                raise ValueError(f"{where}: unknown state {state!r}")
        for role in step.roles:
            if role not in ROLES:
                raise ValueError(f"{where}: unknown role {role!r} (roles: {', '.join(ROLES)})")
        for guard in step.guards:
            if guard not in GUARDS:
                raise ValueError(f"{where}: unknown guard {guard!r}")
        if step.action in STATES:  # python-statemachine keeps states and events as one namespace
            raise ValueError(f"{where}: action {step.action!r} is also a state's name")
        key = (step.state, step.action, step.guards)
        if key in seen:
            raise ValueError(f"{where}: repeats an earlier row")
        seen.add(key)


def _cond(names: tuple[str, ...], roles: tuple[str, ...]) -> list:
    """Conditions of one transition: the caller holds one of ``roles``, then every guard."""

    def role_ok(ctx: Context) -> bool:
        return bool(ctx.roles & set(roles))

    return [role_ok] + [_guard(n) for n in names]


def _guard(name: str):
    """GUARDS[name] as a condition: python-statemachine passes the event's ``ctx`` by name."""
    test = GUARDS[name][0]

    def check(ctx: Context) -> bool:
        return test(ctx)

    check.__name__ = name
    return check


def _machine_class(table: tuple[Step, ...]):
    """The python-statemachine class for ``table`` (InvalidDefinition when the chart is unsound)."""
    states: dict[str, dict] = {}
    for i, name in enumerate(STATES):
        states[name] = {"initial": i == 0, "final": name in FINAL, "on": {}}
    for step in table:
        transitions = states[step.state]["on"].setdefault(step.action, [])
        transitions.append(
            {"target": step.target, "cond": _cond(step.guards, step.roles), "internal": step.target == step.state}
        )
    for entry in states.values():
        if not entry["on"]:
            del entry["on"]
    return create_machine_class_from_definition(
        "CaseLoop", states=states, allow_event_without_transition=False, catch_errors_as_events=False
    )


class Loop:
    """The loop of :data:`TABLE`; checked and compiled once."""

    def __init__(self, table: tuple[Step, ...] = TABLE):
        check_table(table)
        self.table = table
        self._machine = _machine_class(table)

    def steps(self, state: str) -> list[Step]:
        return [s for s in self.table if s.state == state]

    def actions(self, state: str, roles=None) -> list[str]:
        """Actions possible from ``state`` (for any of ``roles`` when given), in table order."""
        return list(dict.fromkeys(s.action for s in self.steps(state) if roles is None or set(s.roles) & set(roles)))

    def fire(self, state: str, action: str, ctx: Context) -> Step:
        """The step taken by ``action`` from ``state``.

        InputError for an unknown state or action; Conflict (409) when the action is not possible
        from ``state`` or a guard fails; Forbidden (403) when none of ``ctx.roles`` may take it.
        """
        if state not in STATES:
            raise InputError(f"unknown state {state!r}")
        if action not in ACTIONS:
            raise InputError(f"unknown action {action!r} (actions: {', '.join(ACTIONS)})")
        rows = [s for s in self.steps(state) if s.action == action]
        mine = self.actions(state, ctx.roles)
        if not rows:
            raise Conflict(
                f"cannot {action} a case that is {state} ({STATES[state]}); "
                f"allowed now: {', '.join(mine) or 'nothing'}",
                detail={"state": state, "allowed": mine},
            )
        needed = sorted({r for s in rows for r in s.roles})
        if not set(needed) & set(ctx.roles):
            raise Forbidden(
                f"{action} needs the role {' or '.join(needed)}; your roles may: {', '.join(mine) or 'nothing here'}",
                detail={"state": state, "needed": needed, "allowed": mine},
            )
        machine = self._machine(start_value=state)
        try:
            machine.send(action, ctx=ctx)
        except TransitionNotAllowed:
            # the row that came closest names the rule(s) that stopped it
            failing = [[g for g in s.guards if not GUARDS[g][0](ctx)] for s in rows if set(s.roles) & set(ctx.roles)]
            why = "; ".join(GUARDS[g][1] for g in min(failing, key=len))
            raise Conflict(f"cannot {action} now: {why}", detail={"state": state, "allowed": mine}) from None
        target = machine.current_state_value
        return next(s for s in rows if s.target == target and all(GUARDS[g][0](ctx) for g in s.guards))


#: The loop of the shipped table, built (and so checked) when the module is imported.
LOOP = Loop()
