"""The pure parts of the simulated nodes: addresses, node and pod status building, finish rules."""

from __future__ import annotations

import pytest

from pocketkube.simulator import addresses, containers, nodespec, podstatus
from pocketkube.simulator.addresses import PodAddresses, PodIPAllocator, RangeExhausted
from pocketkube.simulator.nodespec import NodeShape

T0, T1 = "2030-01-01T00:00:00Z", "2030-01-01T00:05:00Z"


def pod(**over: object) -> dict:
    p = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "annotations": {}},
        "spec": {"nodeName": "sim-0", "containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    for k, v in over.items():
        section, _, field = k.partition("__")
        p[section][field] = v
    return p


def by_type(conds: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conds}


# --- addresses ---------------------------------------------------------------------------------


def test_node_ips_and_derived_pod_ranges() -> None:
    assert [addresses.node_ip(i) for i in (0, 1, 255, 256)] == [
        "10.250.0.1", "10.250.0.2", "10.250.1.0", "10.250.1.1"]  # fmt: skip
    assert addresses.derived_pod_cidr(0, "10.244.0.0/16") == "10.244.0.0/24"
    assert addresses.derived_pod_cidr(7, "10.244.0.0/16") == "10.244.7.0/24"
    assert addresses.derived_pod_cidr(255, "10.244.0.0/16") == "10.244.255.0/24"
    # Beyond the cluster CIDR's 256 node ranges: the shared address space, still one /24 each.
    assert addresses.derived_pod_cidr(256, "10.244.0.0/16") == "100.64.0.0/24"
    assert addresses.derived_pod_cidr(4999, "10.244.0.0/16") == "100.82.135.0/24"
    ranges = {addresses.derived_pod_cidr(i, "10.244.0.0/16") for i in range(5000)}
    assert len(ranges) == 5000


def test_allocator_skips_network_and_gateway_and_never_hands_out_twice() -> None:
    alloc = PodIPAllocator("10.244.3.0/29")  # .0 network, .1 gateway, .7 broadcast
    assert alloc.capacity == 5
    ips = [alloc.allocate(f"u{i}") for i in range(5)]
    assert ips == ["10.244.3.2", "10.244.3.3", "10.244.3.4", "10.244.3.5", "10.244.3.6"]
    assert alloc.allocate("u2") == "10.244.3.4"  # same pod, same address
    with pytest.raises(RangeExhausted, match="no IP addresses available in range set"):
        alloc.allocate("u9")
    alloc.release("u1")
    assert alloc.allocate("u9") == "10.244.3.3"


def test_allocator_moves_on_before_reusing_a_released_address() -> None:
    alloc = PodIPAllocator("10.244.0.0/24")
    assert alloc.allocate("a") == "10.244.0.2"
    alloc.release("a")
    assert alloc.allocate("b") == "10.244.0.3"


def test_reserve_takes_back_addresses_after_a_restart() -> None:
    pa = PodAddresses()
    pa.reserve("old", ["10.244.1.2"], ["10.244.1.0/24"])
    pa.reserve("foreign", ["192.168.0.9"], ["10.244.1.0/24"])  # not in range: ignored
    assert pa.assign("new", ["10.244.1.0/24"]) == ["10.244.1.3"]
    pa.release("old")
    assert pa.allocators["10.244.1.0/24"].get("old") is None


def test_dual_stack_pod_gets_one_address_per_range() -> None:
    pa = PodAddresses()
    ips = pa.assign("u", ["10.244.0.0/24", "fd00:10:244::/64"])
    assert ips == ["10.244.0.2", "fd00:10:244::2"]


# --- nodes -------------------------------------------------------------------------------------


def test_node_object_is_what_a_kubelet_registers() -> None:
    node = nodespec.node_object("sim-3", "10.250.0.4", NodeShape(cpu="8", memory="32Gi"), T0)
    meta, status = node["metadata"], node["status"]
    assert meta["labels"] == {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "sim-3",
        "kubernetes.io/os": "linux", "node.pocketkube.io/simulated": "true"}  # fmt: skip
    assert node["spec"] == {}  # no taints, no podCIDR
    assert status["capacity"] == status["allocatable"]
    assert status["capacity"]["cpu"] == "8"
    assert status["capacity"]["memory"] == "32Gi"
    assert status["capacity"]["pods"] == "110"
    assert status["addresses"] == [
        {"address": "10.250.0.4", "type": "InternalIP"},
        {"address": "sim-3", "type": "Hostname"},
    ]
    info = status["nodeInfo"]
    assert info["kubeletVersion"] == "v1.32.0-pocketkube"
    assert info["containerRuntimeVersion"] == "simulated://0.1"
    assert info["operatingSystem"] == "linux"
    assert info["machineID"] == nodespec.node_info("sim-3", NodeShape())["machineID"]
    assert info["machineID"] != nodespec.node_info("sim-4", NodeShape())["machineID"]
    conds = by_type(status["conditions"])
    assert [c["type"] for c in status["conditions"]] == [
        "MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]  # fmt: skip
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "KubeletReady"
    assert conds["Ready"]["message"] == "kubelet is posting ready status"
    assert conds["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert conds["DiskPressure"]["message"] == "kubelet has no disk pressure"
    assert conds["PIDPressure"]["status"] == "False"


def test_heartbeat_keeps_transition_times_unless_the_status_changed() -> None:
    first = nodespec.conditions(T0)
    first[3] = {**first[3], "status": "Unknown"}  # the node lifecycle controller gave up
    later = by_type(nodespec.conditions(T1, first))
    assert later["Ready"]["lastTransitionTime"] == T1
    assert later["MemoryPressure"]["lastTransitionTime"] == T0
    assert all(c["lastHeartbeatTime"] == T1 for c in later.values())


def test_lease_is_held_by_the_node_and_owned_by_it() -> None:
    lease = nodespec.lease_object("sim-0", "uid-0", "2030-01-01T00:00:00.000000Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1", "kind": "Node", "name": "sim-0", "uid": "uid-0"}  # fmt: skip
    assert lease["spec"] == {"holderIdentity": "sim-0", "leaseDurationSeconds": 40,
                             "renewTime": "2030-01-01T00:00:00.000000Z"}  # fmt: skip


# --- containers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("bitnami/redis", "docker.io/bitnami/redis:latest"),
        ("quay.io/x/y:2", "quay.io/x/y:2"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("ghcr.io/a/b@sha256:" + "a" * 64, "ghcr.io/a/b@sha256:" + "a" * 64),
    ],
)
def test_images_are_reported_as_the_runtime_resolves_them(image: str, ref: str) -> None:
    assert containers.normalize_image(image) == ref
    iid = containers.image_id(image)
    assert iid.startswith(ref.split("@")[0].rsplit(":", 1)[0] + "@sha256:")
    assert len(iid.rsplit(":", 1)[1]) == 64


def test_crash_loop_backoff_doubles_to_five_minutes() -> None:
    assert [containers.restart_backoff(n) for n in (0, 1, 2, 5, 9)] == [10, 20, 40, 300, 300]


# --- pods --------------------------------------------------------------------------------------


def test_running_status_matches_the_kubelet() -> None:
    p = pod(spec__initContainers=[{"name": "init", "image": "busybox"}])
    p["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
        {"type": "example.com/gate", "status": "True", "lastTransitionTime": T0},
    ]
    st = podstatus.running_status(p, ["10.244.0.5"], "10.250.0.1", T1)
    assert st["phase"] == "Running"
    assert [c["type"] for c in st["conditions"]] == [
        "example.com/gate", "PodReadyToStartContainers", "Initialized", "Ready",
        "ContainersReady", "PodScheduled"]  # fmt: skip
    conds = by_type(st["conditions"])
    assert all(conds[t]["status"] == "True" for t in conds)
    assert conds["PodScheduled"]["lastTransitionTime"] == T0  # set by the scheduler, kept
    assert conds["Ready"]["lastTransitionTime"] == T1
    assert (st["podIP"], st["podIPs"]) == ("10.244.0.5", [{"ip": "10.244.0.5"}])
    assert (st["hostIP"], st["hostIPs"]) == ("10.250.0.1", [{"ip": "10.250.0.1"}])
    assert st["startTime"] == T1
    assert st["qosClass"] == "BestEffort"
    (app,) = st["containerStatuses"]
    assert app["name"] == "app"
    assert app["image"] == "docker.io/library/nginx:latest"
    assert app["containerID"].startswith("simulated://")
    assert (app["ready"], app["started"], app["restartCount"]) == (True, True, 0)
    assert app["state"] == {"running": {"startedAt": T1}}
    (init,) = st["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert init["state"]["terminated"]["exitCode"] == 0
    assert (init["ready"], init["started"]) == (True, False)


def test_readiness_gates_hold_ready_but_not_containers_ready() -> None:
    p = pod(spec__readinessGates=[{"conditionType": "example.com/lb"}])
    conds = by_type(podstatus.running_status(p, ["10.244.0.5"], "10.250.0.1", T0)["conditions"])
    assert conds["ContainersReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert conds["Ready"]["message"] == (
        'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    )


def test_run_plan_rules() -> None:
    ann = {podstatus.RUN_SECONDS: "5"}
    assert podstatus.run_plan(pod(metadata__annotations=ann, spec__restartPolicy="Never")) == \
        podstatus.RunPlan(5.0, 0)  # fmt: skip
    failing = {**ann, podstatus.EXIT_CODE: "3"}
    plan = podstatus.run_plan(pod(metadata__annotations=failing, spec__restartPolicy="OnFailure"))
    assert plan == podstatus.RunPlan(5.0, 3)
    # restartPolicy Always never finishes; no or a bad annotation runs until deleted.
    assert podstatus.run_plan(pod(metadata__annotations=ann)) is None
    assert podstatus.run_plan(pod(spec__restartPolicy="Never")) is None
    bad = {podstatus.RUN_SECONDS: "soon"}
    assert podstatus.run_plan(pod(metadata__annotations=bad, spec__restartPolicy="Never")) is None
    assert not podstatus.restarts_on_exit(pod(spec__restartPolicy="OnFailure"), 0)
    assert podstatus.restarts_on_exit(pod(spec__restartPolicy="OnFailure"), 1)
    assert not podstatus.restarts_on_exit(pod(spec__restartPolicy="Never"), 1)


@pytest.mark.parametrize(
    ("code", "phase", "reason", "cond_reason"),
    [(0, "Succeeded", "Completed", "PodCompleted"), (2, "Failed", "Error", "PodFailed")],
)
def test_finished_status(code: int, phase: str, reason: str, cond_reason: str) -> None:
    p = pod()
    p["status"] = podstatus.running_status(p, ["10.244.0.5"], "10.250.0.1", T0)
    st = podstatus.finished_status(p, code, T1)
    assert st["phase"] == phase
    (app,) = st["containerStatuses"]
    assert app["state"]["terminated"] == {
        "containerID": app["containerID"], "exitCode": code, "finishedAt": T1,
        "reason": reason, "startedAt": T0}  # fmt: skip
    assert (app["ready"], app["started"]) == (False, False)
    conds = by_type(st["conditions"])
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", cond_reason)
    assert conds["ContainersReady"]["reason"] == cond_reason
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert conds["Initialized"]["status"] == "True"
    assert conds["Initialized"].get("reason") == ("PodCompleted" if code == 0 else None)


def test_crash_then_restart() -> None:
    p = pod(spec__restartPolicy="OnFailure")
    p["status"] = podstatus.running_status(p, ["10.244.0.5"], "10.250.0.1", T0)
    first_id = p["status"]["containerStatuses"][0]["containerID"]
    p["status"] = {**p["status"], **podstatus.crashed_status(p, 3, T1)}
    (app,) = p["status"]["containerStatuses"]
    assert app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert app["state"]["waiting"]["message"] == (
        "back-off 10s restarting failed container=app pod=p_ns(u-1)"
    )
    assert app["lastState"]["terminated"]["exitCode"] == 3
    assert app["lastState"]["terminated"]["containerID"] == first_id
    assert by_type(p["status"]["conditions"])["Ready"]["message"] == (
        "containers with unready status: [app]"
    )
    assert podstatus.restart_due(p) == 10
    assert podstatus.last_exit(p) == T1
    again = podstatus.restarted_status(p, "2030-01-01T00:05:10Z")
    (app,) = again["containerStatuses"]
    assert app["restartCount"] == 1
    assert app["containerID"] != first_id
    assert app["lastState"]["terminated"]["exitCode"] == 3
    assert again["podIP"] == "10.244.0.5"
    assert by_type(again["conditions"])["Ready"]["status"] == "True"
