"""NodeResourcesBalancedAllocation: prefers nodes where, with the pod placed, cpu and memory
are used in similar proportions (1 - standard deviation of the used fractions). Pods that
request nothing skip it, so they are not all drawn to the same node."""

from __future__ import annotations

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import MAX_NODE_SCORE, SKIP, CycleState, Plugin, Status


class BalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"
    events = frozenset({"Node/Add", "Node/UpdateAllocatable", "AssignedPod/Delete"})

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        return Status(SKIP) if pod.req.cpu == 0 and pod.req.memory == 0 else None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        alloc, used = node.allocatable, node.requested
        fractions = []
        if alloc.cpu:
            fractions.append(min((used.cpu + pod.req.cpu) / alloc.cpu, 1.0))
        if alloc.memory:
            fractions.append(min((used.memory + pod.req.memory) / alloc.memory, 1.0))
        if len(fractions) == 2:
            std = abs(fractions[0] - fractions[1]) / 2
        elif fractions:
            std = 0.0
        else:
            return 0
        return int((1 - std) * MAX_NODE_SCORE)

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        out = []
        pc, pm = pod.req.cpu, pod.req.memory
        for ni in nodes:
            alloc = ni.allocatable
            if alloc.cpu and alloc.memory:
                fc = (ni.requested.cpu + pc) / alloc.cpu
                fm = (ni.requested.memory + pm) / alloc.memory
                d = (fc if fc < 1.0 else 1.0) - (fm if fm < 1.0 else 1.0)
                out.append(int((1 - (d if d >= 0 else -d) / 2) * MAX_NODE_SCORE))
            else:
                out.append(self.score(state, pod, ni))
        return out
