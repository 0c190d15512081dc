"""Node-pressure eviction (kube's pkg/kubelet/eviction): hard thresholds on the node's free
memory and disk, the MemoryPressure/DiskPressure conditions they raise, and the choice of the
pod to evict when one is crossed, with the status and event texts the kubelet writes.

The decision is pure (`decide`, `thresholds_met`, `rank_pods`, `eviction_message`) so it is
tested without a machine under pressure; measurements come from injectable callables
(`measure_node` reads /proc, cgroups and statvfs by default).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pocketkube.api.validation.quantity import value as quantity_value
from pocketkube.client.workqueue import Clock

log = logging.getLogger("pocketkube.kubelet.eviction")

Obj = dict[str, Any]
MEMORY_AVAILABLE = "memory.available"
NODEFS_AVAILABLE = "nodefs.available"
NODEFS_INODES_FREE = "nodefs.inodesFree"
IMAGEFS_AVAILABLE = "imagefs.available"
SIGNAL_RESOURCE = {MEMORY_AVAILABLE: "memory", NODEFS_AVAILABLE: "ephemeral-storage",
                   IMAGEFS_AVAILABLE: "ephemeral-storage", NODEFS_INODES_FREE: "inodes"}
SIGNAL_CONDITION = {MEMORY_AVAILABLE: "MemoryPressure", NODEFS_AVAILABLE: "DiskPressure",
                    IMAGEFS_AVAILABLE: "DiskPressure", NODEFS_INODES_FREE: "DiskPressure"}
MONITORING_INTERVAL = 10.0  # kube's evictionMonitoringPeriod
TRANSITION_PERIOD = 300.0  # evictionPressureTransitionPeriod: a condition stays this long
EVICTION_GRACE_PERIOD = 1  # seconds given to a pod evicted on a hard threshold
CRITICAL_PRIORITY = 2_000_000_000  # system-cluster-critical and above are never evicted
MI = 1024 * 1024


def binary_si(n: int) -> str:
    """A byte count as resource.Quantity prints it in BinarySI: the largest exact 1024-power
    suffix, or plain digits."""
    if n == 0:
        return "0"
    if abs(n) < 1024:
        return str(n)
    suffixes = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
    exp = 0
    while n % 1024 == 0 and exp < 6:
        n //= 1024
        exp += 1
    return f"{n}{suffixes[exp]}"


@dataclass(frozen=True)
class Threshold:
    signal: str
    quantity: int | None = None  # absolute (bytes or inodes)
    percentage: float | None = None  # of capacity

    def amount(self, capacity: int) -> int:
        if self.quantity is not None:
            return self.quantity
        return int(capacity * (self.percentage or 0.0))


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


Observations = dict[str, Observation]

# kube's default --eviction-hard.
DEFAULT_THRESHOLDS = (
    Threshold(MEMORY_AVAILABLE, quantity=100 * MI),
    Threshold(NODEFS_AVAILABLE, percentage=0.10),
    Threshold(NODEFS_INODES_FREE, percentage=0.05),
    Threshold(IMAGEFS_AVAILABLE, percentage=0.15),
)


def allocatable_reservation(capacity_bytes: int, signal: str,
                            thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS) -> int:
    """What a hard threshold takes out of a resource's allocatable (kube's
    hardEvictionReservation)."""
    return sum(t.amount(capacity_bytes) for t in thresholds if t.signal == signal)


# --- the decision ----------------------------------------------------------------------------


def thresholds_met(thresholds: tuple[Threshold, ...], observations: Observations
                   ) -> list[Threshold]:  # fmt: skip
    return [t for t in thresholds if t.signal in observations
            and observations[t.signal].available < t.amount(observations[t.signal].capacity)]


def conditions_observed(last_met: dict[str, float], now: float,
                        period: float = TRANSITION_PERIOD) -> set[str]:
    """Pressure conditions still in force: met within the transition period (kube keeps a
    condition that long after the threshold clears, so it does not flap)."""
    return {cond for cond, at in last_met.items() if now - at < period}


def pod_request(pod: Obj, resource: str) -> int:
    """The pod's request of a resource: the sum over its containers, or the largest init
    container's if that is more."""
    spec = pod.get("spec") or {}

    def req(c: Obj) -> int:
        q = quantity_value(((c.get("resources") or {}).get("requests") or {}).get(resource, 0))
        return int(q or 0)

    total = sum(req(c) for c in spec.get("containers") or [])
    return max([total, *(req(c) for c in spec.get("initContainers") or [])])


