"""The scheduling framework (kube's `pkg/scheduler/framework`): filter and score plugins run
over the cache's nodes for one pod, with kube's extension points reduced to what the in-tree
plugins use: pre_filter (compute per-pod state, or skip the plugin), filter, pre_score, score,
normalize, and the node-count heuristics (percentageOfNodesToScore, round-robin start).

Filters return None for "fits" (the common case, and cheaper than a status object) or a Status
carrying kube's reasons; FitError turns the per-node statuses into kube's FailedScheduling
message.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo

SUCCESS, ERROR, UNSCHEDULABLE, UNRESOLVABLE, SKIP = 0, 1, 2, 3, 5
MAX_NODE_SCORE = 100
MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


class Status:
    __slots__ = ("code", "reasons", "plugin")

    def __init__(self, code: int, *reasons: str, plugin: str = "") -> None:
        self.code = code
        self.reasons = list(reasons)
        self.plugin = plugin

    @property
    def rejected(self) -> bool:
        return self.code in (UNSCHEDULABLE, UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)

    def __repr__(self) -> str:
        return f"Status({self.code}, {self.reasons}, plugin={self.plugin!r})"


class CycleState(dict[str, Any]):
    """Per-pod data plugins computed in pre_filter/pre_score, by plugin name."""

    def __init__(self) -> None:
        super().__init__()
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()


class Plugin:
    name = "Plugin"
    weight = 1
    # Cluster events (queue.py) after which a pod this plugin rejected may fit.
    events: frozenset[str] = frozenset()

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None

    def filter_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                   rejected: dict[str, Status]) -> list[NodeInfo]:
        """The nodes that pass; the others' statuses go into `rejected`. Plugins on the hot
        path override it with one tight loop."""
        out = []
        f = self.filter
        for ni in nodes:
            st = f(state, pod, ni)
            if st is None:
                out.append(ni)
            else:
                st.plugin = self.name
                rejected[ni.name] = st
        return out

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  cache: Cache) -> Status | None:
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return 0

    def score_all(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """Every node's score; plugins on the hot path override it with one tight loop."""
        score = self.score
        return [score(state, pod, ni) for ni in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        return None


def default_normalize(scores: list[int], reverse: bool) -> None:
    """`helper.DefaultNormalizeScore`: scale to [0, 100], optionally reversed."""
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, s in enumerate(scores):
        s = MAX_NODE_SCORE * s // top
        scores[i] = MAX_NODE_SCORE - s if reverse else s


class Diagnosis:
    def __init__(self) -> None:
        self.statuses: dict[str, Status] = {}
        self.unschedulable_plugins: set[str] = set()
        self.pre_filter_msg = ""
        self.post_filter_msg = ""


class FitError(Exception):
    def __init__(self, pod: PodInfo, num_nodes: int, diagnosis: Diagnosis,
                 absent_status: Status | None = None) -> None:
        super().__init__()
        self.pod = pod
        self.num_nodes = num_nodes
        self.diagnosis = diagnosis
        self.absent_status = absent_status

    def __str__(self) -> str:
        msg = f"0/{self.num_nodes} nodes are available:"
        d = self.diagnosis
        if d.pre_filter_msg:
            msg += f" {d.pre_filter_msg}."
        else:
            counts: Counter[str] = Counter()
            for st in d.statuses.values():
                counts.update(st.reasons)
            absent = self.num_nodes - len(d.statuses)
            if absent > 0 and self.absent_status is not None:
                for r in self.absent_status.reasons:
                    counts[r] += absent
            reasons = sorted(f"{n} {r}" for r, n in counts.items())
            if reasons:
                msg += f" {', '.join(reasons)}."
        if d.post_filter_msg:
            msg += f" {d.post_filter_msg}"
        return msg


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """kube's adaptive percentageOfNodesToScore: 50% minus 1% per 125 nodes, at least 5%, and
    never fewer than 100 nodes."""
    if num_nodes < MIN_FEASIBLE_NODES:
        return num_nodes
    if percentage == 0:
        percentage = max(50 - num_nodes // 125, MIN_FEASIBLE_PERCENTAGE)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES)


class Framework:
    def __init__(self, plugins: Iterable[Plugin], percentage_of_nodes_to_score: int = 0,
                 rng: random.Random | None = None) -> None:
        self.plugins = list(plugins)
        self.by_name = {p.name: p for p in self.plugins}
        self.percentage = percentage_of_nodes_to_score
        self.next_start = 0
        self.rng = rng or random.Random()

    # -- filtering ------------------------------------------------------------------------------
    def run_pre_filter(self, pod: PodInfo, cache: Cache) -> tuple[CycleState, Status | None]:
        state = CycleState()
        for p in self.plugins:
            st = p.pre_filter(state, pod, cache)
            if st is None:
                continue
            if st.code == SKIP:
                state.skip_filter.add(p.name)
                continue
            st.plugin = st.plugin or p.name
            return state, st
        return state, None

    def filters(self, state: CycleState) -> list[tuple[str, Any]]:
        return [(p.name, p.filter) for p in self.plugins
                if p.name not in state.skip_filter and type(p).filter is not Plugin.filter]

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for name, f in self.filters(state):
            st = f(state, pod, node)
            if st is not None:
                st.plugin = name
                return st
        return None

    def find_feasible(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                      diagnosis: Diagnosis,
                      nominated: dict[str, list[PodInfo]] | None = None) -> list[NodeInfo]:
        """Nodes that pass every filter, starting where the previous pod stopped and stopping
        once enough are found. Nodes go through the filters a batch at a time (each plugin
        over the whole batch), sized to what is still missing, so the count of nodes examined
        is the same as one by one."""
        n = len(nodes)
        if n == 0:
            return []
        want = num_feasible_nodes_to_find(n, self.percentage)
        plugins = [p for p in self.plugins
                   if p.name not in state.skip_filter and type(p).filter is not Plugin.filter]
        feasible: list[NodeInfo] = []
        statuses = diagnosis.statuses
        start = self.next_start % n
        processed = 0
        while processed < n and len(feasible) < want:
            size = min(want - len(feasible), n - processed)
            lo = (start + processed) % n
            batch = nodes[lo:lo + size]
            if len(batch) < size:
                batch += nodes[:size - len(batch)]
            processed += size
            if nominated:
                batch = [with_nominated(ni, pod, nominated[ni.name])
                         if ni.name in nominated else ni for ni in batch]
            for p in plugins:
                batch = p.filter_all(state, pod, batch, statuses)
                if not batch:
                    break
            # A node with nominated pods was filtered as a copy: report the node itself.
            feasible.extend(self._originals(batch, nodes) if nominated else batch)
        for st in statuses.values():
            diagnosis.unschedulable_plugins.add(st.plugin)
        self.next_start = (start + processed) % n
        return feasible

    @staticmethod
    def _originals(batch: list[NodeInfo], nodes: list[NodeInfo]) -> list[NodeInfo]:
        by_name = {ni.name: ni for ni in nodes}
        return [by_name[ni.name] for ni in batch]

    # -- scoring --------------------------------------------------------------------------------
    def prioritize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                   cache: Cache) -> list[int]:
        totals = [0] * len(nodes)
        for p in self.plugins:
            if type(p).score is Plugin.score:
                continue
            st = p.pre_score(state, pod, nodes, cache)
            if st is not None and st.code == SKIP:
                continue
            scores = p.score_all(state, pod, nodes)
            p.normalize(state, pod, scores)
            w = p.weight
            for i, s in enumerate(scores):
                totals[i] += s * w
        return totals

    def select_host(self, nodes: list[NodeInfo], totals: list[int]) -> NodeInfo:
        """The highest score; ties broken uniformly at random."""
        best = max(totals)
        ties = [i for i, s in enumerate(totals) if s == best]
        return nodes[ties[0] if len(ties) == 1 else self.rng.choice(ties)]


def with_nominated(ni: NodeInfo, pod: PodInfo, nominated: list[PodInfo]) -> NodeInfo:
    """The node as it will be once pods nominated to it with at least this pod's priority
    take their place (`RunFilterPluginsWithNominatedPods`)."""
    extra = [p for p in nominated if p.uid != pod.uid and p.priority >= pod.priority
             and p.uid not in ni.pods]
    if not extra:
        return ni
    clone = ni.clone()
    for p in extra:
        clone.add_pod(p)
    return clone
