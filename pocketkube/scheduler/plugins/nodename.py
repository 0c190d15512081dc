"""NodeName: a pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import SKIP, UNRESOLVABLE, CycleState, Plugin, Status

REASON = "node(s) didn't match the requested node name"


class NodeName(Plugin):
    name = "NodeName"
    events = frozenset({"Node/Add", "Node/Update"})

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        return None if pod.obj.get("spec", {}).get("nodeName") else Status(SKIP)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.obj["spec"]["nodeName"] == node.name:
            return None
        return Status(UNRESOLVABLE, REASON)