def is_critical(pod: Obj) -> bool:
    meta = pod.get("metadata") or {}
    if (meta.get("annotations") or {}).get("kubernetes.io/config.source", "api") != "api":
        return True  # static pods
    if (meta.get("annotations") or {}).get("kubernetes.io/config.mirror"):
        return True
    return int((pod.get("spec") or {}).get("priority") or 0) >= CRITICAL_PRIORITY


def rank_pods(pods: list[Obj], resource: str, usage: dict[str, dict[str, int]]) -> list[Obj]:
    """Pods in eviction order (kube's rankMemoryPressure/rankDiskPressureFunc): pods using more
    than they request first, then lower priority, then the larger use above the request.
    `usage` is pod uid -> container name -> amount used."""
    def key(pod: Obj) -> tuple:
        used = sum(usage.get(pod["metadata"]["uid"], {}).values())
        over = used - pod_request(pod, resource)
        priority = int((pod.get("spec") or {}).get("priority") or 0)
        return (0 if over > 0 else 1, priority, -over)

    return sorted((p for p in pods if not is_critical(p)), key=key)


def eviction_message(resource: str, threshold: Threshold, observation: Observation, pod: Obj,
                     usage: dict[str, int]) -> str:  # fmt: skip
    """kube's evictionMessage, trailing spaces included."""
    message = f"The node was low on resource: {resource}. "
    message += (f"Threshold quantity: {binary_si(threshold.amount(observation.capacity))}, "
                f"available: {binary_si(observation.available)}. ")
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") not in usage:
            continue
        used = usage[c["name"]]
        raw = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        request = int(quantity_value(raw) or 0) if raw is not None else 0
        if used > request:
            shown = str(raw) if raw is not None else "0"
            message += (f"Container {c['name']} was using {binary_si(used)}, request is "
                        f"{shown}, has larger consumption of {resource}. ")
    return message


@dataclass
class Decision:
    pod: Obj
    resource: str
    message: str


def decide(thresholds: tuple[Threshold, ...], observations: Observations, pods: list[Obj],
           usage: Callable[[Obj, str], dict[str, int]]) -> Decision | None:  # fmt: skip
    """The one pod to evict now, or None (no threshold met, or nothing evictable). Memory is
    reclaimed before disk, as kube orders the starved resources."""
    met = thresholds_met(thresholds, observations)
    order = {"memory": 0, "ephemeral-storage": 1, "inodes": 2}
    for threshold in sorted(met, key=lambda t: order.get(SIGNAL_RESOURCE[t.signal], 9)):
        resource = SIGNAL_RESOURCE[threshold.signal]
        if resource == "inodes":
            continue  # no per-pod inode accounting: nothing to rank by
        per_pod = {p["metadata"]["uid"]: usage(p, resource) for p in pods}
        ranked = rank_pods(pods, resource, per_pod)
        if ranked:
            pod = ranked[0]
            message = eviction_message(resource, threshold, observations[threshold.signal],
                                       pod, per_pod[pod["metadata"]["uid"]])
            return Decision(pod, resource, message)
    return None


