"""The kubelet's restart and pull backoff: 10 s doubling to 5 minutes, reset after 10 minutes
of quiet, and Go's duration format in the messages."""

from __future__ import annotations

import pytest

from pocketkube.kubelet.backoff import Backoff, go_duration


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_container_restart_delays_double_up_to_five_minutes() -> None:
    clock = Clock()
    b = Backoff(clock)
    delays = []
    for _ in range(8):
        b.next("k", clock.t)
        delays.append(b.get("k"))
        clock.t += b.get("k")
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_in_backoff_counts_from_the_finish_time() -> None:
    clock = Clock()
    b = Backoff(clock)
    assert not b.is_in_backoff_since("k", clock.t)  # the first exit restarts at once
    b.next("k", clock.t)
    finished = clock.t
    clock.t += 9.9
    assert b.is_in_backoff_since("k", finished)
    assert b.remaining("k", finished) == pytest.approx(0.1)
    clock.t += 0.1
    assert not b.is_in_backoff_since("k", finished)
    assert b.remaining("k", finished) == 0


def test_running_ten_minutes_starts_over() -> None:
    clock = Clock()
    b = Backoff(clock)
    for _ in range(4):
        b.next("k", clock.t)
    assert b.get("k") == 80
    clock.t += 601  # ran for more than twice the maximum
    assert not b.is_in_backoff_since("k", clock.t)
    b.next("k", clock.t)
    assert b.get("k") == 10


def test_pull_backoff_counts_from_the_last_failure() -> None:
    clock = Clock()
    b = Backoff(clock)
    b.next("img", clock.t)
    clock.t += 5
    assert b.is_in_backoff_since_update("img", clock.t)
    clock.t += 5
    assert not b.is_in_backoff_since_update("img", clock.t)


def test_gc_and_forget() -> None:
    clock = Clock()
    b = Backoff(clock)
    b.next("uid1_a", clock.t)
    b.next("uid2_a", clock.t)
    b.forget_prefix("uid1_")
    assert b.get("uid1_a") == 0 and b.get("uid2_a") == 10
    clock.t += 601
    b.gc()
    assert b.get("uid2_a") == 0


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (40, "40s"), (80, "1m20s"), (300, "5m0s"), (0, "0s"), (1.234, "1.234s"),
    (0.25, "250ms"), (3600, "1h0m0s"), (3725.5, "1h2m5.5s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
