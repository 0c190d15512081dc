"""Builders for scheduler unit tests: nodes, pods and a cache holding them."""

from __future__ import annotations

import itertools
from typing import Any

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import CycleState, Plugin, Status

_uid = itertools.count()


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: dict[str, str] | None = None, taints: list[dict] | None = None,
         unschedulable: bool = False, **extra: str) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **extra}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": {"allocatable": alloc, "capacity": alloc}}


def pod(name: str, cpu: str | None = None, memory: str | None = None, ns: str = "default",
        node_name: str = "", labels: dict[str, str] | None = None, priority: int = 0,
        created: str = "2024-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    body = {"containers": [container], "priority": priority, **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}-{next(_uid)}",
                         "labels": labels or {}, "creationTimestamp": created},
            "spec": body, "status": {"phase": "Pending"}}


def info(p: dict[str, Any]) -> PodInfo:
    return PodInfo(p, int(p["spec"].get("priority") or 0))


def cache_with(nodes: list[dict], pods: list[dict] = ()) -> Cache:
    c = Cache()
    for n in nodes:
        c.add_node(n)
    for p in pods:
        c.add_pod(info(p))
    return c


def run_filter(plugin: Plugin, p: dict, ni: NodeInfo, cache: Cache | None = None
               ) -> Status | None:
    """pre_filter (skipping → fits) then filter, as the framework does."""
    state = CycleState()
    pi = info(p)
    st = plugin.pre_filter(state, pi, cache or Cache())
    if st is not None:
        return None if st.code == 5 else st
    return plugin.filter(state, pi, ni)
