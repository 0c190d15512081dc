"""Simulated nodes and pods over time, on a FakeClock against an in-memory API: registration,
spread lease renewals, heartbeats, pod start, job finish, crash backoff, graceful deletion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.simulator import podstatus
from pocketkube.simulator.nodes import NodeManager, NodeTimings
from pocketkube.simulator.nodespec import NodeShape
from pocketkube.simulator.pods import PodManager
from pocketkube.simulator.timing import Spreader, WallClock

Obj = dict[str, Any]
WALL0 = 1_900_000_000.0  # 2030-03-17T17:46:40Z


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def make(api: Any, count: int = 2, **timings: Any) -> tuple[FakeClock, NodeManager, PodManager]:
    clock = FakeClock()
    wall = WallClock(clock, wall=lambda: WALL0)
    limit = asyncio.Semaphore(4)
    nodes = NodeManager(api, count, "sim-", NodeShape(), clock, wall, limit, "10.244.0.0/16",
                        NodeTimings(**timings))  # fmt: skip
    pods = PodManager(api, nodes, clock, wall, limit)
    api.use_store("nodes", nodes.informer.store)
    api.use_store("pods", pods.informer.store)
    return clock, nodes, pods


async def advance(clock: FakeClock, pods: PodManager, seconds: float) -> None:
    """Move time on, then run every sync that became due (as the workers would)."""
    await settle()
    clock.advance(seconds)
    await settle()
    while len(pods.queue):
        key = await pods.queue.get()
        assert key is not None
        await pods.sync(key)
        pods.queue.done(key)
        await settle()


def new_pod(name: str, node: str = "sim-0", **spec: Any) -> Obj:
    ann = spec.pop("annotations", {})
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": ann},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], **spec},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


async def place(api: Any, pods: PodManager, pod: Obj) -> str:
    key = f"ns/{pod['metadata']['name']}"
    pods.informer.store[key] = pod
    await pods.sync(key)
    await settle()
    return key


def phase(pods: PodManager, key: str) -> str:
    return pods.informer.store[key]["status"]["phase"]


# --- nodes -------------------------------------------------------------------------------------


async def test_registration_creates_and_updates_simulated_nodes(api: Any) -> None:
    _, nodes, _ = make(api, count=3)
    # sim-1 is left from an earlier run (the simulated-nodes watch lists it).
    api.stores["nodes"]["sim-1"] = {
        "metadata": {"name": "sim-1", "uid": "old", "labels": {
            "node.pocketkube.io/simulated": "true"}},
        "status": {"conditions": []}}  # fmt: skip
    await nodes.register_all()
    assert [c[2] for c in api.of("create", "nodes")] == ["sim-0", "sim-2"]
    assert [c[2] for c in api.of("patch", "nodes", "status")] == ["sim-1"]
    assert nodes.owns("sim-1").uid == "old"  # updated in place, not duplicated
    labels = api.of("patch", "nodes", "")[0][4]["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-1"
    assert nodes.active_count == 3
    assert nodes.registered.is_set()


async def test_a_node_of_the_same_name_that_is_not_simulated_is_left_alone(api: Any) -> None:
    _, nodes, _ = make(api, count=3)
    real = {"metadata": {"name": "sim-2", "uid": "real", "labels": {}}, "status": {}}
    api.stores["nodes"] = {"sim-2": real}  # exists, but outside the simulated-nodes watch
    await nodes.register_all()
    assert nodes.owns("sim-2") is None
    assert nodes.skipped == ["sim-2"]
    assert api.stores["nodes"]["sim-2"] is real
    assert api.of("patch", "nodes") == []
    assert nodes.active_count == 2


async def test_leases_are_renewed_every_interval_spread_over_it(api: Any) -> None:
    clock, nodes, pods = make(api, count=4, lease_interval=10.0)
    await nodes.register_all()
    task = asyncio.create_task(nodes.run_periodic())
    await settle()
    # Each node takes its lease when it registers, then renews it at its own offset.
    assert [c[2] for c in api.of("update", "leases")] == ["sim-0", "sim-1", "sim-2", "sim-3"]
    per_step = []
    for _ in range(8):  # 20 s in steps of 2.5 s
        before = len(api.of("update", "leases"))
        await advance(clock, pods, 2.5)
        per_step.append(len(api.of("update", "leases")) - before)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert per_step == [1] * 8  # one node at a time, never all four together
    lease = api.stores["leases"]["kube-node-lease/sim-3"]
    assert lease["spec"]["holderIdentity"] == "sim-3"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == nodes.owns("sim-3").uid


async def test_heartbeat_every_status_interval_and_stop_when_deleted(api: Any) -> None:
    clock, nodes, pods = make(api, count=2, status_interval=300.0)
    await nodes.register_all()
    task = asyncio.create_task(nodes.run_periodic())
    await advance(clock, pods, 299.0)
    assert len(api.of("patch", "nodes", "status")) == 1  # sim-0 at half the interval
    await advance(clock, pods, 2.0)
    beats = api.of("patch", "nodes", "status")
    assert [c[2] for c in beats] == ["sim-0", "sim-1"]
    ready = beats[-1][4]["status"]["conditions"][3]
    assert ready["type"] == "Ready"
    assert ready["lastHeartbeatTime"] > ready["lastTransitionTime"]
    nodes._deleted(api.stores["nodes"]["sim-1"])
    leases_before = len(api.of("update", "leases", ""))
    await advance(clock, pods, 20.0)
    renewed = [c[2] for c in api.of("update", "leases")[leases_before:]]
    assert renewed and set(renewed) == {"sim-0"}
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_spreader_bounds_requests_in_flight() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    in_flight = peak = 0

    async def slow(_: str) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await gate.wait()
        in_flight -= 1

    s = Spreader("test", clock, 10.0, slow, asyncio.Semaphore(3))
    for i in range(10):
        s.add(f"m{i}")
    task = asyncio.create_task(s.run())
    await settle()
    assert (in_flight, peak) == (3, 3)
    gate.set()
    await settle()
    assert s.calls == 10
    assert peak == 3
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# --- pods --------------------------------------------------------------------------------------


async def test_pod_on_a_simulated_node_runs_and_others_are_ignored(api: Any) -> None:
    _, nodes, pods = make(api)
    await nodes.register_all()
    key = await place(api, pods, new_pod("web", "sim-1"))
    status = pods.informer.store[key]["status"]
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.1.2"
    assert status["hostIP"] == "10.250.0.2"
    assert status["startTime"] == "2030-03-17T17:46:40Z"
    (patch,) = api.of("patch", "pods", "status")
    assert patch[4]["metadata"] == {"uid": "uid-web"}  # the write cannot land on a new pod
    await place(api, pods, new_pod("elsewhere", "real-node"))
    await place(api, pods, new_pod("host", "sim-1", hostNetwork=True))
    assert pods.informer.store["ns/elsewhere"]["status"]["phase"] == "Pending"
    assert pods.informer.store["ns/host"]["status"]["podIP"] == "10.250.0.2"
    assert pods.running_pods() == 2


async def test_stale_cache_does_not_start_a_pod_twice(api: Any) -> None:
    _, nodes, pods = make(api)
    await nodes.register_all()
    pending = new_pod("web")
    key = await place(api, pods, dict(pending))
    pods.informer.store[key] = pending  # the watch has not delivered our write yet
    await pods.sync(key)
    assert len(api.of("patch", "pods", "status")) == 1


@pytest.mark.parametrize(("code", "want"), [("0", "Succeeded"), ("4", "Failed")])
async def test_job_pod_finishes_after_its_run_seconds(api: Any, code: str, want: str) -> None:
    clock, nodes, pods = make(api)
    await nodes.register_all()
    ann = {podstatus.RUN_SECONDS: "5", podstatus.EXIT_CODE: code}
    key = await place(api, pods, new_pod("job", restartPolicy="Never", annotations=ann))
    assert phase(pods, key) == "Running"
    await advance(clock, pods, 4.9)
    assert phase(pods, key) == "Running"
    await advance(clock, pods, 0.1)
    assert phase(pods, key) == want
    term = pods.informer.store[key]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == int(code)
    assert len(pods.addresses.allocators["10.244.0.0/24"]) == 0  # address free again
    await advance(clock, pods, 100)
    assert len(api.of("patch", "pods", "status")) == 2


async def test_restart_policy_always_never_finishes(api: Any) -> None:
    clock, nodes, pods = make(api)
    await nodes.register_all()
    key = await place(api, pods, new_pod("svc", annotations={podstatus.RUN_SECONDS: "1"}))
    await advance(clock, pods, 3600)
    assert phase(pods, key) == "Running"
    assert len(api.of("patch", "pods", "status")) == 1


async def test_on_failure_crashes_backs_off_and_restarts(api: Any) -> None:
    clock, nodes, pods = make(api)
    await nodes.register_all()
    ann = {podstatus.RUN_SECONDS: "2", podstatus.EXIT_CODE: "1"}
    key = await place(api, pods, new_pod("flaky", restartPolicy="OnFailure", annotations=ann))
    await advance(clock, pods, 2)

    def container() -> Obj:
        return pods.informer.store[key]["status"]["containerStatuses"][0]

    assert container()["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert phase(pods, key) == "Running"
    await advance(clock, pods, 9)
    assert "waiting" in container()["state"]
    await advance(clock, pods, 1)  # 10 s backoff over: started again
    assert container()["restartCount"] == 1
    assert "running" in container()["state"]
    await advance(clock, pods, 2)  # crashes again; now 20 s of backoff
    await advance(clock, pods, 19)
    assert container()["restartCount"] == 1
    await advance(clock, pods, 1)
    assert container()["restartCount"] == 2


async def test_graceful_deletion_waits_the_grace_period_then_deletes(api: Any) -> None:
    clock, nodes, pods = make(api)
    await nodes.register_all()
    key = await place(api, pods, new_pod("web"))
    pod = pods.informer.store[key]
    pod["metadata"].update(deletionTimestamp="2030-03-17T17:47:10Z",
                           deletionGracePeriodSeconds=30)  # fmt: skip
    await pods.sync(key)
    await advance(clock, pods, 29)
    assert api.of("delete", "pods") == []
    await advance(clock, pods, 1)
    final = api.of("patch", "pods", "status")[-1][4]["status"]
    assert final["phase"] == "Failed"
    assert final["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    (delete,) = api.of("delete", "pods")
    assert delete[4] == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                         "preconditions": {"uid": "uid-web"}}  # fmt: skip
    assert key not in pods.informer.store


async def test_shorter_grace_period_on_a_second_delete_wins(api: Any) -> None:
    clock, nodes, pods = make(api)
    await nodes.register_all()
    key = await place(api, pods, new_pod("web"))
    meta = pods.informer.store[key]["metadata"]
    meta.update(deletionTimestamp="x", deletionGracePeriodSeconds=300)
    await pods.sync(key)
    await advance(clock, pods, 5)
    meta["deletionGracePeriodSeconds"] = 1
    await pods.sync(key)
    await advance(clock, pods, 1)
    assert len(api.of("delete", "pods")) == 1


async def test_pod_that_never_ran_is_deleted_at_once(api: Any) -> None:
    _, nodes, pods = make(api)
    await nodes.register_all()
    pod = new_pod("late")
    pod["metadata"].update(deletionTimestamp="x", deletionGracePeriodSeconds=30)
    await place(api, pods, pod)
    assert api.of("patch", "pods") == []
    assert len(api.of("delete", "pods")) == 1
