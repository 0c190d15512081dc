"""NodePorts: a pod's hostPorts must be free on the node (same protocol and port on the same
or a wildcard host IP)."""

from __future__ import annotations

from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.framework import SKIP, UNSCHEDULABLE, CycleState, Plugin, Status

REASON = "node(s) didn't have free ports for the requested pod ports"
WILDCARD = "0.0.0.0"


def conflicts(used: dict[tuple[str, str, int], int], port: tuple[str, str, int]) -> bool:
    ip, proto, num = port
    if ip == WILDCARD:
        return any(p == proto and n == num for _, p, n in used)
    return (ip, proto, num) in used or (WILDCARD, proto, num) in used


class NodePorts(Plugin):
    name = "NodePorts"
    events = frozenset({"Node/Add", "Node/Update", "AssignedPod/Delete"})

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        return None if pod.host_ports else Status(SKIP)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.used_ports:
            return None
        for port in pod.host_ports:
            if conflicts(node.used_ports, port):
                return Status(UNSCHEDULABLE, REASON)
        return None
