"""The pod lifecycle event generator (kube's pkg/kubelet/pleg/generic.go): every second it
relists the runtime's sandboxes and containers, compares each container's state with the last
relist, and tells the pod workers which pods changed (ContainerStarted, ContainerDied,
ContainerRemoved, ContainerChanged), so a container that exits is noticed within a second
without each pod polling the runtime.

It also keeps the relisted state per pod (`PodRuntimeStatus`, kube's kubecontainer.PodStatus)
for the streaming server's lookups, which must answer without awaiting the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pocketkube.client.workqueue import Clock
from pocketkube.kubelet.runtime.interface import ContainerStatus, Runtime, SandboxStatus

log = logging.getLogger("pocketkube.kubelet.pleg")

RELIST_PERIOD = 1.0
STARTED, DIED, REMOVED, CHANGED = ("ContainerStarted", "ContainerDied", "ContainerRemoved",
                                   "ContainerChanged")


@dataclass
class PodRuntimeStatus:
    """What the runtime has for one pod: sandboxes and containers, newest first."""

    uid: str
    sandboxes: list[SandboxStatus] = field(default_factory=list)
    containers: list[ContainerStatus] = field(default_factory=list)

    def latest(self, name: str) -> ContainerStatus | None:
        """The newest container of that name (kube's FindContainerStatusByName)."""
        for c in self.containers:
            if c.name == name:
                return c
        return None

    def running(self) -> list[ContainerStatus]:
        return [c for c in self.containers if c.state == "running"]

    @property
    def ips(self) -> list[str]:
        for s in self.sandboxes:
            if s.state == "ready":
                return list(s.ips or ([s.ip] if s.ip else []))
        return []


def _newest_first(items: list, key: Callable) -> list:
    return sorted(items, key=key, reverse=True)


def group(sandboxes: list[SandboxStatus], containers: list[ContainerStatus]
          ) -> dict[str, PodRuntimeStatus]:  # fmt: skip
    """Sandboxes and containers grouped by pod uid (a container belongs to its sandbox's pod,
    or to the pod its labels name)."""
    pods: dict[str, PodRuntimeStatus] = {}
    owner: dict[str, str] = {}
    for s in sandboxes:
        pods.setdefault(s.pod_uid, PodRuntimeStatus(s.pod_uid)).sandboxes.append(s)
        owner[s.id] = s.pod_uid
    for c in containers:
        uid = owner.get(c.sandbox_id) or c.labels.get("io.kubernetes.pod.uid", "")
        if uid:
            pods.setdefault(uid, PodRuntimeStatus(uid)).containers.append(c)
    for p in pods.values():
        p.sandboxes = _newest_first(p.sandboxes, lambda s: s.created_at)
        p.containers = _newest_first(p.containers, lambda c: (c.created_at, c.attempt))
    return pods


async def pod_status(runtime: Runtime, uid: str) -> PodRuntimeStatus:
    """A fresh look at one pod in the runtime (through the runtime's `pod_sandboxes(uid)`
    when it has one, so a sync does not cost the status of every pod on the node)."""
    of_pod = getattr(runtime, "pod_sandboxes", None)
    if of_pod is not None:
        sandboxes = [s for s in await of_pod(uid) if s.pod_uid == uid]
    else:
        sandboxes = [s for s in await runtime.list_sandboxes() if s.pod_uid == uid]
    containers: list[ContainerStatus] = []
    for s in sandboxes:
        containers.extend(await runtime.list_containers(s.id))
    return group(sandboxes, containers).get(uid, PodRuntimeStatus(uid))


class Pleg:
    """Relists every `period` seconds; `on_event(uid, event, container_id)` per change."""

    def __init__(self, runtime: Runtime, clock: Clock,
                 on_event: Callable[[str, str, str], None], period: float = RELIST_PERIOD) -> None:
        self.runtime = runtime
        self.clock = clock
        self.on_event = on_event
        self.period = period
        self.pods: dict[str, PodRuntimeStatus] = {}
        self._states: dict[str, tuple[str, str]] = {}  # container id -> (pod uid, state)
        self._sandbox_states: dict[str, tuple[str, str]] = {}
        self.last_relist = 0.0
        self._task: asyncio.Task[None] | None = None

    async def relist(self) -> None:
        sandboxes = await self.runtime.list_sandboxes()
        containers = await self.runtime.list_containers()
        pods = group(sandboxes, containers)
        states: dict[str, tuple[str, str]] = {}
        for uid, p in pods.items():
            for c in p.containers:
                states[c.id] = (uid, c.state)
        sandbox_states = {s.id: (s.pod_uid, s.state) for s in sandboxes}
        events: list[tuple[str, str, str]] = []
        for cid, (uid, state) in states.items():
            old = self._states.get(cid)
            old_state = old[1] if old else "non-existent"
            if old_state != state:
                events.append((uid, _event_for(state), cid))
        for cid, (uid, _) in self._states.items():
            if cid not in states:
                events.append((uid, REMOVED, cid))
        for sid, (uid, state) in sandbox_states.items():
            if self._sandbox_states.get(sid, ("", ""))[1] != state:
                events.append((uid, CHANGED, sid))
        for sid, (uid, _) in self._sandbox_states.items():
            if sid not in sandbox_states:
                events.append((uid, REMOVED, sid))
        self._states = states
        self._sandbox_states = sandbox_states
        self.pods = pods
        self.last_relist = self.clock.now()
        for uid, event, cid in events:
            try:
                self.on_event(uid, event, cid)
            except Exception:
                log.exception("pod lifecycle event handler failed for pod %s", uid)

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relisting the runtime failed")
            await self.clock.sleep(self.period)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="pleg")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _event_for(state: str) -> str:
    if state == "running":
        return STARTED
    if state == "exited":
        return DIED
    return CHANGED
