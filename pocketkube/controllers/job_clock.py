"""Time for the batch controllers (Job, CronJob, TTL-after-finished): wall-clock time derived
from the controller's injected clock, so a FakeClock moves timestamps and schedules in unit
tests, metav1.Time formatting, and delayed requeues where an earlier wake-up replaces a later
one (the work queue's own `add_after` keeps the first delay asked for, but a job's backoff or
a cron schedule change must be able to bring a sync forward).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pocketkube.client.workqueue import Clock


class WallClock:
    """Wall time that moves with an injected clock."""

    def __init__(self, clock: Clock, wall: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._offset = wall() - clock.now()

    def now(self) -> float:
        return self.clock.now() + self._offset

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def format_time(t: float | datetime) -> str:
    """metav1.Time: RFC 3339, whole seconds, UTC."""
    if isinstance(t, datetime):
        t = t.timestamp()
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Timers:
    """`queue.add(key)` after a delay on `clock`; only the earliest pending wake-up per key
    is kept."""

    def __init__(self, clock: Clock, queue: Any) -> None:
        self.clock = clock
        self.queue = queue
        self._timers: dict[str, tuple[float, asyncio.Task[None]]] = {}

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.queue.add(key)
            return
        due = self.clock.now() + delay
        current = self._timers.get(key)
        if current is not None and not current[1].done():
            if current[0] <= due:
                return
            current[1].cancel()

        async def later() -> None:
            await self.clock.sleep(delay)
            self._timers.pop(key, None)
            self.queue.add(key)

        self._timers[key] = (due, asyncio.get_running_loop().create_task(later()))

    def due(self, key: str) -> float | None:
        current = self._timers.get(key)
        return current[0] if current is not None and not current[1].done() else None

    async def cancel(self) -> None:
        tasks = [t for _, t in self._timers.values()]
        self._timers.clear()
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
