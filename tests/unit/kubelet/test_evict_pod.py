"""Node-pressure eviction through the pod workers: the evicted pod's containers are stopped
within the eviction's grace period and its status says Failed/Evicted with the
DisruptionTarget condition, as the kubelet's eviction manager reports it."""

from __future__ import annotations

from pocketkube.kubelet.eviction import evicted_status
from tests.unit.kubelet.fakes import Harness, pod


async def test_evicted_pod_stops_and_reports_evicted(h: Harness) -> None:
    await h.add(pod())
    assert h.runtime.running() == ["c"]
    message = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi."
    await h.kubelet.evict(h.api.pod("default", "p"), evicted_status(message), grace_period=1)
    await h.settle()
    assert h.runtime.running() == []
    assert ("stop", "c", 2) in h.runtime.calls  # kube's minimum grace period is 2 s
    final = h.status()
    assert (final["phase"], final["reason"], final["message"]) == ("Failed", "Evicted", message)
    target = [c for c in final["conditions"] if c["type"] == "DisruptionTarget"]
    assert target and target[0]["reason"] == "TerminationByKubelet"
    assert {c["type"] for c in final["conditions"]} >= {"Ready", "DisruptionTarget"}
