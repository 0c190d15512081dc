"""Node-pressure eviction: thresholds, the pressure conditions and their transition period,
which pod goes first, kube's messages and status, and the manager on faked measurements."""

from __future__ import annotations

from pathlib import Path

from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet import eviction as ev

MI = 1024 * 1024
GI = 1024 * MI


def pod(name: str, priority: int = 0, memory_request: str | None = None, **meta) -> dict:
    resources = {"requests": {"memory": memory_request}} if memory_request else {}
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", **meta},
            "spec": {"priority": priority,
                     "containers": [{"name": "app", "image": "busybox",
                                     "resources": resources}]}}


def obs(memory_available: int, disk_available: int = 50 * GI) -> ev.Observations:
    return {ev.MEMORY_AVAILABLE: ev.Observation(memory_available, 8 * GI),
            ev.NODEFS_AVAILABLE: ev.Observation(disk_available, 100 * GI),
            ev.NODEFS_INODES_FREE: ev.Observation(900_000, 1_000_000)}


def test_binary_si():
    assert ev.binary_si(100 * MI) == "100Mi"
    assert ev.binary_si(51200 * 1024) == "50Mi"
    assert ev.binary_si(5000 * 1024) == "5000Ki"
    assert ev.binary_si(10737418241) == "10737418241"
    assert ev.binary_si(0) == "0" and ev.binary_si(512) == "512"


def test_thresholds_met():
    assert ev.thresholds_met(ev.DEFAULT_THRESHOLDS, obs(200 * MI)) == []
    met = ev.thresholds_met(ev.DEFAULT_THRESHOLDS, obs(99 * MI, disk_available=9 * GI))
    assert [t.signal for t in met] == [ev.MEMORY_AVAILABLE, ev.NODEFS_AVAILABLE]
    # Exactly at the threshold is not below it.
    assert ev.thresholds_met(ev.DEFAULT_THRESHOLDS, obs(100 * MI)) == []


def test_conditions_stay_for_the_transition_period():
    last = {"MemoryPressure": 1000.0}
    assert ev.conditions_observed(last, 1000.0 + 299) == {"MemoryPressure"}
    assert ev.conditions_observed(last, 1000.0 + 300) == set()


def test_ranking_prefers_pods_over_their_requests_then_low_priority():
    usage = {"uid-small": {"app": 50 * MI}, "uid-greedy": {"app": 900 * MI},
             "uid-low": {"app": 300 * MI}, "uid-guarded": {"app": 500 * MI}}
    pods = [pod("small", priority=0),
            pod("greedy", priority=1000),
            pod("low", priority=-10),
            pod("guarded", priority=-100, memory_request="1Gi")]
    ranked = [p["metadata"]["name"] for p in ev.rank_pods(pods, "memory", usage)]
    # Over requests first (all but "guarded"), the lowest priority first among them; within
    # equal priority, the larger excess first.
    assert ranked == ["low", "small", "greedy", "guarded"]


def test_critical_pods_are_never_ranked():
    pods = [pod("static", annotations={"kubernetes.io/config.source": "file"}),
            pod("system", priority=2_000_001_000), pod("user")]
    assert [p["metadata"]["name"] for p in ev.rank_pods(pods, "memory", {})] == ["user"]


def test_decide_and_the_kube_message():
    pods = [pod("a"), pod("b", priority=10, memory_request="64Mi")]
    usage = {"uid-a": {"app": 10 * MI}, "uid-b": {"app": 200 * MI}}
    assert ev.decide(ev.DEFAULT_THRESHOLDS, obs(2 * GI), pods, lambda p, r: usage[
        p["metadata"]["uid"]]) is None
    decision = ev.decide(ev.DEFAULT_THRESHOLDS, obs(50 * MI), pods,
                         lambda p, r: usage[p["metadata"]["uid"]])
    assert decision is not None and decision.pod["metadata"]["name"] == "a"
    assert decision.resource == "memory"
    assert decision.message == (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
        "Container app was using 10Mi, request is 0, has larger consumption of memory. ")
    # A pod within its request has no container line.
    only_b = ev.decide(ev.DEFAULT_THRESHOLDS, obs(50 * MI), [pod("b", memory_request="1Gi")],
                       lambda p, r: usage["uid-b"])
    assert only_b is not None
    assert only_b.message == ("The node was low on resource: memory. Threshold quantity: "
                              "100Mi, available: 50Mi. ")


