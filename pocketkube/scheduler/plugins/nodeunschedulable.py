"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate the
`node.kubernetes.io/unschedulable:NoSchedule` taint."""

from __future__ import annotations

from pocketkube.scheduler.cache import NodeInfo, PodInfo
from pocketkube.scheduler.framework import UNRESOLVABLE, CycleState, Plugin, Status
from pocketkube.scheduler.selectors import tolerates

REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"
    events = frozenset({"Node/Add", "Node/UpdateTaint"})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable:
            return None
        if any(tolerates(t, TAINT) for t in pod.tolerations):
            return None
        return Status(UNRESOLVABLE, REASON)

    def filter_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                   rejected: dict[str, Status]) -> list[NodeInfo]:
        if not any(ni.unschedulable for ni in nodes):
            return nodes
        return super().filter_all(state, pod, nodes, rejected)
