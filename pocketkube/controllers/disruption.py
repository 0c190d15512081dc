"""The disruption controller (kube's pkg/controller/disruption): keeps every
PodDisruptionBudget's status — how many of its pods are healthy, how many must stay healthy,
and so how many may be disrupted (evicted) now. The eviction subresource and the scheduler's
preemption read that status; evictions the API server granted are listed in
`status.disruptedPods` until the pod is gone (or 2 minutes pass), so a pod about to be deleted is
not counted healthy in the meantime.

Expected pod counts come from the pods' controllers (Deployment through its ReplicaSet,
ReplicaSet, ReplicationController, StatefulSet) when the budget needs them: maxUnavailable, or a
percentage minAvailable. An integer minAvailable counts the matching pods themselves.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.podutil import format_time, is_pod_ready, parse_time
from pocketkube.api.selectors import selector_from_label_selector
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory, split_key

Obj = dict[str, Any]
PDBS = resource("policy", "poddisruptionbudgets")
PODS = resource("", "pods")
CONTROLLERS = {
    "ReplicaSet": resource("apps", "replicasets"),
    "Deployment": resource("apps", "deployments"),
    "StatefulSet": resource("apps", "statefulsets"),
    "ReplicationController": resource("", "replicationcontrollers"),
}
DELETION_TIMEOUT = 120.0  # kube's DeletionTimeout for entries of status.disruptedPods


class SyncError(Exception):
    """The budget's expected pod count cannot be worked out (shown as condition SyncFailed)."""


def scaled(value: Any, total: int) -> int:
    """kube's GetScaledValueFromIntOrPercent with rounding up."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def matching_pods(pdb: Obj, pods: list[Obj]) -> list[Obj]:
    sel_spec = (pdb.get("spec") or {}).get("selector")
    sel = selector_from_label_selector(sel_spec)
    if sel_spec is None:  # policy/v1: a null selector selects no pods, {} selects them all
        return []
    return [p for p in pods if sel.matches(p["metadata"].get("labels"))]


def expected_and_desired(pdb: Obj, pods: list[Obj], scale_of: Any) -> tuple[int, int]:
    """(expectedPods, desiredHealthy) as kube's getExpectedPodCount."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected = expected_scale(pods, scale_of)
        return expected, max(0, expected - scaled(spec["maxUnavailable"], expected))
    min_available = spec.get("minAvailable")
    if min_available is None:
        return len(pods), 0
    if isinstance(min_available, int):
        return len(pods), min_available
    expected = expected_scale(pods, scale_of)
    return expected, scaled(min_available, expected)


def expected_scale(pods: list[Obj], scale_of: Any) -> int:
    """The sum of the replicas of the distinct controllers of `pods`; `scale_of(ns, ref)`
    returns (controller uid, replicas) or None when the controller is unknown."""
    seen: dict[str, int] = {}
    for pod in pods:
        ref = next((r for r in pod["metadata"].get("ownerReferences") or []
                    if r.get("controller")), None)
        if ref is None:
            raise SyncError(f'found no controller ref for pod "{pod["metadata"]["name"]}"')
        found = scale_of(pod["metadata"].get("namespace"), ref)
        if found is None:
            raise SyncError(f"found no controllers for pod {pod['metadata']['name']!r}")
        uid, replicas = found
        seen[uid] = replicas
    return sum(seen.values())


