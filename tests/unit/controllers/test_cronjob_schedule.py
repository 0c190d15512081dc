"""CronJob schedule arithmetic: robfig/cron's Next (fields, day-of-month/day-of-week rules,
descriptors, @every, time zones across DST) and kube's most-recent/missed-schedule and
requeue-delay computations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pocketkube.api.validation.cron import CronError
from pocketkube.controllers import cron


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def nexts(spec: str, start: datetime, n: int = 3) -> list[datetime]:
    sched = cron.parse_standard(spec)
    out = []
    for _ in range(n):
        nxt = sched.next(start)
        assert nxt is not None
        out.append(nxt)
        start = nxt
    return out


def test_steps_and_ranges() -> None:
    assert nexts("*/15 * * * *", t(2024, 5, 1, 10, 7, 30)) == [
        t(2024, 5, 1, 10, 15), t(2024, 5, 1, 10, 30), t(2024, 5, 1, 10, 45)]
    assert nexts("0 9-17/4 * * *", t(2024, 5, 1, 10, 0)) == [
        t(2024, 5, 1, 13), t(2024, 5, 1, 17), t(2024, 5, 2, 9)]
    assert nexts("0 0 1 jan,jul *", t(2024, 5, 1), 2) == [t(2024, 7, 1), t(2025, 1, 1)]


def test_next_is_strictly_after() -> None:
    assert nexts("* * * * *", t(2024, 5, 1, 10, 1), 1) == [t(2024, 5, 1, 10, 2)]


def test_day_of_month_or_day_of_week() -> None:
    # Both restricted: either matches (the 1st, or a Monday).
    assert nexts("0 0 1 * 1", t(2024, 5, 27, 1), 2) == [t(2024, 6, 1), t(2024, 6, 3)]
    # Day of month `*`: only Mondays.
    assert nexts("0 0 * * mon", t(2024, 5, 1, 10), 2) == [t(2024, 5, 6), t(2024, 5, 13)]
    # `*/2` is no longer a star for this rule: odd days or Mondays.
    assert nexts("0 0 */2 * 1", t(2024, 5, 1, 10), 3) == [
        t(2024, 5, 3), t(2024, 5, 5), t(2024, 5, 6)]


def test_descriptors_and_every() -> None:
    assert nexts("@hourly", t(2024, 5, 1, 10, 0, 30), 1) == [t(2024, 5, 1, 11)]
    assert nexts("@weekly", t(2024, 5, 1, 10), 1) == [t(2024, 5, 5)]  # Sunday
    assert nexts("@yearly", t(2024, 5, 1), 1) == [t(2025, 1, 1)]
    start = datetime(2024, 5, 1, 10, 0, 30, 500_000, tzinfo=UTC)
    assert nexts("@every 1h30m", start, 2) == [t(2024, 5, 1, 11, 30, 30), t(2024, 5, 1, 13, 0, 30)]
    assert nexts("@every 500ms", t(2024, 5, 1), 1) == [t(2024, 5, 1, 0, 0, 1)]


def test_time_zone_follows_daylight_saving() -> None:
    # 09:30 in New York: 14:30Z under EST, 13:30Z once EDT starts on 2024-03-10.
    assert nexts("CRON_TZ=America/New_York 30 9 * * *", t(2024, 3, 9, 12), 3) == [
        t(2024, 3, 9, 14, 30), t(2024, 3, 10, 13, 30), t(2024, 3, 11, 13, 30)]
    assert nexts("TZ=Asia/Kolkata 0 0 * * *", t(2024, 5, 1), 1) == [t(2024, 5, 1, 18, 30)]


@pytest.mark.parametrize(("spec", "message"), [
    ("TZ=Mars/Base * * * * *", "provided bad location Mars/Base: unknown time zone Mars/Base"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
])
def test_invalid_schedules(spec: str, message: str) -> None:
    with pytest.raises(CronError) as e:
        cron.parse_standard(spec)
    assert str(e.value) == message


def test_impossible_schedule_never_fires() -> None:
    sched = cron.parse_standard("59 23 31 2 *")
    assert sched.next(t(2024, 1, 1)) is None
    r = cron.most_recent_schedule_time(t(2024, 1, 1), None, None, t(2024, 6, 1), sched, True)
    assert r.most_recent is None
    assert r.error == "time difference between two schedules is less than 1 second"


def recent(created: datetime, now: datetime, spec: str = "* * * * *",
           last: datetime | None = None, deadline: int | None = None) -> cron.Recent:
    return cron.most_recent_schedule_time(created, last, deadline, now,
                                          cron.parse_standard(spec), True)


def test_most_recent_schedule_time() -> None:
    created = t(2024, 5, 1, 10, 0, 30)
    r = recent(created, t(2024, 5, 1, 10, 0, 50))
    assert (r.most_recent, r.missed) == (None, cron.Missed.NONE)
    r = recent(created, t(2024, 5, 1, 10, 1, 5))
    assert (r.most_recent, r.missed) == (t(2024, 5, 1, 10, 1), cron.Missed.NONE)
    r = recent(created, t(2024, 5, 1, 10, 5, 10))
    assert (r.most_recent, r.missed) == (t(2024, 5, 1, 10, 5), cron.Missed.FEW)
    r = recent(created, t(2024, 5, 1, 12, 0, 10))  # 120 schedules missed
    assert (r.most_recent, r.missed) == (t(2024, 5, 1, 12), cron.Missed.MANY)
    # The last schedule time wins over the creation time.
    r = recent(created, t(2024, 5, 1, 12, 0, 10), last=t(2024, 5, 1, 11, 58))
    assert (r.most_recent, r.missed) == (t(2024, 5, 1, 12), cron.Missed.FEW)


def test_starting_deadline_bounds_missed_schedules() -> None:
    created = t(2024, 5, 1, 9, 50)
    r = recent(created, t(2024, 5, 1, 12, 0, 10), deadline=30)
    assert (r.most_recent, r.missed) == (t(2024, 5, 1, 12), cron.Missed.NONE)
    r = recent(created, t(2024, 5, 1, 12, 0, 40), deadline=30)
    assert r.most_recent is None


def test_irregular_schedule_finds_the_exact_most_recent_time() -> None:
    r = recent(t(2024, 5, 1), t(2024, 5, 8, 12), spec="30 6-16/4 * * 1-5")
    assert r.most_recent == t(2024, 5, 8, 10, 30)


def test_next_schedule_delay() -> None:
    sched = cron.parse_standard("* * * * *")
    created = t(2024, 5, 1, 10, 0, 30)
    now = t(2024, 5, 1, 10, 1, 5)
    assert cron.next_schedule_delay(created, t(2024, 5, 1, 10, 1), now, sched) == \
        pytest.approx(55.1)
    # With missed schedules and nothing recorded, aim at the next slot after now.
    assert cron.next_schedule_delay(created, None, t(2024, 5, 1, 10, 5, 10), sched) == \
        pytest.approx(50.1)
    hourly = cron.parse_standard("0 * * * *")
    assert cron.next_schedule_delay(created, None, now, hourly) == pytest.approx(3535.1)
