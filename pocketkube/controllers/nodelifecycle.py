"""The node lifecycle controller (kube's `pkg/controller/nodelifecycle`): notices nodes whose
kubelet went silent and says so in the API.

A node is healthy while its kubelet renews its Lease in kube-node-lease or refreshes its Ready
condition's heartbeat. Both are judged on this controller's clock, from when it last saw them
change (so clock skew between machines does not matter): after the grace period
(node-monitor-grace-period, 40 s; node-startup-grace-period, 60 s, for a node that never
posted a Ready condition) its conditions become Unknown. Taints then follow the Ready
condition: `node.kubernetes.io/unreachable` (Unknown) or `node.kubernetes.io/not-ready` (False)
with effect NoExecute — the taint eviction controller (taintmanager.py) acts on those — and
NoSchedule taints for the scheduler, including `unschedulable` for a cordoned node. Pods on a
node that is not Ready get their Ready condition set to False.

Nodes are checked every node-monitor-period (5 s) and whenever a Node changes.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
NODES = resource("", "nodes")
PODS = resource("", "pods")
LEASES = resource("coordination.k8s.io", "leases")
LEASE_NAMESPACE = "kube-node-lease"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# condition type -> {status -> taint key} for the NoSchedule taints (kube's
# nodeConditionToTaintKeyStatusMap).
CONDITION_TAINTS = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
CONTROLLER_TAINT_KEYS = {NOT_READY, UNREACHABLE, UNSCHEDULABLE} | {
    k for m in CONDITION_TAINTS.values() for k in m.values()}
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def wall_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def ready_status(node: Obj) -> str:
    c = condition(node, "Ready")
    return c.get("status", "Unknown") if c else "Unknown"


def unknown_conditions(node: Obj, now: str) -> list[Obj] | None:
    """The node's conditions after its kubelet stopped posting status, or None if they are
    Unknown already."""
    conds = copy.deepcopy((node.get("status") or {}).get("conditions") or [])
    changed = False
    for type_ in MONITORED_CONDITIONS:
        c = next((c for c in conds if c.get("type") == type_), None)
        if c is None:
            conds.append({"type": type_, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                          "message": "Kubelet never posted node status.",
                          "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                          "lastTransitionTime": now})
            changed = True
        elif c.get("status") != "Unknown":
            c.update(status="Unknown", reason="NodeStatusUnknown",
                     message="Kubelet stopped posting node status.", lastTransitionTime=now)
            changed = True
    return conds if changed else None


def desired_taints(node: Obj, now: str) -> list[Obj] | None:
    """The node's taints with the controller-owned ones matching its conditions, or None if
    nothing changes. Taints anyone else set are kept as they are."""
    want: set[tuple[str, str]] = set()
    ready = ready_status(node)
    if ready == "False":
        want.add((NOT_READY, "NoExecute"))
    elif ready == "Unknown":
        want.add((UNREACHABLE, "NoExecute"))
    for c in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get(c.get("type", ""), {}).get(c.get("status", ""))
        if key:
            want.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        want.add((UNSCHEDULABLE, "NoSchedule"))
    taints = (node.get("spec") or {}).get("taints") or []
    have = {(t.get("key"), t.get("effect")) for t in taints
            if t.get("key") in CONTROLLER_TAINT_KEYS and t.get("effect") in
            ("NoExecute", "NoSchedule")}
    if have == want:
        return None
    kept = [t for t in taints if (t.get("key"), t.get("effect")) in want or
            t.get("key") not in CONTROLLER_TAINT_KEYS or
            t.get("effect") not in ("NoExecute", "NoSchedule")]
    added = [{"key": k, "effect": e, "timeAdded": now} for k, e in sorted(want - have)]
    return kept + added


@dataclass
class Health:
    probe: float  # when the kubelet was last heard from, on our clock
    heartbeat: str | None  # Ready condition's lastHeartbeatTime last seen
    renew: str | None  # lease renewTime last seen
    ready: str  # Ready status last seen


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    workers = 4

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 grace_period: float = 40.0, startup_grace_period: float = 60.0,
                 monitor_period: float = 5.0, recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.grace_period = grace_period
        self.startup_grace_period = startup_grace_period
        self.monitor_period = monitor_period
        self.recorder = recorder or EventRecorder(client, "node-controller")
        self.health: dict[str, Health] = {}
        self.nodes = informers.informer(NODES)
        self.leases = informers.informer(LEASES)
        self.pods = informers.informer(PODS)
        self.pods.add_index("nodeName", pod_node)
        self.nodes.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                      delete=lambda o: self.health.pop(o["metadata"]["name"], None))
        self.pods.on(add=self._pod_changed, update=lambda old, new: self._pod_changed(new))

    def _pod_changed(self, pod: Obj) -> None:
        node = self.nodes.get(pod_node(pod)[0]) if pod_node(pod) else None
        if node is not None and ready_status(node) != "True" and _pod_ready(pod):
            self.queue.add(node["metadata"]["name"])

    async def run(self) -> None:
        await asyncio.gather(super().run(), self._monitor())

    async def _monitor(self) -> None:
        """Every period, queue the nodes whose grace period ran out (node, pod and taint
        changes queue themselves as they happen)."""
        while True:
            await self.clock.sleep(self.monitor_period)
            now = self.clock.now()
            for node in self.nodes.list():
                if self._overdue(node, self._observe(node, now), now):
                    self.enqueue(node)

    def _observe(self, node: Obj, now: float) -> Health:
        """The node's health record, its probe time moved if the kubelet was heard from."""
        name = node["metadata"]["name"]
        heartbeat = (condition(node, "Ready") or {}).get("lastHeartbeatTime")
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        h = self.health.get(name)
        if h is None:
            # First sight: a full grace period from now, as after a controller restart.
            h = self.health[name] = Health(now, heartbeat, renew, ready_status(node))
        if heartbeat != h.heartbeat or renew != h.renew:
            h.probe, h.heartbeat, h.renew = now, heartbeat, renew
        return h

    def _overdue(self, node: Obj, h: Health, now: float) -> bool:
        grace = self.grace_period if condition(node, "Ready") is not None \
            else self.startup_grace_period
        return now >= h.probe + grace and any(
            (condition(node, t) or {}).get("status") != "Unknown" for t in MONITORED_CONDITIONS)

    # -- sync -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.health.pop(key, None)
            return
        now = self.clock.now()
        h = self._observe(node, now)
        if self._overdue(node, h, now):
            conds = unknown_conditions(node, wall_now())
            if conds is not None:
                self.log.info("node %s: no status for %.0fs, Ready is now Unknown", key,
                              now - h.probe)
                body = copy.deepcopy(node)
                body.setdefault("status", {})["conditions"] = conds
                node = await self.client.update(NODES, body, subresource="status")
        status = ready_status(node)
        if status != h.ready:
            if h.ready == "True":
                self._node_event(node, "NodeNotReady")
            elif status == "True":
                self._node_event(node, "NodeReady")
            h.ready = status
        taints = desired_taints(node, wall_now())
        if taints is not None:
            body = copy.deepcopy(node)
            body.setdefault("spec", {})["taints"] = taints or None
            node = await self.client.update(NODES, body)
        if status != "True":
            await self._mark_pods_not_ready(key)

    def _node_event(self, node: Obj, status: str) -> None:
        name = node["metadata"]["name"]
        self.recorder.record(node, "Normal", status, f"Node {name} status is now: {status}")

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.pods.by_index("nodeName", node_name):
            if not _pod_ready(pod):
                continue
            meta = pod["metadata"]
            patch = {"metadata": {"uid": meta["uid"]}, "status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": wall_now()}]}}
            try:
                await self.client.patch(PODS, meta["name"], patch, meta["namespace"],
                                        patch_type="strategic", subresource="status")
            except StatusError as e:
                if e.code not in (404, 409):
                    raise
                continue
            self.recorder.record(pod, "Warning", "NodeNotReady", "Node is not ready")


def pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _pod_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")
