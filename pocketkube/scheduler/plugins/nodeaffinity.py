"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes; preferred node
affinity terms add their weights to the nodes they match."""

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
from pocketkube.scheduler.selectors import node_selector_matches, term_matches

REASON = "node(s) didn't match Pod's node affinity/selector"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def pod_matches_node(pod: PodInfo, node: NodeInfo) -> bool:
    """nodeSelector and required node affinity (also used by PodTopologySpread)."""
    labels = node.labels
    for k, v in pod.node_selector.items():
        if labels.get(k) != v:
            return False
    required = pod.node_affinity.get(REQUIRED)
    return required is None or node_selector_matches(required, labels, node.name)


class NodeAffinity(Plugin):
    name = "NodeAffinity"
    weight = 2
    events = frozenset({"Node/Add", "Node/UpdateLabel"})

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        if not pod.node_selector and pod.node_affinity.get(REQUIRED) is None:
            return Status(SKIP)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if pod_matches_node(pod, node) else Status(UNRESOLVABLE, REASON)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        terms = [(int(t.get("weight") or 0), t.get("preference") or {})
                 for t in pod.node_affinity.get(PREFERRED) or []]
        terms = [(w, t) for w, t in terms if w]
        if not terms:
            return Status(SKIP)
        state[self.name] = terms
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(w for w, term in state[self.name]
                   if term_matches(term, node.labels, node.name))

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=False)