def test_disk_pressure_message_uses_the_percentage_quantity():
    decision = ev.decide(ev.DEFAULT_THRESHOLDS, obs(2 * GI, disk_available=5 * GI),
                         [pod("a")], lambda p, r: {"app": 3 * GI})
    assert decision is not None and decision.resource == "ephemeral-storage"
    assert decision.message == (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, "
        "available: 5Gi. Container app was using 3Gi, request is 0, has larger consumption "
        "of ephemeral-storage. ")


def test_evicted_status():
    status = ev.evicted_status("The node was low on resource: memory. ")
    assert (status["phase"], status["reason"]) == ("Failed", "Evicted")
    assert status["message"] == "The node was low on resource: memory. "
    assert status["conditions"][0]["type"] == "DisruptionTarget"
    assert status["conditions"][0]["reason"] == "TerminationByKubelet"


def test_measure_node_reads_this_machine(tmp_path: Path):
    observed = ev.measure_node(tmp_path / "not-yet" / "agent", tmp_path)
    memory = observed[ev.MEMORY_AVAILABLE]
    assert 0 < memory.available <= memory.capacity
    disk = observed[ev.NODEFS_AVAILABLE]
    assert 0 < disk.available <= disk.capacity
    assert ev.IMAGEFS_AVAILABLE not in observed  # same filesystem as the node's


class FakeNodeStatus:
    def __init__(self) -> None:
        self.pressure: dict[str, bool] = {}

    def set_pressure(self, condition: str, under_pressure: bool) -> None:
        self.pressure[condition] = under_pressure


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def record(self, obj, type_, reason, message, action=None, related=None) -> None:
        self.events.append((obj["kind"], obj["metadata"]["name"], type_, reason, message))


async def test_manager_raises_pressure_and_evicts_one_pod_per_pass():
    clock = FakeClock()
    node = FakeNodeStatus()
    recorder = FakeRecorder()
    measured = {"now": obs(2 * GI)}
    pods = [pod("a"), pod("b", priority=5)]
    evicted: list[tuple[str, dict, int]] = []

    async def evict(p: dict, status: dict, grace: int) -> None:
        evicted.append((p["metadata"]["name"], status, grace))
        pods.remove(p)

    m = ev.EvictionManager(node, recorder=recorder, clock=clock, active_pods=lambda: pods,
                           evict=evict, measure=lambda: measured["now"],
                           pod_usage=lambda p, r: {"app": 20 * MI})
    assert await m.synchronize() is None
    assert node.pressure == {"MemoryPressure": False, "DiskPressure": False}
    measured["now"] = obs(10 * MI)
    gone = await m.synchronize()
    assert gone is not None and gone["metadata"]["name"] == "a"
    assert node.pressure["MemoryPressure"] is True
    name, status, grace = evicted[0]
    assert (name, status["phase"], status["reason"], grace) == ("a", "Failed", "Evicted", 1)
    assert status["message"].startswith("The node was low on resource: memory. Threshold "
                                        "quantity: 100Mi, available: 10Mi. ")
    assert recorder.events == [("Pod", "a", "Warning", "Evicted", status["message"])]
    # Pressure relieved: no more evictions, but the condition holds for five minutes.
    measured["now"] = obs(2 * GI)
    clock.advance(10)
    assert await m.synchronize() is None
    assert node.pressure["MemoryPressure"] is True
    clock.advance(300)
    await m.synchronize()
    assert node.pressure["MemoryPressure"] is False
    assert [e[0] for e in evicted] == ["a"]
