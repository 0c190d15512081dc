"""The cluster-level default topology spread constraints of kube-scheduler
(PodTopologySpread with `defaultingType: System`): a pod that declares no
topologySpreadConstraints is still spread, as a soft preference, across nodes (maxSkew 3) and
zones (maxSkew 5) among the pods of the same Services, ReplicaSets, ReplicationControllers and
StatefulSets — kube's `helper.DefaultSelector`. A pod that belongs to none is not spread.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.selectors import LabelSelector, Requirement
from pocketkube.scheduler.cache import PodInfo
from pocketkube.scheduler.selectors import label_selector

Obj = dict[str, Any]
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
SYSTEM_DEFAULTS = ({"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
                   {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"})


def _map_selector(sel: dict[str, str]) -> list[Requirement]:
    return [Requirement(k, "=", (str(v),)) for k, v in sorted(sel.items())]


def default_selector(pod: PodInfo, map_selected: list[Obj], set_selected: list[Obj]
                     ) -> LabelSelector:
    """The AND of the selectors of every object in the pod's namespace that selects the pod:
    `map_selected` have a plain map as spec.selector (Services, ReplicationControllers),
    `set_selected` a LabelSelector (ReplicaSets, StatefulSets). Empty when none does."""
    reqs: list[Requirement] = []
    tagged = [(o, False) for o in map_selected] + [(o, True) for o in set_selected]
    for obj, set_based in tagged:
        if obj["metadata"].get("namespace") != pod.namespace:
            continue
        sel = (obj.get("spec") or {}).get("selector")
        if not sel:
            continue
        matcher = label_selector(sel) if set_based else LabelSelector(_map_selector(sel))
        if not matcher.empty() and matcher.matches(pod.labels):
            reqs += matcher.reqs
    return LabelSelector(reqs)


def system_constraints(pod: PodInfo, selector: LabelSelector) -> list[Obj]:
    """The default constraints for `pod`, with `selector` as their label selector (as a
    pre-built matcher under the `_matcher` key), or [] when the selector is empty."""
    if selector.empty():
        return []
    return [{**c, "_matcher": selector} for c in SYSTEM_DEFAULTS]