def evicted_status(message: str) -> Obj:
    """The pod status the kubelet writes for an evicted pod."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"phase": "Failed", "reason": "Evicted", "message": message,
            "conditions": [{"type": "DisruptionTarget", "status": "True",
                            "reason": "TerminationByKubelet", "message": message,
                            "lastTransitionTime": now}]}


# --- measuring the node ------------------------------------------------------------------------


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0]) * 1024 if rest.split() else 0
    return out


def _memory_working_set(capacity: int, info: dict[str, int]) -> int:
    """The root cgroup's usage minus inactive file pages (cgroup v1), as kube's
    memory.available is computed; MemTotal - MemAvailable where that is not readable."""
    base = Path("/sys/fs/cgroup/memory")
    try:
        usage = int((base / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
        return max(0, usage - int(stat.get("total_inactive_file", 0)))
    except (OSError, ValueError):
        return capacity - info.get("MemAvailable", capacity)


def existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def measure_node(root: Path, image_root: Path | None = None) -> Observations:
    """Free memory, disk and inodes of the node (blocking: call it in a thread)."""
    info = _meminfo()
    capacity = info.get("MemTotal", 0)
    obs = {MEMORY_AVAILABLE: Observation(capacity - _memory_working_set(capacity, info),
                                         capacity)}
    node_fs = existing(root)
    st = os.statvfs(node_fs)
    obs[NODEFS_AVAILABLE] = Observation(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
    obs[NODEFS_INODES_FREE] = Observation(st.f_favail, st.f_files)
    if image_root is not None:
        image_fs = existing(image_root)
        if os.stat(image_fs).st_dev != os.stat(node_fs).st_dev:
            st = os.statvfs(image_fs)
            obs[IMAGEFS_AVAILABLE] = Observation(st.f_bavail * st.f_frsize,
                                                 st.f_blocks * st.f_frsize)
    return obs


# --- the manager -------------------------------------------------------------------------------


class PressureSink(Protocol):
    def set_pressure(self, condition: str, under_pressure: bool) -> None: ...


class EvictionManager:
    """Every 10 s: measure, raise or clear the pressure conditions, and evict at most one pod
    when a hard threshold is crossed. `evict(pod, status, grace_period)` stops the pod and
    writes `status`; `pod_usage(pod, resource)` is container name -> amount used."""

    def __init__(self, node_status: PressureSink, *, recorder: Any, clock: Clock,
                 active_pods: Callable[[], list[Obj]],
                 evict: Callable[[Obj, Obj, int], Awaitable[None]],
                 measure: Callable[[], Observations],
                 pod_usage: Callable[[Obj, str], dict[str, int]],
                 thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS,
                 interval: float = MONITORING_INTERVAL) -> None:
        self.node_status = node_status
        self.recorder = recorder
        self.clock = clock
        self.active_pods = active_pods
        self.evict = evict
        self.measure = measure
        self.pod_usage = pod_usage
        self.thresholds = thresholds
        self.interval = interval
        self.last_met: dict[str, float] = {}  # condition -> when a threshold last held
        self.conditions: set[str] = set()

    async def synchronize(self) -> Obj | None:
        """One monitoring pass; the evicted pod, if any."""
        observations = await asyncio.to_thread(self.measure)
        now = self.clock.now()
        for t in thresholds_met(self.thresholds, observations):
            self.last_met[SIGNAL_CONDITION[t.signal]] = now
        self.conditions = conditions_observed(self.last_met, now)
        for cond in ("MemoryPressure", "DiskPressure"):
            self.node_status.set_pressure(cond, cond in self.conditions)
        pods = self.active_pods()
        decision = await asyncio.to_thread(decide, self.thresholds, observations, pods,
                                           self.pod_usage)
        if decision is None:
            return None
        log.warning("evicting pod %s/%s: %s", decision.pod["metadata"].get("namespace"),
                    decision.pod["metadata"].get("name"), decision.message)
        self.recorder.record({"kind": "Pod", "apiVersion": "v1", **decision.pod}, "Warning",
                             "Evicted", decision.message)
        await self.evict(decision.pod, evicted_status(decision.message), EVICTION_GRACE_PERIOD)
        return decision.pod

    async def run(self) -> None:
        while True:
            try:
                await self.synchronize()
            except Exception:
                log.exception("eviction manager pass failed")
            await self.clock.sleep(self.interval)
