"""Time for the simulated nodes: wall-clock timestamps derived from an injectable clock, and a
scheduler that runs a periodic action for thousands of members spread evenly over its interval.

Everything time-dependent in the simulator (lease renewals, status heartbeats, graceful
deletion, how long a job pod runs) goes through one `Clock` (pocketkube.client.workqueue), so
unit tests move a FakeClock instead of sleeping. Timestamps written to the API are wall times;
`WallClock` keeps them consistent with the injected clock by fixing the offset once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pocketkube.api.podutil import format_time
from pocketkube.client.workqueue import Clock

log = logging.getLogger("pocketkube.simulator")


class WallClock:
    """Wall time that advances with `clock` (a FakeClock moves it too)."""

    def __init__(self, clock: Clock, wall: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._offset = wall() - clock.now()

    def now(self) -> float:
        return self.clock.now() + self._offset

    def stamp(self, t: float | None = None) -> str:
        """metav1.Time: RFC 3339 with second precision."""
        return format_time(self.now() if t is None else t)

    def micro(self, t: float | None = None) -> str:
        """metav1.MicroTime, as leases carry it."""
        t = self.now() if t is None else t
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")






Action = Callable[[str], Awaitable[None]]


class Spreader:
    """Calls `action(member)` once per `interval` for every member, each at its own offset so
    the calls are spread over the interval instead of arriving together.

    At most `limit` actions run at once: when the API server is slower than the schedule, the
    loop waits for a free slot and the schedule slips rather than piling up requests. A member
    that fell more than one interval behind is rescheduled from now, never called in a burst.
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        interval: float,
        action: Action,
        limit: asyncio.Semaphore,
        max_sleep: float = 1.0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.interval = interval
        self.action = action
        self.limit = limit
        self.max_sleep = max_sleep
        self._heap: list[tuple[float, int, str]] = []
        self._members: dict[str, int] = {}  # member -> generation of its live heap entry
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.failures = 0

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: str) -> bool:
        return member in self._members

    def add(self, member: str, delay: float = 0.0) -> None:
        """Schedule `member`'s first call `delay` seconds from now (replacing any schedule)."""
        seq = next(self._seq)
        self._members[member] = seq
        heapq.heappush(self._heap, (self.clock.now() + delay, seq, member))

    def remove(self, member: str) -> None:
        self._members.pop(member, None)

    def next_due(self, member: str) -> float | None:
        seq = self._members.get(member)
        return next((d for d, s, m in self._heap if m == member and s == seq), None)

    async def run(self) -> None:
        try:
            while True:
                await self._fire_due()
                now = self.clock.now()
                wait = self._heap[0][0] - now if self._heap else self.max_sleep
                await self.clock.sleep(min(max(wait, 0.0), self.max_sleep) or 0.001)
        finally:
            for t in list(self._tasks):
                t.cancel()

    async def _fire_due(self) -> None:
        while self._heap and self._heap[0][0] <= self.clock.now():
            due, seq, member = heapq.heappop(self._heap)
            if self._members.get(member) != seq:
                continue  # removed or rescheduled
            await self.limit.acquire()
            now = self.clock.now()
            nxt = due + self.interval
            if nxt <= now:
                nxt = now + self.interval
            heapq.heappush(self._heap, (nxt, seq, member))
            task = asyncio.create_task(self._call(member))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, member: str) -> None:
        try:
            await self.action(member)
            self.calls += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.failures += 1
            log.debug("%s for %s failed: %s", self.name, member, e)
        finally:
            self.limit.release()