def disrupted_map(pdb: Obj, pods: list[Obj], now: float) -> tuple[dict[str, str], float | None]:
    """The disruptedPods entries still pending (pod present, not yet deleting, granted less
    than DELETION_TIMEOUT ago), and when the earliest of them expires."""
    by_name = {p["metadata"]["name"]: p for p in pods}
    keep: dict[str, str] = {}
    recheck: float | None = None
    for name, granted in ((pdb.get("status") or {}).get("disruptedPods") or {}).items():
        pod = by_name.get(name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            continue
        at = parse_time(granted) or 0.0
        expires = at + DELETION_TIMEOUT
        if expires <= now:
            continue  # the eviction never happened: count the pod again
        keep[name] = granted
        recheck = expires if recheck is None else min(recheck, expires)
    return keep, recheck


def count_healthy(pods: list[Obj], disrupted: dict[str, str]) -> int:
    return sum(1 for p in pods if not p["metadata"].get("deletionTimestamp")
               and p["metadata"]["name"] not in disrupted and is_pod_ready(p))


def allowed_condition(allowed: int, old: list[Obj], now: float,
                      reason: str | None = None, message: str = "") -> list[Obj]:
    """The DisruptionAllowed condition (kube's UpdateDisruptionAllowedCondition)."""
    status = "True" if allowed > 0 and reason is None else "False"
    reason = reason or ("SufficientPods" if status == "True" else "InsufficientPods")
    prev = next((c for c in old if c.get("type") == "DisruptionAllowed"), None)
    if prev and prev.get("status") == status and prev.get("reason") == reason and \
            prev.get("message", "") == message:
        return old
    cond = {"type": "DisruptionAllowed", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": format_time(now)}
    if prev and prev.get("status") == status:
        cond["lastTransitionTime"] = prev.get("lastTransitionTime") or cond["lastTransitionTime"]
    if prev and prev.get("observedGeneration") is not None:
        cond["observedGeneration"] = prev["observedGeneration"]
    return [c for c in old if c.get("type") != "DisruptionAllowed"] + [cond]


class DisruptionController(Controller):
    name = "disruption"
    workers = 2

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None) -> None:
        super().__init__(client, informers, clock)
        self.recorder = EventRecorder(client, "controllermanager")
        self.pdbs = informers.informer(PDBS)
        self.pods = informers.informer(PODS)
        self.owners = {kind: informers.informer(r) for kind, r in CONTROLLERS.items()}
        self.pdbs.on(add=self.enqueue, update=lambda old, new: self.enqueue(new))
        self.pods.on(add=self._pod, update=lambda old, new: self._pod(new), delete=self._pod)

    def _pod(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        for pdb in self.pdbs.list():
            if pdb["metadata"].get("namespace") == ns and matching_pods(pdb, [pod]):
                self.enqueue(pdb)

    def scale_of(self, ns: str, ref: Obj) -> tuple[str, int] | None:
        kind = ref.get("kind")
        informer = self.owners.get(kind or "")
        if informer is None:
            return None
        owner = informer.get(f"{ns}/{ref.get('name')}")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        if kind == "ReplicaSet":
            parent = next((r for r in owner["metadata"].get("ownerReferences") or []
                           if r.get("controller") and r.get("kind") == "Deployment"), None)
            if parent is not None:
                return self.scale_of(ns, parent)
        return owner["metadata"]["uid"], int((owner.get("spec") or {}).get("replicas", 1))

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        ns, _ = split_key(key)
        pods = [p for p in self.pods.list() if p["metadata"].get("namespace") == ns]
        pods = matching_pods(pdb, pods)
        wall = datetime.now(UTC).timestamp()
        if not pods:
            self.recorder.record(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired = expected_and_desired(pdb, pods, self.scale_of)
        except SyncError as e:
            self.recorder.record(pdb, "Warning", "CalculateExpectedPodCountFailed",
                                 f"Failed to calculate the number of expected pods: {e}")
            await self._write(pdb, {"disruptionsAllowed": 0}, wall, "SyncFailed", str(e))
            return
        disrupted, recheck = disrupted_map(pdb, pods, wall)
        healthy = count_healthy(pods, disrupted)
        status = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                  "disruptionsAllowed": max(0, healthy - desired), "disruptedPods": disrupted}
        await self._write(pdb, status, wall)
        if recheck is not None:
            self.queue.add_after(key, max(0.0, recheck - wall) + 0.1)

    async def _write(self, pdb: Obj, fields: Obj, wall: float, reason: str | None = None,
                     message: str = "") -> None:
        old = pdb.get("status") or {}
        new = {**old, **fields, "observedGeneration": pdb["metadata"].get("generation", 1)}
        if not new.get("disruptedPods"):
            new.pop("disruptedPods", None)
        new["conditions"] = allowed_condition(int(new.get("disruptionsAllowed", 0)),
                                              list(old.get("conditions") or []), wall,
                                              reason, message)
        if new == old:
            return
        body = {**pdb, "status": new}
        try:
            await self.client.update(PDBS, body, subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise
