"""The pod workers end to end against in-memory fakes: pods reach Running/Ready, crash-loop
with kube's backoff, finish by restart policy, run init containers in order, stop gracefully
on deletion, restart on liveness failure and image change, and back off image pulls."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketkube.kubelet.runtime.interface import ExecResult, ImageError
from tests.unit.kubelet.fakes import Harness, pod

UID_FMT = "p_default(uid-p)"


async def test_two_containers_run_and_are_ready(h: Harness) -> None:
    await h.add(pod(containers=[{"name": "web", "image": "busybox"},
                                {"name": "side", "image": "busybox", "command": ["sleep"],
                                 "args": ["$(WHAT)"], "env": [{"name": "WHAT", "value": "9"}]}]))
    st = h.status()
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.88.0.2" and st["podIPs"] == [{"ip": "10.88.0.2"}]
    assert st["hostIP"] == "192.168.1.10" and st["hostIPs"] == [{"ip": "192.168.1.10"}]
    assert st["startTime"] == "2023-11-14T22:13:20Z"
    assert st["qosClass"] == "BestEffort"
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"PodReadyToStartContainers": "True", "Initialized": "True",
                     "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    # The scheduler's transition time is kept.
    assert h.condition("PodScheduled")["lastTransitionTime"] == "2023-11-14T22:13:20Z"
    assert [s["name"] for s in st["containerStatuses"]] == ["side", "web"]
    web = h.container_status("web")
    assert web["ready"] is True and web["started"] is True and web["restartCount"] == 0
    assert web["state"] == {"running": {"startedAt": "2023-11-14T22:13:20Z"}}
    assert web["image"] == "docker.io/library/busybox:latest"
    assert web["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert web["containerID"].startswith("runc://") and len(web["containerID"]) == 71
    assert web["lastState"] == {}
    side = next(c for c in h.runtime.container_configs.values() if c.name == "side")
    assert side.argv == ["sleep", "9"]
    assert side.log_path == h.kubelet.root / "logs/pods/default_p_uid-p/side/0.log"
    assert h.recorder.messages("Created") == ["Created container: web",
                                              "Created container: side"]
    assert h.recorder.messages("Started") == ["Started container web", "Started container side"]
    assert h.recorder.messages("Pulled")[0] == \
        'Container image "busybox" already present on machine'


async def test_status_is_written_only_when_it_changes(h: Harness) -> None:
    await h.add(pod())
    patches = [c for c in h.api.calls if c[0] == "patch"]
    await h.tick(25)  # resyncs and relists, nothing changes
    assert [c for c in h.api.calls if c[0] == "patch"] == patches
    assert patches[-1][2]["metadata"] == {"uid": "uid-p"}


async def test_crash_loop_backs_off_10_20_40_seconds(h: Harness) -> None:
    h.runtime.exit_on_start["c"] = 1
    await h.add(pod())
    await h.relist()  # the first exit restarts at once
    starts = [c for c in h.runtime.calls if c[0] == "start"]
    assert starts == [("start", "c", 0), ("start", "c", 1)]
    await h.relist()
    waiting = h.container_status()["state"]["waiting"]
    assert waiting == {"reason": "CrashLoopBackOff", "message":
                       f"back-off 10s restarting failed container=c pod={UID_FMT}"}
    last = h.container_status()["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    assert h.container_status()["restartCount"] == 1
    assert h.status()["phase"] == "Running"
    assert h.condition("Ready")["message"] == "containers with unready status: [c]"
    assert f"Back-off restarting failed container c in pod {UID_FMT}" in \
        h.recorder.messages("BackOff")
    await h.tick(9)
    assert len([c for c in h.runtime.calls if c[0] == "start"]) == 2
    await h.tick(1)
    assert [c for c in h.runtime.calls if c[0] == "start"][-1] == ("start", "c", 2)
    await h.relist()
    assert "back-off 20s" in h.container_status()["state"]["waiting"]["message"]
    await h.tick(19)
    assert len([c for c in h.runtime.calls if c[0] == "start"]) == 3
    await h.tick(1)
    await h.relist()
    assert "back-off 40s" in h.container_status()["state"]["waiting"]["message"]
    assert h.container_status()["restartCount"] == 3


@pytest.mark.parametrize(("restart", "code", "phase"), [
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded")])
async def test_finished_pods_by_restart_policy(h: Harness, restart: str, code: int,
                                               phase: str) -> None:
    await h.add(pod(restart=restart))
    h.runtime.exit("c", code)
    await h.relist()
    st = h.status()
    assert st["phase"] == phase
    term = h.container_status()["state"]["terminated"]
    assert term["exitCode"] == code
    assert term["reason"] == ("Completed" if code == 0 else "Error")
    assert [c for c in h.runtime.calls if c[0] == "start"] == [("start", "c", 0)]
    ready = h.condition("Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == ("PodCompleted" if phase == "Succeeded" else "PodFailed")
    assert h.condition("PodReadyToStartContainers")["status"] == "False"  # sandbox stopped
    assert st["podIP"] == "10.88.0.2"  # a finished pod keeps its address
    assert h.kubelet.workers.state("uid-p") == "finished"
    assert h.volumes.torn_down == ["uid-p"]


async def test_on_failure_restarts_a_failed_container(h: Harness) -> None:
    await h.add(pod(restart="OnFailure"))
    h.runtime.exit("c", 3)
    await h.relist()
    assert h.status()["phase"] == "Running"
    assert ("start", "c", 1) in h.runtime.calls


async def test_init_containers_run_in_order(h: Harness) -> None:
    await h.add(pod(init=[{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}]))
    assert h.runtime.running() == ["i1"]
    st = h.status()
    assert st["phase"] == "Pending"
    assert h.condition("Initialized")["message"] == \
        "containers with incomplete status: [i1 i2]"
    assert h.container_status("c")["state"]["waiting"]["reason"] == "PodInitializing"
    assert h.container_status("i2")["state"]["waiting"]["reason"] == "PodInitializing"
    h.runtime.exit("i1", 0)
    await h.relist()
    assert h.runtime.running() == ["i2"]
    assert h.container_status("i1")["ready"] is True
    h.runtime.exit("i2", 0)
    await h.relist()
    assert h.runtime.running() == ["c"]
    assert h.status()["phase"] == "Running"
    assert h.condition("Initialized")["status"] == "True"
    order = [c[1] for c in h.runtime.calls if c[0] == "start"]
    assert order == ["i1", "i2", "c"]


async def test_failing_init_container_with_never_fails_the_pod(h: Harness) -> None:
    await h.add(pod(restart="Never", init=[{"name": "i1", "image": "busybox"}]))
    h.runtime.exit("i1", 2)
    await h.relist()
    st = h.status()
    assert st["phase"] == "Failed"
    assert h.container_status("i1")["state"]["terminated"]["exitCode"] == 2
    assert h.container_status("c")["state"]["waiting"]["reason"] == "PodInitializing"
    assert h.condition("Initialized")["reason"] == "ContainersNotInitialized"
    assert [c[1] for c in h.runtime.calls if c[0] == "start"] == ["i1"]


async def test_sidecar_keeps_running_and_the_app_starts(h: Harness) -> None:
    await h.add(pod(init=[{"name": "side", "image": "busybox", "restartPolicy": "Always"}]))
    await h.relist()
    assert h.runtime.running() == ["c", "side"]
    assert h.status()["phase"] == "Running"
    assert h.condition("ContainersReady")["status"] == "True"


async def test_graceful_delete_runs_pre_stop_then_deletes_with_uid_precondition(
        h: Harness) -> None:
    hook = {"preStop": {"exec": {"command": ["sh", "-c", "sleep 5"]}}}

    def slow(c: object, argv: list[str]) -> ExecResult:
        h.clock.advance(5)  # the hook takes five seconds of the grace period
        return ExecResult(0, b"")

    h.runtime.exec_handler = slow
    await h.add(pod(containers=[{"name": "c", "image": "busybox", "lifecycle": hook}]))
    await h.delete("default", "p", grace=30)
    assert ("exec", "c", ("sh", "-c", "sleep 5")) in h.runtime.calls
    assert ("stop", "c", 25) in h.runtime.calls
    assert h.recorder.messages("Killing") == ["Stopping container c"]
    assert h.runtime.running() == []
    deletes = [c for c in h.api.calls if c[0] == "delete"]
    assert deletes == [("delete", "p", {"gracePeriodSeconds": 0,
                                        "preconditions": {"uid": "uid-p"}})]
    final = [c for c in h.api.calls if c[0] == "patch"][-1][2]["status"]
    assert final["phase"] == "Failed"  # SIGTERM: exit 143
    assert final["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143
    assert h.api.pod("default", "p") is None
    h.kubelet.pod_deleted({**final, "metadata": {"uid": "uid-p", "name": "p",
                                                 "namespace": "default"}, "spec": {}})
    await h.settle()
    assert "uid-p" not in h.kubelet.workers.workers
    assert h.runtime.containers == {} and h.runtime.sandboxes == {}


async def test_delete_of_a_recreated_pod_is_refused_by_uid(h: Harness) -> None:
    await h.add(pod())
    replacement = pod(uid="uid-new")
    h.api.put(replacement)  # same name, another pod
    old = pod()
    old["metadata"]["deletionTimestamp"] = "2023-11-14T22:20:00Z"
    old["metadata"]["deletionGracePeriodSeconds"] = 0
    h.kubelet.pod_updated(pod(), old)
    await h.settle()
    assert h.api.pod("default", "p")["metadata"]["uid"] == "uid-new"
    assert h.runtime.running() == []


async def test_liveness_failure_restarts_the_container(h: Harness) -> None:
    await h.add(pod())
    assert h.probes is not None
    h.probes.liveness[("uid-p", "c")] = "Container c failed liveness probe, will be restarted"
    h.probes.on_change("uid-p")
    await h.settle()
    assert "Container c failed liveness probe, will be restarted" in \
        h.recorder.messages("Killing")
    assert h.runtime.running() == ["c"]
    h.probes.liveness.clear()
    await h.relist()
    st = h.container_status()
    assert st["restartCount"] == 1
    assert st["lastState"]["terminated"]["exitCode"] == 143


async def test_image_pull_failure_then_backoff(h: Harness) -> None:
    message = 'failed to pull image "nope": manifest unknown'
    h.images.failures["nope"] = ImageError("ErrImagePull", message)
    await h.add(pod(containers=[{"name": "c", "image": "nope", "imagePullPolicy": "Always"}]))
    assert h.container_status()["state"]["waiting"] == {"reason": "ErrImagePull",
                                                         "message": message}
    assert h.recorder.messages("Pulling") == ['Pulling image "nope"']
    assert h.recorder.messages("Failed") == [f'Failed to pull image "nope": {message}',
                                             "Error: ErrImagePull"]
    await h.tick(1)
    assert h.container_status()["state"]["waiting"] == {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope"'}
    assert "Error: ImagePullBackOff" in h.recorder.messages("Failed")
    assert h.images.pulls == ["nope"]
    assert h.status()["phase"] == "Pending"
    await h.tick(9)
    assert h.images.pulls == ["nope", "nope"]
    del h.images.failures["nope"]
    await h.tick(20)
    assert h.runtime.running() == ["c"]
    pulled = h.recorder.messages("Pulled")[-1]
    assert pulled.startswith('Successfully pulled image "nope" in 0s (0s including waiting).')


async def test_image_change_restarts_the_container(h: Harness) -> None:
    p = await h.add(pod())
    p["spec"]["containers"][0]["image"] = "busybox:1.36"
    await h.update(p)
    assert "Container c definition changed, will be restarted" in \
        h.recorder.messages("Killing")
    st = h.container_status()
    assert st["restartCount"] == 1
    assert st["image"] == "docker.io/library/busybox:1.36"
    assert h.runtime.running() == ["c"]


async def test_run_as_non_root_refuses_a_root_image(h: Harness) -> None:
    await h.add(pod(securityContext={"runAsNonRoot": True}))
    waiting = h.container_status()["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"] == ('container has runAsNonRoot and image will run as root '
                                  f'(pod: "{UID_FMT}", container: c)')
    assert h.status()["phase"] == "Pending"


async def test_failed_mount_is_an_event_and_the_pod_waits(h: Harness) -> None:
    h.volumes.failure = 'MountVolume.SetUp failed for volume "cfg" : configmap "x" not found'
    await h.add(pod())
    assert h.recorder.messages("FailedMount") == [h.volumes.failure]
    assert h.container_status()["state"]["waiting"]["reason"] == "ContainerCreating"
    h.volumes.failure = None
    await h.tick(2)
    assert h.runtime.running() == ["c"]


async def test_node_admission_rejects_host_port_clash(h: Harness) -> None:
    port = [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]
    await h.add(pod("a", containers=[{"name": "c", "image": "busybox", "ports": port}]))
    await h.add(pod("b", containers=[{"name": "c", "image": "busybox", "ports": port}]))
    st = h.status("b")
    assert st["phase"] == "Failed" and st["reason"] == "NodePorts"
    assert st["message"] == ("Pod was rejected: Predicate NodePorts failed: node(s) didn't have "
                             "free ports for the requested pod ports")
    assert h.runtime.running() == ["c"]


async def test_node_admission_rejects_too_much_cpu(h: Harness) -> None:
    h.kubelet.node = {"metadata": {"name": "node-1"},
                      "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}
    big = [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1500m"}}}]
    await h.add(pod("a", containers=big))
    await h.add(pod("b", containers=big))
    st = h.status("b")
    assert st["reason"] == "OutOfcpu"
    assert st["message"] == ("Pod was rejected: Node didn't have enough resource: cpu, "
                             "requested: 1500, used: 1500, capacity: 2000")
    assert ("Warning", "OutOfcpu", st["message"].removeprefix("Pod was rejected: ")) in \
        h.recorder.events


async def test_deleting_a_completed_pod_deletes_it(h: Harness) -> None:
    await h.add(pod(restart="Never"))
    h.runtime.exit("c", 0)
    await h.relist()
    assert h.status()["phase"] == "Succeeded"
    assert not [c for c in h.api.calls if c[0] == "delete"]
    await h.delete("default", "p")
    assert h.api.pod("default", "p") is None


async def test_static_pod_runs_and_is_mirrored(h: Harness) -> None:
    static = pod("web-node-1", uid="static-uid")
    static["metadata"]["annotations"] = {"kubernetes.io/config.hash": "static-uid",
                                         "kubernetes.io/config.source": "file"}
    h.kubelet.add_static_pod(static)
    await h.settle()
    assert h.runtime.running() == ["c"]
    mirror = h.api.pod("default", "web-node-1")
    assert mirror is not None
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"] == "static-uid"
    assert mirror["metadata"]["uid"] != "static-uid"
    await h.settle()
    assert h.status("web-node-1")["phase"] == "Running"
    h.kubelet.remove_static_pod("static-uid")
    await h.settle()
    assert h.runtime.running() == []
    assert h.api.pod("default", "web-node-1") is None
    assert h.runtime.containers == {}


async def test_housekeeping_removes_pods_nobody_knows(h: Harness) -> None:
    await h.add(pod("keep"))
    orphan = pod("gone", uid="uid-gone")
    h.api.put(orphan)
    h.kubelet.pod_added(h.api.pod("default", "gone"))
    await h.settle()
    assert h.runtime.running() == ["c", "c"]
    # The agent restarts and the pod was deleted meanwhile: only the runtime remembers it.
    h.kubelet.api_pods.pop("uid-gone")
    await h.kubelet.workers.close()
    h.kubelet.synced = True
    await h.kubelet.pleg.relist()
    await h.kubelet.housekeeping()
    assert len(h.runtime.running()) == 1
    assert {c.labels["io.kubernetes.pod.uid"] for c in h.runtime.containers.values()} == \
        {"uid-keep"}


async def test_failed_post_start_hook_kills_the_container(h: Harness) -> None:
    hook = {"postStart": {"exec": {"command": ["false"]}}}
    h.runtime.exec_handler = lambda c, argv: ExecResult(1, b"nope")
    await h.add(pod(containers=[{"name": "c", "image": "busybox", "lifecycle": hook}]))
    assert h.recorder.messages("FailedPostStartHook") == ["PostStartHook failed"]
    assert h.recorder.messages("Killing") == ["FailedPostStartHook"]
    waiting = h.container_status()["state"]["waiting"]
    assert waiting["reason"] == "PostStartHookError"
    assert waiting["message"] == (
        'Exec lifecycle hook ([false]) for Container "c" in Pod "p_default(uid-p)" failed - '
        "error: command 'false' exited with 1: , message: \"nope\"")
    assert h.runtime.running() == []


async def test_pruned_instances_take_their_logs_along(h: Harness) -> None:
    h.runtime.exit_on_start["c"] = 1
    await h.add(pod())
    await h.relist()
    first = next(s for s in h.runtime.containers.values() if s.attempt == 0)
    log_path = Path(first.log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for name in ("0.log", "0.log.20261122-080000.gz", "1.log", "2.log", "3.log"):
        (log_path.parent / name).write_text("a line\n")
    for wait in (10, 20):
        await h.tick(wait)
        await h.relist()
    kept = sorted(s.attempt for s in h.runtime.containers.values())
    assert kept == [2, 3]  # the current instance and the one before it (kubectl logs -p)
    assert sorted(p.name for p in log_path.parent.iterdir()) == ["2.log", "3.log"]
