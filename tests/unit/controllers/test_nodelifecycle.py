"""Node lifecycle on a fake clock: the 40 s grace period measured from the last lease
renewal or heartbeat, Unknown conditions, NoExecute/NoSchedule taints, pods marked not ready,
and recovery."""

import asyncio

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.nodelifecycle import NodeLifecycleController, desired_taints
from tests.unit.controllers.informing_fakeapi import FakeApi, drain
from tests.unit.controllers.nodes_support import (
    NODES,
    PODS,
    Recorder,
    condition,
    node_body,
    pod_body,
    renew,
    settle,
    taints,
)

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


@pytest.fixture
def env():
    api = FakeApi()
    informers = InformerFactory(api)
    api.informers = informers
    clock = FakeClock()
    rec = Recorder()
    nlc = NodeLifecycleController(api, informers, clock=clock, recorder=rec)
    return api, nlc, clock, rec


async def check(nlc, name="n1"):
    nlc.queue.add(name)
    await drain(nlc)


async def test_a_silent_node_goes_unknown_after_the_grace_period(env):
    api, nlc, clock, rec = env
    await api.create(NODES, node_body("n1"))
    await renew(api, "n1", "t0")
    await api.create(PODS, pod_body("p", "n1"))
    await check(nlc)
    clock.advance(39.9)
    await check(nlc)
    node = api.find(NODES, "n1")
    assert condition(node, "Ready")["status"] == "True" and taints(node) == set()
    clock.advance(0.1)
    await check(nlc)
    node = api.find(NODES, "n1")
    for type_ in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        c = condition(node, type_)
        assert c["status"] == "Unknown", type_
        assert c["reason"] == "NodeStatusUnknown"
        assert c["message"] == "Kubelet stopped posting node status."
        assert c["lastHeartbeatTime"] == "2024-01-01T00:00:00Z"
    assert taints(node) == {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
    assert all(t.get("timeAdded") for t in node["spec"]["taints"])
    assert condition(api.find(PODS, "p", "ns"), "Ready")["status"] == "False"
    assert ("n1", "Normal", "NodeNotReady", "Node n1 status is now: NodeNotReady") in rec.events
    assert ("p", "Warning", "NodeNotReady", "Node is not ready") in rec.events


async def test_lease_renewals_keep_a_node_healthy_without_heartbeats(env):
    api, nlc, clock, rec = env
    await api.create(NODES, node_body("n1"))
    for i in range(12):  # two minutes of renewals every 10 s, the status never refreshed
        await renew(api, "n1", f"t{i}")
        await check(nlc)
        clock.advance(10)
    node = api.find(NODES, "n1")
    assert condition(node, "Ready")["status"] == "True" and taints(node) == set()
    assert rec.events == []


async def test_heartbeats_alone_also_count(env):
    api, nlc, clock, _ = env
    await api.create(NODES, node_body("n1"))
    for i in range(6):
        beat = f"2024-01-01T00:0{i}:00Z"
        conds = node_body("n1", heartbeat=beat)["status"]["conditions"]
        await api.patch(NODES, "n1", {"status": {"conditions": conds}})
        await check(nlc)
        clock.advance(30)
    assert condition(api.find(NODES, "n1"), "Ready")["status"] == "True"


async def test_a_node_that_comes_back_loses_its_taints(env):
    api, nlc, clock, rec = env
    await api.create(NODES, node_body("n1"))
    await check(nlc)
    clock.advance(41)
    await check(nlc)
    assert taints(api.find(NODES, "n1"))
    conds = node_body("n1", heartbeat="2024-01-01T01:00:00Z")["status"]["conditions"]
    await api.patch(NODES, "n1", {"status": {"conditions": conds}})
    await drain(nlc)  # the node update queued it
    node = api.find(NODES, "n1")
    assert taints(node) == set()
    assert rec.reasons() == ["NodeNotReady", "NodeReady"]


async def test_ready_false_gets_the_not_ready_taints(env):
    api, nlc, _, _ = env
    await api.create(NODES, node_body("n1", ready="False"))
    await drain(nlc)
    assert taints(api.find(NODES, "n1")) == {(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")}


async def test_a_node_that_never_posted_status_gets_the_startup_grace(env):
    api, nlc, clock, _ = env
    await api.create(NODES, node_body("n1", ready=None))
    await check(nlc)
    clock.advance(59)
    await check(nlc)
    assert api.find(NODES, "n1")["status"]["conditions"] == []
    clock.advance(1)
    await check(nlc)
    ready = condition(api.find(NODES, "n1"), "Ready")
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusNeverUpdated"
    assert ready["message"] == "Kubelet never posted node status."


async def test_other_taints_are_kept_and_cordoning_adds_unschedulable(env):
    api, nlc, _, _ = env
    mine = {"key": "example.com/dedicated", "value": "x", "effect": "NoSchedule"}
    await api.create(NODES, node_body("n1", unschedulable=True, taints=[mine]))
    await drain(nlc)
    assert taints(api.find(NODES, "n1")) == {("example.com/dedicated", "NoSchedule"),
                                             ("node.kubernetes.io/unschedulable", "NoSchedule")}
    node = api.find(NODES, "n1")
    assert desired_taints(node, "now") is None  # settled: no further writes


async def test_the_monitor_loop_checks_every_period(env):
    api, nlc, clock, _ = env
    nlc.monitor_period = 5.0
    await api.create(NODES, node_body("n1"))
    task = asyncio.create_task(nlc.run())
    try:
        await settle()
        for _ in range(8):
            clock.advance(5)
            await settle()
        assert condition(api.find(NODES, "n1"), "Ready")["status"] == "Unknown"
    finally:
        await nlc.queue.shutdown()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
