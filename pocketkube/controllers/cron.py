"""CronJob schedules as the CronJob controller evaluates them: robfig/cron v3's `ParseStandard`
(five fields, `@hourly`-style descriptors, `@every <duration>`, a `TZ=`/`CRON_TZ=` prefix) and
its `Next(t)`, plus kube's `mostRecentScheduleTime` / `nextScheduleTimeDuration` arithmetic
(pkg/controller/cronjob/utils.go) that finds the latest missed schedule and the requeue delay.

Syntax checks and their messages come from `pocketkube.api.validation.cron`, which the API server
uses for `spec.schedule`; this module only expands an accepted spec into the sets of minutes,
hours, days and months it fires on. Python cron libraries accept other dialects and evaluate
day-of-month/day-of-week and time zones differently from robfig/cron, hence this small module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pocketkube.api.validation.cron import _BOUNDS, CronError, _int_or_name, parse_error

# How far Next looks ahead before giving up (robfig/cron: five years).
SEARCH_YEARS = 5
# Requeue padding past the next schedule time, for clock skew (kube's nextScheduleDelta).
NEXT_SCHEDULE_DELTA = 0.1
_DESCRIPTOR_SPECS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class Schedule(Protocol):
    def next(self, t: datetime) -> datetime | None:
        """The first activation strictly after `t` (None if there is none)."""
        ...


def load_location(name: str) -> tzinfo:
    """Go's time.LoadLocation: "" and "UTC" are UTC, "Local" the machine's zone."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None


@dataclass(frozen=True)
class SpecSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    dom_star: bool  # the field was `*`/`?` (robfig's starBit): then both day fields must match
    dow_star: bool
    location: tzinfo = UTC

    def _day_matches(self, d: datetime) -> bool:
        dom = d.day in self.doms
        dow = (d.weekday() + 1) % 7 in self.dows
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next(self, t: datetime) -> datetime | None:
        # Walk the wall clock of the schedule's zone field by field, as robfig/cron does.
        local = t.astimezone(self.location).replace(tzinfo=None)
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = local.year + SEARCH_YEARS
        while local.year <= limit:
            if local.month not in self.months:
                y, m = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
                local = datetime(y, m, 1)
                continue
            if not self._day_matches(local):
                local = datetime(local.year, local.month, local.day) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            found = local.replace(tzinfo=self.location).astimezone(UTC)
            if found > t:
                return found
            local += timedelta(minutes=1)  # a repeated wall time after a DST fall-back
        return None


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>`: fixed delay, rounded down to whole seconds (at least one)."""

    seconds: int

    def next(self, t: datetime) -> datetime | None:
        return t.replace(microsecond=0) + timedelta(seconds=self.seconds)


def _field(expr_list: str, lo: int, hi: int, names: dict[str, int] | None) -> tuple[set[int], bool]:
    values: set[int] = set()
    star = False
    for expr in (x for x in expr_list.split(",") if x):
        range_and_step = expr.split("/")
        low_high = range_and_step[0].split("-")
        extra_star = low_high[0] in ("*", "?")
        if extra_star:
            start, end = lo, hi
        else:
            start = _int_or_name(low_high[0], names)
            end = _int_or_name(low_high[1], names) if len(low_high) == 2 else start
        step = 1
        if len(range_and_step) == 2:
            step = int(range_and_step[1])
            if len(low_high) == 1:
                end = hi
            if step > 1:
                extra_star = False
        values.update(range(start, end + 1, step))
        star = star or extra_star
    return values, star


def go_duration_seconds(text: str) -> float:
    """Go's time.ParseDuration for the forms `@every` accepts (validated beforehand)."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    return sign * sum(float(num) * _UNITS[unit] for num, unit in _DURATION_PART.findall(body))


def parse_standard(spec: str) -> Schedule:
    """The schedule `spec` describes; CronError with robfig/cron's message when it is invalid."""
    problem = parse_error(spec)
    if problem:
        raise CronError(problem)
    location: tzinfo = UTC
    if spec.startswith(("TZ=", "CRON_TZ=")):
        i = spec.find(" ")
        name = spec[spec.find("=") + 1:i]
        try:
            location = load_location(name)
        except CronError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        spec = spec[i:].strip()
    if spec.startswith("@every "):
        seconds = go_duration_seconds(spec[len("@every "):])
        return EverySchedule(max(1, int(seconds)))
    spec = _DESCRIPTOR_SPECS.get(spec, spec)
    parsed = [_field(f, lo, hi, names) for f, (lo, hi, names) in zip(spec.split(), _BOUNDS,
                                                                       strict=True)]
    (mins, _), (hours, _), (doms, dom_star), (months, _), (dows, dow_star) = parsed
    # Day of week 7 is not accepted by the parser, so the sets are already 0-6.
    return SpecSchedule(frozenset(mins), frozenset(hours), frozenset(doms), frozenset(months),
                        frozenset(dows), dom_star, dow_star, location)


class Missed(Enum):
    NONE = 0
    FEW = 1
    MANY = 2


@dataclass
class Recent:
    earliest: datetime
    most_recent: datetime | None
    missed: Missed
    error: str | None = None


def most_recent_schedule_time(created: datetime, last_schedule: datetime | None,
                              starting_deadline: int | None, now: datetime,
                              sched: Schedule, include_deadline: bool) -> Recent:
    """kube's mostRecentScheduleTime: the latest activation in (earliest, now], where earliest
    is the last schedule (or the creation time), moved up to `now - startingDeadlineSeconds`."""
    earliest = last_schedule or created
    if include_deadline and starting_deadline is not None:
        deadline = now - timedelta(seconds=starting_deadline)
        if deadline > earliest:
            earliest = deadline
    t1 = sched.next(earliest)
    t2 = sched.next(t1) if t1 is not None else None
    if t1 is not None and now < t1:
        return Recent(earliest, None, Missed.NONE)
    if t1 is not None and t2 is not None and now < t2:
        return Recent(earliest, t1, Missed.NONE)
    between = round((t2 - t1).total_seconds()) if t1 is not None and t2 is not None else 0
    if t1 is None or between < 1:
        return Recent(earliest, None, Missed.NONE,
                      "time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    missed = elapsed // between + 1
    # Start one interval before the estimate so irregular schedules still land exactly.
    t: datetime | None = sched.next(t1 + timedelta(seconds=(missed - 2) * between))
    most_recent = None
    while t is not None and t <= now:
        most_recent = t
        t = sched.next(t)
    kind = Missed.MANY if missed > 100 else Missed.FEW if missed > 0 else Missed.NONE
    return Recent(earliest, most_recent, kind)


def next_schedule_delay(created: datetime, last_schedule: datetime | None, now: datetime,
                        sched: Schedule) -> float | None:
    """kube's nextScheduleTimeDuration: seconds until the sync after the next activation."""
    r = most_recent_schedule_time(created, last_schedule, None, now, sched, False)
    base = r.most_recent
    if r.error is not None:
        base = now
    elif base is None:
        base = r.earliest if r.missed is Missed.NONE else now
    nxt = sched.next(base)
    if nxt is None:
        return None
    return (nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA
