"""Preemption (kube's DefaultPreemption PostFilter): when a pod fits nowhere, find nodes where
evicting lower-priority pods would make it fit, choose the node whose victims matter least, and
evict them; the pod is nominated to that node and scheduled there once the room appears.

On each candidate node every lower-priority pod is removed, then pods are given back one by one
from the most important (priority, then earliest start) as long as the incoming pod still fits:
the ones that cannot be given back are the victims — the fewest, least important pods needed.
Pods whose eviction would break a PodDisruptionBudget are given back first, and the node whose
victims break the fewest budgets wins, as kube's DefaultPreemption does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from pocketkube.api.selectors import selector_from_label_selector
from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import (
    ERROR,
    UNRESOLVABLE,
    UNSCHEDULABLE,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    Status,
    with_nominated,
)

log = logging.getLogger("pocketkube.scheduler.preemption")
Obj = dict[str, Any]
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
MIN_CANDIDATES_PERCENT = 10
MIN_CANDIDATES = 100
# Plugins whose pre_filter state depends on other nodes' pods: recomputed when a dry run
# removes pods.
CROSS_NODE = ("InterPodAffinity", "PodTopologySpread")


class _Overlay:
    """The cache as it would be with one node replaced (for cross-node pre_filter state)."""

    def __init__(self, cache: Cache, node: NodeInfo) -> None:
        self.node_list = [node if n.name == node.name else n for n in cache.node_list]
        self.namespace_labels = cache.namespace_labels
        self.affinity_pods = cache.affinity_pods
        self.nodes = cache.nodes


Candidate = tuple[NodeInfo, list[PodInfo], int]  # node, victims, budgets they would break


def split_by_budget(pods: list[PodInfo], budgets: list[Obj]) -> tuple[list[PodInfo],
                                                                        list[PodInfo]]:
    """kube's filterPodsWithPDBViolation: (pods whose eviction would exceed a budget's
    disruptionsAllowed, the others), each in the order given; evictions already granted
    (status.disruptedPods) are not counted twice."""
    allowed = [int((b.get("status") or {}).get("disruptionsAllowed") or 0) for b in budgets]
    selectors = [selector_from_label_selector((b.get("spec") or {}).get("selector"))
                 if (b.get("spec") or {}).get("selector") is not None else None for b in budgets]
    violating, ok = [], []
    for p in pods:
        breaks = False
        for i, b in enumerate(budgets):
            sel = selectors[i]
            if sel is None or b["metadata"].get("namespace") != p.namespace or \
                    not sel.matches(p.labels):
                continue
            if p.name in ((b.get("status") or {}).get("disruptedPods") or {}):
                continue
            allowed[i] -= 1
            if allowed[i] < 0:
                breaks = True
        (violating if breaks else ok).append(p)
    return violating, ok


class Preemptor:
    def __init__(self, framework: Framework, cache: Cache,
                 nominated: Callable[[], dict[str, list[PodInfo]]],
                 rng: random.Random | None = None,
                 budgets: Callable[[], list[Obj]] | None = None) -> None:
        self.framework = framework
        self.cache = cache
        self.nominated = nominated
        self.rng = rng or random.Random()
        self.budgets = budgets or list

    def preempt(self, state: CycleState, pod: PodInfo,
                diagnosis: Diagnosis) -> tuple[tuple[NodeInfo, list[PodInfo]] | None, str, bool]:
        """(chosen node and victims or None, post-filter message, whether to clear the pod's
        nominated node)."""
        spec, status = pod.obj.get("spec") or {}, pod.obj.get("status") or {}
        if spec.get("preemptionPolicy") == "Never":
            return None, "preemption: not eligible due to preemptionPolicy=Never.", False
        nominated_node = status.get("nominatedNodeName")
        if nominated_node:
            st = diagnosis.statuses.get(nominated_node)
            ni = self.cache.nodes.get(nominated_node)
            if (st is None or st.code != UNRESOLVABLE) and ni is not None and any(
                    p.priority < pod.priority and p.terminating_by_preemption()
                    for p in ni.pods.values()):
                return None, ("preemption: not eligible due to a terminating pod on the "
                              "nominated node."), False
        nodes = self.cache.node_list
        potential = [ni for ni in nodes if (st := diagnosis.statuses.get(ni.name)) is not None
                     and st.code == UNSCHEDULABLE]
        statuses: dict[str, Status] = {}
        candidates: list[Candidate] = []
        budgets = self.budgets()
        if potential:
            n = len(potential)
            want = min(max(n * MIN_CANDIDATES_PERCENT // 100, MIN_CANDIDATES), n)
            offset = self.rng.randrange(n)
            for i in range(n):
                ni = potential[(offset + i) % n]
                victims, st, violations = self.select_victims(state, pod, ni, budgets)
                if st is None and victims:
                    candidates.append((ni, victims, violations))
                    if len(candidates) >= want:
                        break
                else:
                    statuses[ni.name] = st or Status(
                        ERROR, f"expected at least one victim pod on node {ni.name}")
        if not candidates:
            d = Diagnosis()
            d.statuses = statuses
            err = FitError(pod, len(nodes), d, absent_status=Status(UNRESOLVABLE, NOT_HELPFUL))
            return None, f"preemption: {err}", True
        node, victims, _ = pick_one(candidates)
        return (node, victims), "", False

    # -- dry run --------------------------------------------------------------------------------
    def _fits(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if any(name not in state.skip_filter for name in CROSS_NODE):
            state, st = self.framework.run_pre_filter(pod, _Overlay(self.cache, node))  # type: ignore[arg-type]
            if st is not None:
                return st
        nominated = self.nominated().get(node.name)
        target = with_nominated(node, pod, nominated) if nominated else node
        return self.framework.run_filters(state, pod, target)

    def select_victims(self, state: CycleState, pod: PodInfo, ni: NodeInfo,
                       budgets: list[Obj] | None = None
                       ) -> tuple[list[PodInfo], Status | None, int]:
        """(victims, why none, how many of them break a disruption budget)."""
        lower = [p for p in ni.pods.values() if p.priority < pod.priority]
        if not lower:
            return [], Status(UNRESOLVABLE, NO_VICTIMS), 0
        clone = ni.clone()
        for p in lower:
            clone.remove_pod(p.uid)
        st = self._fits(state, pod, clone)
        if st is not None:
            return [], st, 0
        lower.sort(key=importance)
        violating, ok = split_by_budget(lower, budgets or [])
        victims: list[PodInfo] = []
        violations = 0
        for group, breaks in ((violating, True), (ok, False)):
            for p in group:
                clone.add_pod(p)
                if self._fits(state, pod, clone) is not None:
                    clone.remove_pod(p.uid)
                    victims.append(p)
                    violations += breaks
        victims.sort(key=importance)
        return victims, None, violations


def importance(p: PodInfo) -> tuple[int, str]:
    """Sort key, most important first: higher priority, then the earlier started."""
    return (-p.priority, p.start_time)


def pick_one(candidates: list[Candidate]) -> Candidate:
    """kube's pickOneNodeForPreemption: the fewest budget violations, then the lowest highest
    victim priority, then the lowest priority sum, then the fewest victims, then the latest
    start of the highest-priority victims, then the first."""
    def highest(c: Candidate) -> int:
        return max(p.priority for p in c[1])

    def best(cs: list, key: Callable[[Any], Any]) -> list:
        top = min(key(c) for c in cs)
        return [c for c in cs if key(c) == top]

    cs = best(candidates, lambda c: c[2])
    cs = best(cs, highest)
    cs = best(cs, lambda c: sum(p.priority + 2**31 for p in c[1]))
    cs = best(cs, lambda c: len(c[1]))
    if len(cs) > 1:
        def earliest_start(c: Candidate) -> str:
            h = highest(c)
            return min(p.start_time for p in c[1] if p.priority == h)
        latest = max(earliest_start(c) for c in cs)
        cs = [c for c in cs if earliest_start(c) == latest]
    return cs[0]

