"""InterPodAffinity: required pod affinity (the node's topology domain must already hold a
matching pod), required anti-affinity both ways (the incoming pod's terms, and existing pods'
terms against the incoming pod), and the preferred terms as a score.

Counts per (topologyKey, value) are computed once per pod in pre_filter, so filtering a node is
a few dict lookups (kube's preFilterState). Namespaces follow the term's `namespaces` and
`namespaceSelector`, defaulting to the pod's own namespace.
"""

from __future__ import annotations

from collections import Counter

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    CycleState,
    Plugin,
    Status,
)
from pocketkube.scheduler.selectors import AffinityTerm

AFFINITY = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_AFFINITY_WEIGHT = 1

Pair = tuple[str, str]


class _State:
    __slots__ = ("existing_anti", "affinity", "anti")

    def __init__(self) -> None:
        self.existing_anti: Counter[Pair] = Counter()
        self.affinity: Counter[Pair] = Counter()
        self.anti: Counter[Pair] = Counter()


def _matches(term: AffinityTerm, pod: PodInfo, ns_labels: dict) -> bool:
    return term.matches(pod.namespace, pod.labels, ns_labels)


def compute_state(pod: PodInfo, nodes: list[NodeInfo], ns_labels: dict) -> _State:
    st = _State()
    for ni in nodes:
        labels = ni.labels
        for other in ni.pods.values():
            for term in other.required_anti_affinity:
                v = labels.get(term.topology_key)
                if v is not None and _matches(term, pod, ns_labels):
                    st.existing_anti[(term.topology_key, v)] += 1
            if pod.required_affinity and all(_matches(t, other, ns_labels)
                                             for t in pod.required_affinity):
                for term in pod.required_affinity:
                    v = labels.get(term.topology_key)
                    if v is not None:
                        st.affinity[(term.topology_key, v)] += 1
            for term in pod.required_anti_affinity:
                v = labels.get(term.topology_key)
                if v is not None and _matches(term, other, ns_labels):
                    st.anti[(term.topology_key, v)] += 1
    return st


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"
    weight = 2
    events = frozenset({"AssignedPod/Add", "AssignedPod/Update", "AssignedPod/Delete",
                        "Node/Add", "Node/UpdateLabel"})

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        if not pod.required_affinity and not pod.required_anti_affinity \
                and cache.affinity_pods == 0:
            return Status(SKIP)
        state[self.name] = compute_state(pod, cache.node_list, cache.namespace_labels)
        state[self.name + "/ns"] = cache.namespace_labels
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        st: _State = state[self.name]
        labels = node.labels
        if pod.required_affinity:
            exists = True
            for term in pod.required_affinity:
                v = labels.get(term.topology_key)
                if v is None or st.affinity[(term.topology_key, v)] <= 0:
                    exists = False
                    break
            if not exists:
                # The first pod of a group that selects itself may start it anywhere.
                ns = state[self.name + "/ns"]
                if st.affinity or not all(_matches(t, pod, ns) for t in pod.required_affinity):
                    return Status(UNRESOLVABLE, AFFINITY)
        for term in pod.required_anti_affinity:
            v = labels.get(term.topology_key)
            if v is not None and st.anti[(term.topology_key, v)] > 0:
                return Status(UNSCHEDULABLE, ANTI_AFFINITY)
        if st.existing_anti:
            for k, v in labels.items():
                if st.existing_anti.get((k, v), 0) > 0:
                    return Status(UNSCHEDULABLE, EXISTING_ANTI_AFFINITY)
        return None

    # -- scoring --------------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        has_preferred = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not has_preferred and cache.affinity_pods == 0:
            return Status(SKIP)
        ns = cache.namespace_labels
        scores: Counter[Pair] = Counter()
        for ni in cache.node_list:
            labels = ni.labels
            for other in ni.pods.values():
                if not has_preferred and not other.has_affinity:
                    continue

                def add(term: AffinityTerm, target: PodInfo, weight: int) -> None:
                    v = labels.get(term.topology_key)  # noqa: B023 - used at once
                    if v is not None and weight and _matches(term, target, ns):
                        scores[(term.topology_key, v)] += weight

                for t in pod.preferred_affinity:
                    add(t, other, t.weight)
                for t in pod.preferred_anti_affinity:
                    add(t, other, -t.weight)
                for t in other.preferred_affinity:
                    add(t, pod, t.weight)
                for t in other.preferred_anti_affinity:
                    add(t, pod, -t.weight)
                for t in other.required_affinity:
                    add(t, pod, HARD_AFFINITY_WEIGHT)
        if not scores:
            return Status(SKIP)
        state[self.name + "/score"] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: Counter[Pair] = state[self.name + "/score"]
        return sum(scores.get((k, v), 0) for k, v in node.labels.items())

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        if not scores:
            return
        lo, hi = min(scores), max(scores)
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * (s - lo) / diff) if diff > 0 else 0
