"""The scheduler in a real `pocketkube server`, driven by the real kubectl: placement across
Node objects the test creates, FailedScheduling in `kubectl describe`, cordon/uncordon and
taints, pending pods placed when a node appears, and preemption.

The module runs its own server so the node count in messages ("0/3 nodes are available") is
exactly the nodes these tests create.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl, unique_name
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("scheduler"))
    c.start()
    try:
        yield c
    finally:
        c.close()




def node_manifest(name: str, cpu: str = "2", labels: dict[str, str] | None = None) -> dict:
    res = {"cpu": cpu, "memory": "8Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady"}]}}


def pod_manifest(name: str, cpu: str, priority_class: str | None = None,
                 **spec: Any) -> dict:
    body: dict[str, Any] = {
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": cpu}}}],
        # Without a node agent, only immediate deletion really removes a bound pod.
        "terminationGracePeriodSeconds": 0, **spec}
    if priority_class:
        body["priorityClassName"] = priority_class
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


@pytest.fixture
def nodes(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """Create nodes for one test (deleted afterwards): nodes("a", cpu="2") -> the name."""
    made: list[str] = []

    def make(suffix: str, cpu: str = "2", labels: dict[str, str] | None = None) -> str:
        name = unique_name(f"node-{suffix}")
        cluster.kubectl("create", "-f", "-",
                        input=json.dumps(node_manifest(name, cpu, labels)))
        made.append(name)
        return name

    yield make
    if made:
        cluster.kubectl("delete", "node", *made, "--wait=false")


def placement(k: Kubectl) -> dict[str, str]:
    pods = json.loads(k("get", "pods", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in pods}


def scheduled_to(k: Kubectl, pod: str) -> str:
    return eventually(lambda: placement(k).get(pod))


def failed_scheduling(k: Kubectl, pod: str) -> str:
    """The message of the pod's latest FailedScheduling event."""
    def latest() -> str:
        evs = json.loads(k("get", "events", "--field-selector",
                           f"involvedObject.name={pod},reason=FailedScheduling",
                           "-o", "json").stdout)["items"]
        evs.sort(key=lambda e: e.get("lastTimestamp") or "")
        return evs[-1]["message"] if evs else ""
    return eventually(latest)


def test_pods_spread_over_nodes_with_scheduled_events(k: Kubectl, nodes: Callable) -> None:
    names = [nodes(s) for s in "abc"]
    k.create([pod_manifest(f"web-{i}", "500m") for i in range(6)])
    eventually(lambda: all(placement(k).values()) and len(placement(k)) == 6)
    per_node = Counter(placement(k).values())
    assert per_node == {n: 2 for n in names}
    node0 = placement(k)["web-0"]
    out = eventually(lambda: (lambda o: "Successfully assigned" in o and o)(
        k("describe", "pod", "web-0").stdout))
    assert "Normal  Scheduled  " in out
    assert f"default-scheduler  Successfully assigned {k.ns}/web-0 to {node0}" in out
    pod = k.json("pod", "web-0")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["status"] == "True"


def test_describe_shows_why_nothing_fits(k: Kubectl, nodes: Callable) -> None:
    for s in "abc":
        nodes(s)
    k.create(pod_manifest("big", "3"))
    msg = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
           "available: 3 Preemption is not helpful for scheduling.")
    assert failed_scheduling(k, "big") == msg
    out = k("describe", "pod", "big").stdout
    assert "Warning  FailedScheduling  " in out and f"default-scheduler  {msg}" in out
    pod = k.json("pod", "big")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", msg)
    assert not pod["spec"].get("nodeName")


def test_cordon_uncordon_and_taint(k: Kubectl, nodes: Callable) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    k("cordon", a, b)
    k("taint", "nodes", c, "dedicated=infra:NoSchedule")
    k.create(pod_manifest("p", "100m"))
    assert failed_scheduling(k, "p") == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 "
        "node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is "
        "not helpful for scheduling.")
    k("uncordon", b)
    assert scheduled_to(k, "p") == b
    # Cordoned and tainted nodes stay out of reach; removing the taint opens c.
    k("cordon", b)
    k.create(pod_manifest("q", "100m"))
    failed_scheduling(k, "q")
    k("taint", "nodes", c, "dedicated-")
    assert scheduled_to(k, "q") == c
    tolerant = pod_manifest("r", "100m", tolerations=[
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
         "effect": "NoSchedule"}], nodeSelector={"kubernetes.io/hostname": a})
    k.create(tolerant)
    assert scheduled_to(k, "r") == a


def test_pending_pod_is_placed_when_a_fitting_node_appears(k: Kubectl,
                                                          nodes: Callable) -> None:
    nodes("small", cpu="1")
    k.create(pod_manifest("wide", "4"))
    failed_scheduling(k, "wide")
    started = time.monotonic()
    big = nodes("big", cpu="8")
    assert scheduled_to(k, "wide") == big
    # Moved by the node event (and at most one backoff period), not the 5-minute flush.
    assert time.monotonic() - started < 15


def test_preemption_evicts_the_lowest_priority_pod(k: Kubectl, cluster: Cluster,
                                                   nodes: Callable) -> None:
    low, high = unique_name("low"), unique_name("high")
    mid = unique_name("mid")
    for name, value in ((low, 10), (mid, 100), (high, 1000)):
        cluster.kubectl("create", "priorityclass", name, f"--value={value}")
    try:
        a, b = nodes("a", cpu="2"), nodes("b", cpu="2")
        k.create([pod_manifest("a-mid", "1500m", mid, nodeSelector={
                      "kubernetes.io/hostname": a}),
                  pod_manifest("b-low", "1500m", low, nodeSelector={
                      "kubernetes.io/hostname": b})])
        scheduled_to(k, "a-mid")
        scheduled_to(k, "b-low")
        k.create(pod_manifest("vip", "1500m", high))
        assert scheduled_to(k, "vip") == b
        assert "b-low" not in placement(k) and placement(k)["a-mid"] == a
        vip_uid = k.json("pod", "vip")["metadata"]["uid"]
        evs = json.loads(k("get", "events", "--field-selector",
                           "reason=Preempted,involvedObject.name=b-low",
                           "-o", "json").stdout)["items"]
        assert [e["message"] for e in evs] == [f"Preempted by pod {vip_uid} on node {b}"]
        assert failed_scheduling(k, "vip") == "0/2 nodes are available: 2 Insufficient cpu."
    finally:
        cluster.kubectl("delete", "priorityclass", low, mid, high)
