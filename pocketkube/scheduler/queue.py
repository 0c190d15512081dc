"""The scheduling queue (kube's `internal/queue.PriorityQueue`): an active queue ordered by
priority then arrival, a backoff queue for pods that failed recently (1 s doubling to 10 s per
pod), and an unschedulable set whose pods come back when a cluster event could help them (a
node added, untainted, uncordoned or relabelled; a pod deleted...) or, at the latest, after
five minutes.

A pod that fails while a relevant event arrived during its scheduling cycle goes to backoff
rather than the unschedulable set, so the event is not lost (kube's moveRequestCycle). The
nominator remembers which pods wait on which node after preempting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from typing import Any

from pocketkube.client.workqueue import Clock, RealClock
from pocketkube.scheduler.cache import PodInfo

log = logging.getLogger("pocketkube.scheduler.queue")

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE = 300.0
BACKOFF_FLUSH = 1.0
UNSCHEDULABLE_FLUSH = 30.0


class QueuedPod:
    __slots__ = ("info", "attempts", "timestamp", "initial_attempt", "unschedulable_plugins",
                 "seq", "where", "cycle")

    def __init__(self, info: PodInfo, now: float, seq: int) -> None:
        self.info = info
        self.attempts = 0
        self.timestamp = now  # when it last entered the queue
        self.initial_attempt: float | None = None
        self.unschedulable_plugins: set[str] = set()
        self.seq = seq
        self.where = ""  # "active", "backoff", "unschedulable", or "" while being scheduled
        self.cycle = 0

    @property
    def uid(self) -> str:
        return self.info.uid


class SchedulingQueue:
    def __init__(self, clock: Clock | None = None, plugin_events: dict[str, frozenset[str]] |
                 None = None, initial_backoff: float = INITIAL_BACKOFF,
                 max_backoff: float = MAX_BACKOFF,
                 max_unschedulable: float = MAX_UNSCHEDULABLE) -> None:
        self.clock = clock or RealClock()
        self.plugin_events = plugin_events or {}
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.max_unschedulable = max_unschedulable
        self.pods: dict[str, QueuedPod] = {}  # every pod the queue knows, by uid
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self.unschedulable: dict[str, QueuedPod] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self.nominated: dict[str, dict[str, PodInfo]] = {}  # node -> uid -> pod
        self._nominated_node: dict[str, str] = {}
        self.closed = False

    # -- adding ---------------------------------------------------------------------------------
    def add(self, info: PodInfo) -> None:
        """A new pending pod: straight to the active queue."""
        qp = self.pods.get(info.uid)
        if qp is not None:
            self.update(info)
            return
        qp = QueuedPod(info, self.clock.now(), next(self._seq))
        self.pods[info.uid] = qp
        self._push_active(qp)
        self._nominate_from_status(info)

    def _push_active(self, qp: QueuedPod) -> None:
        qp.where = "active"
        heapq.heappush(self._active, (-qp.info.priority, qp.timestamp, qp.seq, qp.uid))
        self._wake.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.where = "backoff"
        heapq.heappush(self._backoff, (self.backoff_expiry(qp), qp.seq, qp.uid))

    def backoff_duration(self, qp: QueuedPod) -> float:
        if qp.attempts == 0:
            return 0.0
        return min(self.initial_backoff * 2 ** (qp.attempts - 1), self.max_backoff)

    def backoff_expiry(self, qp: QueuedPod) -> float:
        return qp.timestamp + self.backoff_duration(qp)

    def update(self, info: PodInfo) -> None:
        """A newer version of a pending pod. One waiting as unschedulable is retried when its
        spec or labels changed (the change may be what it needed)."""
        qp = self.pods.get(info.uid)
        if qp is None:
            self.add(info)
            return
        old = qp.info
        qp.info = info
        self._nominate_from_status(info)
        if qp.where == "unschedulable" and _changed(old.obj, info.obj):
            del self.unschedulable[qp.uid]
            self._requeue(qp)
        elif qp.where == "active" and old.priority != info.priority:
            self._push_active(qp)  # the stale heap entry is skipped on pop

    def delete(self, uid: str) -> None:
        qp = self.pods.pop(uid, None)
        if qp is not None:
            self.unschedulable.pop(uid, None)
            qp.where = "gone"
        self.delete_nominated(uid)

    # -- popping --------------------------------------------------------------------------------
    async def pop(self) -> QueuedPod | None:
        """The next pod to schedule (None once closed)."""
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()

    def pop_nowait(self) -> QueuedPod | None:
        """The next active pod, or None when the active queue is empty."""
        while self._active:
            _, _, seq, uid = heapq.heappop(self._active)
            qp = self.pods.get(uid)
            if qp is None or qp.where != "active" or qp.seq != seq:
                continue  # deleted, moved, or re-pushed since
            qp.where = ""
            qp.attempts += 1
            self.scheduling_cycle += 1
            qp.cycle = self.scheduling_cycle
            if qp.initial_attempt is None:
                qp.initial_attempt = self.clock.now()
            return qp
        return None

    def __len__(self) -> int:
        return sum(1 for qp in self.pods.values() if qp.where == "active")

    # -- failures -------------------------------------------------------------------------------
    def add_unschedulable(self, qp: QueuedPod, plugins: set[str]) -> None:
        """A pod that did not fit: unschedulable until an event may help, or to backoff when
        such an event arrived while it was being scheduled."""
        if self.pods.get(qp.uid) is not qp:
            return  # deleted meanwhile
        qp.unschedulable_plugins = set(plugins)
        qp.timestamp = self.clock.now()
        qp.seq = next(self._seq)
        if self.move_request_cycle >= qp.cycle:
            self._push_backoff(qp)
        else:
            qp.where = "unschedulable"
            self.unschedulable[qp.uid] = qp

    def add_backoff(self, qp: QueuedPod) -> None:
        """A pod whose attempt failed with an error (a failed binding): retry after backoff."""
        if self.pods.get(qp.uid) is not qp:
            return
        qp.timestamp = self.clock.now()
        qp.seq = next(self._seq)
        self._push_backoff(qp)

    def done(self, uid: str) -> None:
        """The pod is bound (or assumed and binding): the queue forgets it."""
        qp = self.pods.pop(uid, None)
        if qp is not None:
            qp.where = "gone"

    def _requeue(self, qp: QueuedPod) -> None:
        qp.seq = next(self._seq)
        if self.backoff_expiry(qp) > self.clock.now():
            self._push_backoff(qp)
        else:
            qp.timestamp = self.clock.now()
            self._push_active(qp)

    # -- moving ---------------------------------------------------------------------------------
    def move_all(self, event: str) -> int:
        """A cluster event: retry unschedulable pods a plugin that rejected them cares about.
        Returns how many moved."""
        self.move_request_cycle = self.scheduling_cycle
        moved = [qp for qp in self.unschedulable.values() if self._interested(qp, event)]
        for qp in moved:
            del self.unschedulable[qp.uid]
            self._requeue(qp)
        return len(moved)

    def _interested(self, qp: QueuedPod, event: str) -> bool:
        if not qp.unschedulable_plugins:
            return True
        base = event.split("/", 1)[0] + "/Update"
        for name in qp.unschedulable_plugins:
            events = self.plugin_events.get(name)
            if events is None or event in events or (
                    "/Update" in event and base in events):
                return True
        return False

    def flush_backoff_completed(self) -> None:
        now = self.clock.now()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, uid = heapq.heappop(self._backoff)
            qp = self.pods.get(uid)
            if qp is None or qp.where != "backoff" or qp.seq != seq:
                continue
            self._push_active(qp)

    def flush_unschedulable_leftover(self) -> None:
        now = self.clock.now()
        stale = [qp for qp in self.unschedulable.values()
                 if now - qp.timestamp > self.max_unschedulable]
        for qp in stale:
            del self.unschedulable[qp.uid]
            self._requeue(qp)

    async def run(self) -> None:
        """The periodic flushes: backoff every second, leftovers every 30 seconds."""
        ticks = 0
        while not self.closed:
            await self.clock.sleep(BACKOFF_FLUSH)
            self.flush_backoff_completed()
            ticks += 1
            if ticks % int(UNSCHEDULABLE_FLUSH / BACKOFF_FLUSH) == 0:
                self.flush_unschedulable_leftover()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    # -- nominated pods -------------------------------------------------------------------------
    def _nominate_from_status(self, info: PodInfo) -> None:
        node = (info.obj.get("status") or {}).get("nominatedNodeName")
        if node:
            self.add_nominated(info, node)

    def add_nominated(self, info: PodInfo, node: str) -> None:
        self.delete_nominated(info.uid)
        self.nominated.setdefault(node, {})[info.uid] = info
        self._nominated_node[info.uid] = node

    def delete_nominated(self, uid: str) -> None:
        node = self._nominated_node.pop(uid, None)
        if node is not None:
            pods = self.nominated.get(node, {})
            pods.pop(uid, None)
            if not pods:
                self.nominated.pop(node, None)

    def nominated_node(self, uid: str) -> str:
        return self._nominated_node.get(uid, "")

    def nominated_pods(self) -> dict[str, list[PodInfo]]:
        return {n: list(p.values()) for n, p in self.nominated.items()}


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether an update could change the scheduling outcome (not just status/bookkeeping)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels") or \
        om.get("annotations") != nm.get("annotations")
