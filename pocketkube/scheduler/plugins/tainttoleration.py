"""TaintToleration: NoSchedule and NoExecute taints keep out pods that do not tolerate them;
PreferNoSchedule taints lower a node's score by how many the pod does not tolerate."""

from __future__ import annotations

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import (
    SKIP,
    UNRESOLVABLE,
    CycleState,
    Plugin,
    Status,
    default_normalize,
)
from pocketkube.scheduler.selectors import first_untolerated, tolerates

HARD = ("NoSchedule", "NoExecute")


class TaintToleration(Plugin):
    name = "TaintToleration"
    weight = 3
    events = frozenset({"Node/Add", "Node/UpdateTaint"})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        taint = first_untolerated(node.taints, pod.tolerations, HARD)
        if taint is None:
            return None
        return Status(UNRESOLVABLE, "node(s) had untolerated taint "
                                    f"{{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def filter_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                   rejected: dict[str, Status]) -> list[NodeInfo]:
        if not any(ni.taints for ni in nodes):
            return nodes
        return super().filter_all(state, pod, nodes, rejected)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        # Without soft taints every node scores the same, which cannot change the choice.
        if not any(t.get("effect") == "PreferNoSchedule" for ni in nodes for t in ni.taints):
            return Status(SKIP)
        state[self.name] = [t for t in pod.tolerations
                            if (t.get("effect") or "") in ("", "PreferNoSchedule")]
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tolerations = state[self.name]
        return sum(1 for taint in node.taints if taint.get("effect") == "PreferNoSchedule"
                   and not any(tolerates(t, taint) for t in tolerations))

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
