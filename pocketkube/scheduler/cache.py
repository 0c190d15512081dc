"""The scheduler's view of the cluster: every node with the pods on it and their summed
requests (NodeInfo), kept up to date incrementally from the informers, plus pods the scheduler
has assumed onto a node but whose binding the API has not confirmed yet (kube's
`internal/cache`).

Scheduling cycles run without awaiting, so within a cycle this cache *is* the snapshot: plugins
read it directly and no per-cycle copy is made. `node_list` is the snapshot's node order, rebuilt
only when a node comes or goes. Per-pod facts the plugins need (requests, ports, affinity terms,
tolerations) are computed once per pod version in PodInfo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pocketkube.scheduler import resources
from pocketkube.scheduler.resources import Resource
from pocketkube.scheduler.selectors import AffinityTerm, affinity_terms

log = logging.getLogger("pocketkube.scheduler.cache")
Obj = dict[str, Any]


class PodInfo:
    """A pod with everything the plugins read from it precomputed."""

    __slots__ = ("obj", "uid", "namespace", "name", "key", "labels", "priority", "node_name",
                 "req", "non0_cpu", "non0_mem", "host_ports", "tolerations", "required_affinity",
                 "required_anti_affinity", "preferred_affinity", "preferred_anti_affinity",
                 "created", "start_time", "spread", "node_selector", "node_affinity")

    def __init__(self, obj: Obj, priority: int = 0) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        self.obj = obj
        self.uid: str = meta.get("uid") or f"{meta.get('namespace')}/{meta['name']}"
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.priority = priority
        self.node_name: str = spec.get("nodeName") or ""
        self.req = resources.pod_requests(spec)
        non0 = resources.pod_requests(spec, non_zero=True)
        self.non0_cpu, self.non0_mem = non0.cpu, non0.memory
        self.host_ports: list[tuple[str, str, int]] = [
            (p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", p["hostPort"])
            for c in spec.get("containers") or [] for p in c.get("ports") or []
            if p.get("hostPort")]
        self.tolerations: list[Obj] = spec.get("tolerations") or []
        self.node_selector: dict[str, str] = spec.get("nodeSelector") or {}
        self.node_affinity: Obj = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        aff = spec.get("affinity") or {}
        has_pod_aff = bool(aff.get("podAffinity") or aff.get("podAntiAffinity"))
        self.required_affinity: list[AffinityTerm] = \
            affinity_terms(obj, "podAffinity", True) if has_pod_aff else []
        self.required_anti_affinity: list[AffinityTerm] = \
            affinity_terms(obj, "podAntiAffinity", True) if has_pod_aff else []
        self.preferred_affinity: list[AffinityTerm] = \
            affinity_terms(obj, "podAffinity", False) if has_pod_aff else []
        self.preferred_anti_affinity: list[AffinityTerm] = \
            affinity_terms(obj, "podAntiAffinity", False) if has_pod_aff else []
        self.spread: list[Obj] = spec.get("topologySpreadConstraints") or []
        self.created: str = meta.get("creationTimestamp") or ""
        self.start_time: str = (obj.get("status") or {}).get("startTime") or self.created

    @property
    def has_affinity(self) -> bool:
        return bool(self.required_affinity or self.required_anti_affinity
                    or self.preferred_affinity or self.preferred_anti_affinity)

    def terminating_by_preemption(self) -> bool:
        if not self.obj["metadata"].get("deletionTimestamp"):
            return False
        return any(c.get("type") == "DisruptionTarget" and c.get("reason") ==
                   "PreemptionByScheduler"
                   for c in (self.obj.get("status") or {}).get("conditions") or [])


class NodeInfo:
    """A node and the pods on it (bound or assumed), with their summed requests."""

    __slots__ = ("name", "node", "labels", "taints", "unschedulable", "allocatable",
                 "requested", "non0_cpu", "non0_mem", "pods", "used_ports", "affinity_pods",
                 "generation")

    def __init__(self, name: str, node: Obj | None = None) -> None:
        self.name = name
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.taints: list[Obj] = []
        self.unschedulable = False
        self.allocatable = Resource()
        self.requested = Resource()
        self.non0_cpu = 0
        self.non0_mem = 0
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: dict[tuple[str, str, int], int] = {}
        self.affinity_pods = 0  # pods here with pod (anti-)affinity terms
        self.generation = 0
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Obj) -> None:
        spec = node.get("spec") or {}
        self.node = node
        self.labels = node["metadata"].get("labels") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = resources.node_allocatable(node)
        self.generation += 1

    def add_pod(self, pi: PodInfo) -> None:
        self.pods[pi.uid] = pi
        self._account(pi, 1)

    def remove_pod(self, uid: str) -> PodInfo | None:
        pi = self.pods.pop(uid, None)
        if pi is not None:
            self._account(pi, -1)
        return pi

    def _account(self, pi: PodInfo, sign: int) -> None:
        self.requested.add(pi.req, sign)
        self.non0_cpu += sign * pi.non0_cpu
        self.non0_mem += sign * pi.non0_mem
        for port in pi.host_ports:
            n = self.used_ports.get(port, 0) + sign
            if n > 0:
                self.used_ports[port] = n
            else:
                self.used_ports.pop(port, None)
        if pi.has_affinity:
            self.affinity_pods += sign
        self.generation += 1

    def clone(self) -> NodeInfo:
        """A copy whose pods can be added or removed without touching this one (preemption
        dry runs)."""
        c = NodeInfo(self.name)
        c.node, c.labels, c.taints = self.node, self.labels, self.taints
        c.unschedulable, c.allocatable = self.unschedulable, self.allocatable
        c.requested = self.requested.copy()
        c.non0_cpu, c.non0_mem = self.non0_cpu, self.non0_mem
        c.pods = dict(self.pods)
        c.used_ports = dict(self.used_ports)
        c.affinity_pods = self.affinity_pods
        return c


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._list: list[NodeInfo] | None = None
        self.pod_nodes: dict[str, str] = {}  # uid -> node name, for every pod on a node
        self.assumed: set[str] = set()
        self.affinity_pods = 0  # pods with (anti-)affinity on any node
        self.namespace_labels: dict[str, dict[str, str]] = {}
        # Set by the scheduler: a pod's default (system) topology spread constraints.
        self.default_spread: Callable[[PodInfo], list[Obj]] | None = None

    # -- nodes ----------------------------------------------------------------------------------
    @property
    def node_list(self) -> list[NodeInfo]:
        """The nodes in snapshot order (pods whose node is unknown yet are not listed)."""
        if self._list is None:
            self._list = [ni for ni in self.nodes.values() if ni.node is not None]
        return self._list

    def add_node(self, node: Obj) -> NodeInfo:
        name = node["metadata"]["name"]
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name, node)
            self._list = None
        else:
            if ni.node is None:
                self._list = None
            ni.set_node(node)
        return ni

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None:
            return
        self._list = None
        if ni.pods:
            ni.node = None  # keep its pods' accounting until they go
        else:
            del self.nodes[name]

    # -- pods -----------------------------------------------------------------------------------
    def _place(self, pi: PodInfo, node: str) -> None:
        ni = self.nodes.get(node)
        if ni is None:
            ni = self.nodes[node] = NodeInfo(node)
        ni.add_pod(pi)
        self.pod_nodes[pi.uid] = node
        if pi.has_affinity:
            self.affinity_pods += 1

    def _unplace(self, uid: str) -> PodInfo | None:
        node = self.pod_nodes.pop(uid, None)
        if node is None:
            return None
        ni = self.nodes.get(node)
        pi = ni.remove_pod(uid) if ni is not None else None
        if pi is not None and pi.has_affinity:
            self.affinity_pods -= 1
        if ni is not None and ni.node is None and not ni.pods:
            del self.nodes[node]
        return pi

    def assume(self, pi: PodInfo, node: str) -> None:
        """Count the pod on `node` now, before the API has confirmed the binding."""
        self._unplace(pi.uid)
        pi.node_name = node
        self._place(pi, node)
        self.assumed.add(pi.uid)

    def forget(self, uid: str) -> None:
        """Undo an assumption whose binding failed."""
        if uid in self.assumed:
            self.assumed.discard(uid)
            self._unplace(uid)

    def is_assumed(self, uid: str) -> bool:
        return uid in self.assumed

    def add_pod(self, pi: PodInfo) -> None:
        """A pod the API reports on a node (confirms an assumption, or a pod bound elsewhere)."""
        self.assumed.discard(pi.uid)
        self._unplace(pi.uid)
        self._place(pi, pi.node_name)

    def remove_pod(self, uid: str) -> None:
        self.assumed.discard(uid)
        self._unplace(uid)

    def pod(self, uid: str) -> PodInfo | None:
        node = self.pod_nodes.get(uid)
        ni = self.nodes.get(node) if node else None
        return ni.pods.get(uid) if ni is not None else None
