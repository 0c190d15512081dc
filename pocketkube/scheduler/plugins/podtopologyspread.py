"""PodTopologySpread: topologySpreadConstraints. DoNotSchedule constraints filter nodes whose
domain would exceed maxSkew over the least-loaded domain (with minDomains counting missing
domains as empty); ScheduleAnyway constraints score nodes by how few matching pods their
domains hold.

Only nodes that carry every constraint's topology key and (nodeAffinityPolicy Honor, the
default) match the pod's node selector and affinity define domains. matchLabelKeys add the
pod's own label values to the selector.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from pocketkube.api.selectors import Requirement
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
from pocketkube.scheduler.plugins.nodeaffinity import pod_matches_node
from pocketkube.scheduler.selectors import LabelSelector, label_selector

REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"


class Constraint:
    __slots__ = ("key", "max_skew", "min_domains", "selector", "honor_affinity", "honor_taints")

    def __init__(self, c: dict[str, Any], pod: PodInfo) -> None:
        self.key: str = c.get("topologyKey") or ""
        self.max_skew = int(c.get("maxSkew") or 1)
        self.min_domains = int(c.get("minDomains") or 1)
        sel = c["_matcher"] if "_matcher" in c else label_selector(c.get("labelSelector"))
        keys = [k for k in c.get("matchLabelKeys") or [] if k in pod.labels]
        if keys and c.get("labelSelector") is not None:
            sel = LabelSelector(sel.reqs + [Requirement(k, "=", (pod.labels[k],))
                                            for k in keys])
        self.selector = sel
        self.honor_affinity = (c.get("nodeAffinityPolicy") or "Honor") == "Honor"
        self.honor_taints = c.get("nodeTaintsPolicy") == "Honor"


def constraints(pod: PodInfo, when: str, cache: Cache | None = None) -> list[Constraint]:
    spread = pod.spread
    if not spread and when == "ScheduleAnyway" and cache is not None and \
            cache.default_spread is not None:
        spread = cache.default_spread(pod)
    return [Constraint(c, pod) for c in spread if c.get("whenUnsatisfiable") == when]


def _eligible(node: NodeInfo, pod: PodInfo, cs: list[Constraint], all_keys: bool = True) -> bool:
    if all_keys and any(c.key not in node.labels for c in cs):
        return False
    return not any(c.honor_affinity for c in cs) or pod_matches_node(pod, node)


def _count(node: NodeInfo, pod: PodInfo, c: Constraint) -> int:
    return sum(1 for p in node.pods.values()
               if p.namespace == pod.namespace and c.selector.matches(p.labels)
               and not p.obj["metadata"].get("deletionTimestamp"))


def domain_counts(pod: PodInfo, nodes: list[NodeInfo], cs: list[Constraint],
                  all_keys: bool = True) -> Counter:
    """Matching pods per (topology key, value). With `all_keys` (constraints the pod declares)
    only nodes carrying every key count; system defaults count each key on its own."""
    counts: Counter[tuple[str, str]] = Counter()
    for ni in nodes:
        if not _eligible(ni, pod, cs, all_keys):
            continue
        for c in cs:
            if c.key in ni.labels:
                counts[(c.key, ni.labels[c.key])] += _count(ni, pod, c)
    return counts


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"
    weight = 2
    events = frozenset({"AssignedPod/Add", "AssignedPod/Update", "AssignedPod/Delete",
                        "Node/Add", "Node/UpdateLabel", "Node/UpdateTaint", "Node/Delete"})

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        cs = constraints(pod, "DoNotSchedule")
        if not cs:
            return Status(SKIP)
        counts = domain_counts(pod, cache.node_list, cs)
        minimum: dict[str, int] = {}
        domains: Counter[str] = Counter()
        for (key, _), n in counts.items():
            domains[key] += 1
            minimum[key] = min(minimum.get(key, n), n)
        state[self.name] = (cs, counts, minimum, domains)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        cs, counts, minimum, domains = state[self.name]
        for c in cs:
            value = node.labels.get(c.key)
            if value is None:
                return Status(UNRESOLVABLE, MISSING_LABEL)
            self_match = 1 if c.selector.matches(pod.labels) else 0
            low = minimum.get(c.key, 0)
            if domains[c.key] < c.min_domains:
                low = 0
            if counts.get((c.key, value), 0) + self_match - low > c.max_skew:
                return Status(UNSCHEDULABLE, REASON)
        return None

    # -- scoring --------------------------------------------------------------------------------
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        cs = constraints(pod, "ScheduleAnyway", cache)
        if not cs:
            return Status(SKIP)
        declared = bool(pod.spread)
        counts = domain_counts(pod, cache.node_list, cs, all_keys=declared)
        domains = Counter(key for key, _ in counts)
        weights = {c.key: math.log(domains[c.key] + 2) for c in cs}
        state[self.name + "/score"] = (cs, counts, weights, declared)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cs, counts, weights, declared = state[self.name + "/score"]
        total = 0.0
        for c in cs:
            value = node.labels.get(c.key)
            if value is None:
                if not declared:
                    continue  # system defaults: a node without the key is scored on the rest
                return -1  # not a candidate domain: scored 0 after normalizing
            total += counts.get((c.key, value), 0) * weights[c.key] + (c.max_skew - 1)
        return round(total)

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        valid = [s for s in scores if s >= 0]
        if not valid:
            return
        lo, hi = min(valid), max(valid)
        for i, s in enumerate(scores):
            if s < 0:
                scores[i] = 0
            elif hi == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (hi + lo - s) // hi
