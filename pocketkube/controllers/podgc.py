"""The pod garbage collector (kube's `pkg/controller/podgc`): every 20 s it force-deletes pods
nothing else will ever clean up.

- Terminated pods (Succeeded or Failed) beyond terminated-pod-gc-threshold (12500): the
  oldest go first, evicted ones before the rest.
- Pods bound to a node that no longer exists: once the node has been missing for the
  quarantine (40 s) and a direct read confirms it is gone, the pod gets a DisruptionTarget
  condition ("PodGC: node no longer exists") and is deleted.
- Terminating pods on a node that is not Ready and carries the
  `node.kubernetes.io/out-of-service` taint (the node is known to be down for good).
- Terminating pods that were never scheduled.

A pod not yet in a terminal phase is marked Failed first, since no kubelet will ever do it,
then deleted with a zero grace period.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.nodelifecycle import ready_status, wall_now

Obj = dict[str, Any]
PODS = resource("", "pods")
NODES = resource("", "nodes")
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
ORPHAN_CONDITION = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                    "message": "PodGC: node no longer exists"}


def is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase", "Pending") not in ("Pending", "Running",
                                                                     "Unknown")


def _evicted(pod: Obj) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Failed" and st.get("reason") == "Evicted"


def _created(pod: Obj) -> datetime:
    ts = pod["metadata"].get("creationTimestamp") or "1970-01-01T00:00:00Z"
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def terminated_to_delete(pods: list[Obj], threshold: int) -> list[Obj]:
    """The terminated pods beyond `threshold`, in kube's order (evicted, oldest, by name)."""
    if threshold <= 0:
        return []
    done = [p for p in pods if is_terminated(p)]
    excess = len(done) - threshold
    if excess <= 0:
        return []
    done.sort(key=lambda p: (not _evicted(p), _created(p), p["metadata"]["name"]))
    return done[:excess]


def terminating_to_delete(pods: list[Obj], nodes: dict[str, Obj]) -> list[Obj]:
    """Terminating pods on out-of-service nodes that are not Ready, and unscheduled ones."""
    out = []
    for pod in pods:
        if not pod["metadata"].get("deletionTimestamp"):
            continue
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            out.append(pod)
            continue
        node = nodes.get(node_name)
        if node is not None and ready_status(node) != "True" and any(
                t.get("key") == OUT_OF_SERVICE
                for t in (node.get("spec") or {}).get("taints") or []):
            out.append(pod)
    return out


class PodGCController(Controller):
    name = "podgc"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 terminated_pod_threshold: int = 12500, period: float = 20.0,
                 quarantine: float = 40.0) -> None:
        super().__init__(client, informers, clock)
        self.threshold = terminated_pod_threshold
        self.period = period
        self.quarantine = quarantine
        self.missing: dict[str, float] = {}  # node name -> when first seen missing
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)

    async def run(self) -> None:
        while True:
            try:
                await self.gc()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.log.warning("pod garbage collection failed: %s", e)
            await self.clock.sleep(self.period)

    async def gc(self) -> None:
        """One pass over every pod."""
        pods = self.pods.list()
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        for pod in terminated_to_delete(pods, self.threshold):
            await self._force_delete(pod)
        for pod in terminating_to_delete(pods, nodes):
            await self._force_delete(pod)
        gone = await self._deleted_nodes(pods, nodes)
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") in gone:
                self.log.info("pod %s/%s: node %s no longer exists", pod["metadata"]["namespace"],
                              pod["metadata"]["name"], pod["spec"]["nodeName"])
                await self._force_delete(pod, ORPHAN_CONDITION)

    async def _deleted_nodes(self, pods: list[Obj], nodes: dict[str, Obj]) -> set[str]:
        """Nodes pods are bound to that have been missing for the quarantine and are
        confirmed gone by a direct read."""
        now = self.clock.now()
        wanted = {n for p in pods if (n := (p.get("spec") or {}).get("nodeName"))
                  and n not in nodes}
        self.missing = {n: t for n, t in self.missing.items() if n in wanted}
        gone = set()
        for name in wanted:
            first = self.missing.setdefault(name, now)
            if now - first < self.quarantine:
                continue
            try:
                await self.client.get(NODES, name)
            except StatusError as e:
                if e.code == 404:
                    gone.add(name)
        return gone

    async def _force_delete(self, pod: Obj, cond: Obj | None = None) -> None:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        self.log.info("force deleting pod %s/%s", ns, name)
        try:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                status: Obj = {"phase": "Failed"}
                if cond is not None:
                    status["conditions"] = [{**cond, "lastTransitionTime": wall_now()}]
                await self.client.patch(PODS, name, {"metadata": {"uid": meta["uid"]},
                                                     "status": status},
                                        ns, patch_type="strategic", subresource="status")
            await self.client.delete(PODS, name, ns, gracePeriodSeconds=0,
                                     preconditions={"uid": meta["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):  # gone or replaced: nothing left to do
                self.log.warning("could not delete pod %s/%s: %s", ns, name, e.message)
