"""The taint eviction controller on a fake clock: untolerated NoExecute taints evict at once,
tolerationSeconds delays the eviction, and removing the taint cancels it."""

import asyncio

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.taintmanager import TaintEvictionController, eviction_delay, tolerates
from tests.unit.controllers.informing_fakeapi import FakeApi
from tests.unit.controllers.nodes_support import NODES, PODS, Recorder, node_body, pod_body, settle

UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
               "timeAdded": "2024-01-01T00:00:00Z"}


def toleration(seconds=None, key="node.kubernetes.io/unreachable"):
    t = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


def test_toleration_matching():
    taint = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert tolerates({"key": "k", "operator": "Exists"}, taint)
    assert tolerates({"key": "k", "value": "v"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": "k", "value": "w"}, taint)
    assert not tolerates({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": "other", "operator": "Exists"}, taint)


def test_eviction_delay():
    assert eviction_delay([], []) is None
    assert eviction_delay([], [UNREACHABLE]) == 0
    assert eviction_delay([toleration()], [UNREACHABLE]) is None
    assert eviction_delay([toleration(300), toleration(60)], [UNREACHABLE]) == 60
    assert eviction_delay([toleration(-5)], [UNREACHABLE]) == 0
    other = {"key": "example.com/x", "effect": "NoExecute"}
    assert eviction_delay([toleration(300)], [UNREACHABLE, other]) == 0


@pytest.fixture
async def env():
    api = FakeApi()
    informers = InformerFactory(api)
    api.informers = informers
    clock = FakeClock()
    rec = Recorder()
    tm = TaintEvictionController(api, informers, clock=clock, recorder=rec)
    task = asyncio.create_task(tm.run())
    yield api, tm, clock, rec
    await tm.queue.shutdown()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def taint_node(api, *taints):
    node = api.find(NODES, "n1")
    await api.patch(NODES, "n1", {"metadata": {"resourceVersion": node["metadata"][
        "resourceVersion"]}, "spec": {"taints": list(taints) or None}})
    await settle()


async def test_a_pod_without_a_toleration_is_evicted_at_once(env):
    api, _, _, rec = env
    await api.create(NODES, node_body("n1"))
    await api.create(PODS, pod_body("p", "n1"))
    await api.create(PODS, pod_body("elsewhere", "n2"))
    await settle()
    await taint_node(api, UNREACHABLE)
    assert api.find(PODS, "p", "ns") is None
    assert api.find(PODS, "elsewhere", "ns") is not None
    assert ("p", "Normal", "TaintManagerEviction", "Marking for deletion Pod ns/p") in rec.events
    assert ("patch/status", "pods", "p") in api.calls


async def test_toleration_seconds_delay_the_eviction(env):
    api, _, clock, _ = env
    await api.create(NODES, node_body("n1"))
    await api.create(PODS, pod_body("p", "n1", [toleration(300)]))
    await api.create(PODS, pod_body("short", "n1", [toleration(30)]))
    await api.create(PODS, pod_body("forever", "n1", [toleration()]))
    await taint_node(api, UNREACHABLE)
    clock.advance(29.5)
    await settle()
    assert api.find(PODS, "short", "ns") is not None
    clock.advance(0.5)
    await settle()
    assert api.find(PODS, "short", "ns") is None
    clock.advance(269.9)
    await settle()
    assert api.find(PODS, "p", "ns") is not None
    clock.advance(0.1)
    await settle()
    assert api.find(PODS, "p", "ns") is None
    clock.advance(10_000)
    await settle()
    assert api.find(PODS, "forever", "ns") is not None


async def test_removing_the_taint_cancels_the_eviction(env):
    api, _, clock, rec = env
    await api.create(NODES, node_body("n1"))
    await api.create(PODS, pod_body("p", "n1", [toleration(60)]))
    await taint_node(api, UNREACHABLE)
    clock.advance(30)
    await settle()
    await taint_node(api)
    assert rec.reasons() == ["TaintManagerEviction"]
    assert rec.events[0][3] == "Cancelling deletion of Pod ns/p"
    clock.advance(60)
    await settle()
    assert api.find(PODS, "p", "ns") is not None
    # Tainted again: the full toleration counts again from now.
    await taint_node(api, UNREACHABLE)
    clock.advance(59)
    await settle()
    assert api.find(PODS, "p", "ns") is not None
    clock.advance(1)
    await settle()
    assert api.find(PODS, "p", "ns") is None


async def test_a_shorter_toleration_brings_the_eviction_forward(env):
    api, _, clock, _ = env
    maint = {"key": "example.com/maint", "effect": "NoExecute"}
    await api.create(NODES, node_body("n1"))
    await api.create(PODS, pod_body("p", "n1", [toleration(300),
                                                toleration(30, key="example.com/maint")]))
    await taint_node(api, UNREACHABLE)
    clock.advance(10)
    await settle()
    # A second taint the pod tolerates for 30 s: the clock started with the first one.
    await taint_node(api, UNREACHABLE, maint)
    clock.advance(19)
    await settle()
    assert api.find(PODS, "p", "ns") is not None
    clock.advance(1)
    await settle()
    assert api.find(PODS, "p", "ns") is None
