"""Shared pieces for the node controller tests: a node and its lease as a kubelet would post
them, pods bound to it, an event recorder that remembers, and a way to let tasks run."""

from __future__ import annotations

import asyncio
from typing import Any

from pocketkube.client.rest import resource

NODES = resource("", "nodes")
LEASES = resource("coordination.k8s.io", "leases")
PODS = resource("", "pods")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def record(self, obj: dict, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


def node_body(name: str, ready: str | None = "True", heartbeat: str = "2024-01-01T00:00:00Z",
              **spec: Any) -> dict:
    conds = [{"type": t, "status": "False", "reason": "KubeletHasSufficient",
              "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}
             for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
    if ready is not None:
        conds.append({"type": "Ready", "status": ready, "reason": "KubeletReady",
                      "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat})
    else:
        conds = []
    return {"metadata": {"name": name}, "spec": dict(spec), "status": {"conditions": conds}}


async def renew(api: Any, name: str, stamp: str) -> None:
    body = {"metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "renewTime": stamp}}
    cur = api.find(LEASES, name, "kube-node-lease")
    if cur is None:
        await api.create(LEASES, body)
    else:
        body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        await api.update(LEASES, body)


def pod_body(name: str, node: str, tolerations: list | None = None, ready: bool = True) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}],
                     "tolerations": tolerations or []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in obj["status"]["conditions"] if c["type"] == type_), None)


def taints(node: dict) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


async def settle(rounds: int = 30) -> None:
    """Let every runnable task take its turn (no time passes: the clock is fake)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
