"""Deadlines on the Chinese working calendar: working hours, working days or calendar days,
paused while a case is suspended, a warning at 80 % of the time and overdue at 100 %.

Working days come from ``chinese-calendar`` (statutory holidays off, make-up working days 调休
on).  Its data end with the last year the State Council has announced; beyond that a Monday to
Friday week is assumed, since that is what the calendar will be apart from holidays not yet
published (the clock must not stop working on 1 January).

A case's clock is a small value (:class:`Clock`): the budget, what was used before the current
run, and when the current run started (None while paused).  Everything is pure arithmetic on
aware datetimes; the local day is taken in the calendar's zone (Asia/Shanghai unless told).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from ...errors import InputError
from .catalogue import Deadline

DAY = 86_400.0


@lru_cache(maxsize=8192)
def is_workday(day: date) -> bool:
    """True on a Chinese working day (make-up days included); Monday to Friday past the data."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year not yet published
        return day.weekday() < 5


class WorkCalendar:
    """Working periods of a working day (minutes after midnight) in ``tz``."""

    def __init__(self, work_hours=((9 * 60, 12 * 60), (13 * 60, 18 * 60)), tz: str = "Asia/Shanghai"):
        self.periods = tuple((int(a) * 60, int(b) * 60) for a, b in work_hours)  # seconds after midnight
        self.day_seconds = float(sum(b - a for a, b in self.periods))
        self.tz = ZoneInfo(tz)

    def _local(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            raise InputError(f"{when.isoformat()} has no time zone")
        return when.astimezone(self.tz)

    def _at(self, day: date, second: float) -> datetime:
        return datetime.combine(day, time(), self.tz) + timedelta(seconds=second)

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end] (0 when end is before start)."""
        a, b = self._local(start), self._local(end)
        if b <= a:
            return 0.0
        total, day = 0.0, a.date()
        while day <= b.date():
            if is_workday(day):
                lo = (a - self._at(day, 0)).total_seconds() if day == a.date() else 0.0
                hi = (b - self._at(day, 0)).total_seconds() if day == b.date() else DAY
                total += sum(max(0.0, min(hi, p1) - max(lo, p0)) for p0, p1 in self.periods)
            day += timedelta(days=1)
        return total

    def add_working(self, start: datetime, seconds: float) -> datetime:
        """The instant ``seconds`` of working time after ``start`` (``start`` itself for 0)."""
        a = self._local(start)
        left, day = float(seconds), a.date()
        if left <= 0:
            return a
        whole = int(left // self.day_seconds) - 1  # skip whole working days in one go, keep one for the rest
        lo = (a - self._at(day, 0)).total_seconds()
        while True:
            if is_workday(day):
                if whole > 0 and lo == 0.0:
                    left -= self.day_seconds
                    whole -= 1
                else:
                    for p0, p1 in self.periods:
                        span = max(0.0, p1 - max(lo, p0))
                        if span >= left:
                            return self._at(day, max(lo, p0) + left)
                        left -= span
            day, lo = day + timedelta(days=1), 0.0


@dataclass(frozen=True)
class Clock:
    """A case's deadline clock: ``budget`` seconds (working or calendar), ``used`` before the
    current run, running since ``since`` (None while paused)."""

    budget: float
    working: bool
    used: float = 0.0
    since: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.since is None


def budget(deadline: Deadline, cal: WorkCalendar) -> tuple[float, bool]:
    """(seconds, whether they are working seconds) of a matter's deadline."""
    if deadline.unit == "h":
        return deadline.amount * 3600.0, True
    if deadline.unit == "wd":
        return deadline.amount * cal.day_seconds, True
    return deadline.amount * DAY, False


def start(deadline: Deadline, at: datetime, cal: WorkCalendar) -> Clock:
    """A running clock for ``deadline`` from ``at``."""
    seconds, working = budget(deadline, cal)
    return Clock(seconds, working, 0.0, cal._local(at))


def _elapsed(clock: Clock, a: datetime, b: datetime, cal: WorkCalendar) -> float:
    return cal.working_seconds(a, b) if clock.working else max(0.0, (b - a).total_seconds())


def used(clock: Clock, now: datetime, cal: WorkCalendar) -> float:
    """Seconds of the budget used by ``now``."""
    return clock.used + (0.0 if clock.paused else _elapsed(clock, clock.since, now, cal))


def pause(clock: Clock, at: datetime, cal: WorkCalendar) -> Clock:
    """The clock stopped at ``at`` (suspend); a paused clock is returned unchanged."""
    return clock if clock.paused else replace(clock, used=used(clock, at, cal), since=None)


def resume(clock: Clock, at: datetime, cal: WorkCalendar) -> Clock:
    """The clock running again from ``at`` (resume); a running clock is returned unchanged."""
    return replace(clock, since=cal._local(at)) if clock.paused else clock


def restart(clock: Clock, at: datetime, cal: WorkCalendar) -> Clock:
    """A fresh budget from ``at``: a case escalated to the next level, or reopened."""
    return Clock(clock.budget, clock.working, 0.0, cal._local(at))


def when_used(clock: Clock, share: float, cal: WorkCalendar) -> datetime | None:
    """The instant ``share`` of the budget is used (None while paused): 1.0 is the deadline."""
    if clock.paused:
        return None
    left = max(0.0, share * clock.budget - clock.used)
    if clock.working:
        return cal.add_working(clock.since, left)
    return clock.since + timedelta(seconds=left)


def status(clock: Clock, now: datetime, cal: WorkCalendar, warn_ratio: float = 0.8) -> str:
    """``paused``, ``overdue`` (100 % used), ``warning`` (``warn_ratio`` used) or ``on_time``."""
    if clock.paused:
        return "paused"
    share = used(clock, now, cal) / clock.budget
    return "overdue" if share >= 1.0 else "warning" if share >= warn_ratio else "on_time"


def carry(instant: datetime | None, paused_at: datetime, resumed_at: datetime, working: bool, cal: WorkCalendar):
    """Where an instant of a paused clock (a deadline, a warning) lands after resuming at ``resumed_at``:
    the time that was left at the pause, counted again from the resume (None stays None)."""
    if instant is None or instant <= paused_at:
        return instant
    if working:
        return cal.add_working(resumed_at, cal.working_seconds(paused_at, instant))
    return resumed_at + (instant - paused_at)


def next_tick(warn_at, warned_at, due_at, can_climb: bool):
    """When the tick must next look at a case: its warning if not yet given, else its deadline while it
    can still climb; None when there is nothing left to do (paused cases are never ticked)."""
    if warn_at is not None and warned_at is None:
        return warn_at
    return due_at if can_climb else None
