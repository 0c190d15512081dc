"""Pod GC: terminated pods beyond the threshold (evicted and oldest first), pods of nodes
that are gone after the quarantine, and terminating pods nothing else will finish."""

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.podgc import PodGCController, terminated_to_delete
from tests.unit.controllers.informing_fakeapi import FakeApi
from tests.unit.controllers.nodes_support import NODES, PODS, condition, node_body


def pod(name, phase="Running", node="n1", created="2024-01-01T00:00:00Z", reason=None,
        deleting=False):
    meta = {"name": name, "namespace": "ns", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        meta["finalizers"] = ["example.com/hold"]  # stays until force deleted
    status = {"phase": phase, "conditions": []}
    if reason:
        status["reason"] = reason
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def test_terminated_order_is_evicted_then_oldest_then_name():
    pods = [pod("new", "Succeeded", created="2024-01-03T00:00:00Z"),
            pod("old-b", "Failed", created="2024-01-01T00:00:00Z"),
            pod("old-a", "Succeeded", created="2024-01-01T00:00:00Z"),
            pod("evicted", "Failed", created="2024-01-05T00:00:00Z", reason="Evicted"),
            pod("running"), pod("pending", "Pending")]
    for p in pods:
        p["metadata"]["uid"] = p["metadata"]["name"]
    names = [p["metadata"]["name"] for p in terminated_to_delete(pods, 1)]
    assert names == ["evicted", "old-a", "old-b"]
    assert terminated_to_delete(pods, 4) == []
    assert terminated_to_delete(pods, 0) == []  # 0 turns this collection off


@pytest.fixture
def env():
    api = FakeApi()
    informers = InformerFactory(api)
    api.informers = informers
    clock = FakeClock()
    gc = PodGCController(api, informers, clock=clock, terminated_pod_threshold=2,
                         quarantine=40)
    return api, gc, clock


async def test_terminated_pods_beyond_the_threshold_are_deleted(env):
    api, gc, _ = env
    await api.create(NODES, node_body("n1"))
    for i in range(4):
        await api.create(PODS, pod(f"done-{i}", "Succeeded", created=f"2024-01-0{i + 1}T00:00:00Z"))
    await api.create(PODS, pod("running"))
    await gc.gc()
    assert sorted(n for (_, _, n) in api.objects) == ["done-2", "done-3", "n1", "running"]
    assert ("delete", "pods", "done-0") in api.calls


async def test_pods_of_a_deleted_node_go_after_the_quarantine(env):
    api, gc, clock = env
    await api.create(NODES, node_body("n1"))
    await api.create(PODS, pod("orphan", node="gone"))
    await api.create(PODS, pod("fine", node="n1"))
    await gc.gc()
    clock.advance(39)
    await gc.gc()
    assert api.find(PODS, "orphan", "ns") is not None
    statuses = []
    real_delete = api.delete

    async def delete(r, name, namespace=None, **options):
        statuses.append((dict(api.find(r, name, namespace)["status"]), options))
        return await real_delete(r, name, namespace, **options)

    api.delete = delete
    clock.advance(1)
    await gc.gc()
    assert api.find(PODS, "orphan", "ns") is None
    assert api.find(PODS, "fine", "ns") is not None
    status, options = statuses[0]
    assert status["phase"] == "Failed" and options["gracePeriodSeconds"] == 0
    cond = condition({"status": status}, "DisruptionTarget")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True", "DeletionByPodGC", "PodGC: node no longer exists")


async def test_a_node_that_reappears_leaves_its_pods_alone(env):
    api, gc, clock = env
    await api.create(PODS, pod("p", node="late"))
    await gc.gc()
    clock.advance(30)
    await api.create(NODES, node_body("late"))
    await gc.gc()
    clock.advance(30)
    await gc.gc()
    assert api.find(PODS, "p", "ns") is not None and gc.missing == {}


async def test_terminating_pods_on_out_of_service_nodes_and_unscheduled_ones(env):
    api, gc, _ = env
    oos = {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}
    await api.create(NODES, node_body("down", ready="False", taints=[oos]))
    await api.create(NODES, node_body("unready", ready="False"))
    await api.create(PODS, pod("on-down", node="down", deleting=True))
    await api.create(PODS, pod("on-unready", node="unready", deleting=True))
    await api.create(PODS, pod("unscheduled", "Pending", node=None, deleting=True))
    await api.create(PODS, pod("alive-on-down", node="down"))
    await gc.gc()
    # The fake keeps objects with finalizers; a force delete is what was asked for.
    deleted = {n for (verb, _, n) in api.calls if verb == "delete"}
    assert deleted == {"on-down", "unscheduled"}
    assert api.find(PODS, "on-down", "ns")["status"]["phase"] == "Failed"
