"""NodeResourcesFit: the pod's requests (cpu, memory, ephemeral-storage, extended resources)
and one more pod must fit in what the node's allocatable leaves after the pods already there;
scores nodes by LeastAllocated (the more free cpu and memory after placing the pod, the better).

A request larger than the node's whole allocatable can never be met by evicting pods, so it is
reported unresolvable and preemption does not try that node.
"""

from __future__ import annotations

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import (
    MAX_NODE_SCORE,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    CycleState,
    Plugin,
    Status,
)


def insufficient(pod: PodInfo, node: NodeInfo) -> tuple[list[str], bool]:
    """kube's fitsRequest: the failure reasons, and whether any is unresolvable."""
    reasons: list[str] = []
    unresolvable = False
    alloc, used, req = node.allocatable, node.requested, pod.req
    if len(node.pods) + 1 > alloc.pods:
        reasons.append("Too many pods")
    if req.cpu == 0 and req.memory == 0 and req.ephemeral == 0 and not req.scalar:
        return reasons, unresolvable
    if req.cpu > 0 and req.cpu > alloc.cpu - used.cpu:
        reasons.append("Insufficient cpu")
        unresolvable = unresolvable or req.cpu > alloc.cpu
    if req.memory > 0 and req.memory > alloc.memory - used.memory:
        reasons.append("Insufficient memory")
        unresolvable = unresolvable or req.memory > alloc.memory
    if req.ephemeral > 0 and req.ephemeral > alloc.ephemeral - used.ephemeral:
        reasons.append("Insufficient ephemeral-storage")
        unresolvable = unresolvable or req.ephemeral > alloc.ephemeral
    for name, amount in req.scalar.items():
        have = alloc.scalar.get(name, 0)
        if amount > 0 and amount > have - used.scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
            unresolvable = unresolvable or amount > have
    return reasons, unresolvable


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"
    events = frozenset({"Node/Add", "Node/UpdateAllocatable", "AssignedPod/Delete"})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        # Fast path: the common case is a node with plenty of room.
        alloc, used, req = node.allocatable, node.requested, pod.req
        if (len(node.pods) < alloc.pods and req.cpu <= alloc.cpu - used.cpu
                and req.memory <= alloc.memory - used.memory
                and req.ephemeral <= alloc.ephemeral - used.ephemeral and not req.scalar):
            return None
        reasons, unresolvable = insufficient(pod, node)
        if not reasons:
            return None
        return Status(UNRESOLVABLE if unresolvable else UNSCHEDULABLE, *reasons)

    def filter_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                   rejected: dict[str, Status]) -> list[NodeInfo]:
        req = pod.req
        if req.scalar:
            return super().filter_all(state, pod, nodes, rejected)
        cpu, mem, eph = req.cpu, req.memory, req.ephemeral
        out = []
        for ni in nodes:
            alloc, used = ni.allocatable, ni.requested
            if (len(ni.pods) < alloc.pods and cpu <= alloc.cpu - used.cpu
                    and mem <= alloc.memory - used.memory
                    and eph <= alloc.ephemeral - used.ephemeral):
                out.append(ni)
                continue
            st = self.filter(state, pod, ni)
            if st is None:
                out.append(ni)
            else:
                st.plugin = self.name
                rejected[ni.name] = st
        return out

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        alloc = node.allocatable
        total = weights = 0
        if alloc.cpu:
            total += least_requested(node.non0_cpu + pod.non0_cpu, alloc.cpu)
            weights += 1
        if alloc.memory:
            total += least_requested(node.non0_mem + pod.non0_mem, alloc.memory)
            weights += 1
        return total // weights if weights else 0

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        # score() inlined: this runs for every feasible node of every pod.
        out = []
        pc, pm = pod.non0_cpu, pod.non0_mem
        for ni in nodes:
            alloc = ni.allocatable
            cap_c, cap_m = alloc.cpu, alloc.memory
            if cap_c and cap_m:
                c, m = ni.non0_cpu + pc, ni.non0_mem + pm
                out.append(((0 if c > cap_c else (cap_c - c) * 100 // cap_c)
                            + (0 if m > cap_m else (cap_m - m) * 100 // cap_m)) // 2)
            else:
                out.append(self.score(state, pod, ni))
        return out

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        return None
