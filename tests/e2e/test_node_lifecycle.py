"""The pod lifecycle on a real node: `pocketkube server --node-agent` runs the pods as runc
containers, and the real kubectl watches what the node agent does with them. Covered: a failing
liveness probe (HTTP or exec) restarts the container; a readiness probe toggles the Ready
condition; init containers run in order before the app; a Job with restartPolicy Never
completes; image pull failures (ErrImagePull, ImagePullBackOff, ErrImageNeverPull) with kube's
events; graceful termination (preStop hook before SIGTERM, a grace period cut short); static
pods with their mirror pods; a restarted server adopting the containers that kept running; and
one pod reaching another's address over the node's bridge.

Every state change is awaited by polling the API (the node agent acts on its own time); probes
use periodSeconds 1 so each step takes about a second.
"""

from __future__ import annotations

import json
import select
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl, to_yaml
from tests.support.cluster import Cluster
from tests.support.node import node_cluster
from tests.support.waiting import eventually

Obj = dict[str, Any]




pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture(scope="module")
def cluster(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("nodelc")) as c:
        yield c


# --- helpers ----------------------------------------------------------------------------------


def node_ready(cluster: Cluster) -> str | None:
    """The node's name once its Ready condition is True."""
    proc = cluster.kubectl("get", "nodes", "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    for node in json.loads(proc.stdout)["items"]:
        for cond in node.get("status", {}).get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] == "True":
                return node["metadata"]["name"]
    return None


def heartbeat(cluster: Cluster) -> str:
    """The node's last Ready heartbeat while it is Ready, else ""."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for cond in nodes[0].get("status", {}).get("conditions") or []:
        if cond["type"] == "Ready" and cond["status"] == "True":
            return cond["lastHeartbeatTime"]
    return ""


def conmons(container_id: str) -> list[str]:
    """The pids of the conmon processes that watch this container."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and container_id.encode() in argv:
            found.append(entry.name)
    return found


def pod(name: str, containers: list[Obj], **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 5, **spec, "containers": containers}}


def busybox(name: str, script: str, **fields: Any) -> Obj:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **fields}


def get_pod(k: Kubectl, name: str) -> Obj | None:
    proc = k("get", "pod", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def wait_pod(k: Kubectl, name: str, check: Callable[[Obj], Any], timeout: float = 30) -> Obj:
    """The pod once `check(pod)` is truthy."""
    return eventually(lambda: (lambda p: p if p is not None and check(p) else None)(
        get_pod(k, name)), timeout=timeout)


def container_status(p: Obj, name: str, key: str = "containerStatuses") -> Obj:
    for s in p.get("status", {}).get(key) or []:
        if s["name"] == name:
            return s
    return {}


def running(p: Obj, name: str) -> bool:
    return "running" in container_status(p, name).get("state", {})


def waiting_reason(p: Obj, name: str) -> str:
    return container_status(p, name).get("state", {}).get("waiting", {}).get("reason", "")


def condition(p: Obj, kind: str) -> str:
    for c in p.get("status", {}).get("conditions") or []:
        if c["type"] == kind:
            return c["status"]
    return ""


def events(k: Kubectl, name: str) -> list[tuple[str, str, str]]:
    items = json.loads(k("get", "events", "--field-selector", f"involvedObject.name={name}",
                         "-o", "json").stdout)["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


def has_event(k: Kubectl, name: str, match: Callable[[tuple[str, str, str]], bool]) -> list:
    return [e for e in events(k, name) if match(e)]


class ReasonWatch:
    """`kubectl get pods -w` on one pod, started before the pod exists: the first
    container's waiting reasons in the order the API server stored them."""

    def __init__(self, k: Kubectl, name: str) -> None:
        self.proc = k.cluster.kubectl_popen(
            "-n", k.ns, "get", "pods", "-w", "--field-selector", f"metadata.name={name}",
            "-o", 'jsonpath={.status.containerStatuses[0].state.waiting.reason}{"\\n"}')
        self.seen: list[str] = []

    def until(self, done: Callable[[list[str]], bool], timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        out = self.proc.stdout
        assert out is not None
        while not done(self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"not seen in {timeout}s: {self.seen}"
            if select.select([out], [], [], left)[0]:
                line = out.readline().strip()
                assert line or self.proc.poll() is None, "kubectl get -w ended"
                if line and (not self.seen or self.seen[-1] != line):
                    self.seen.append(line)
        return self.seen

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def columns(k: Kubectl, name: str) -> list[str]:
    """`kubectl get pod NAME` as its columns: NAME READY STATUS RESTARTS AGE."""
    return k("get", "pod", name, "--no-headers").stdout.split()


# --- probes -----------------------------------------------------------------------------------


def test_failing_liveness_probe_restarts_the_container(k: Kubectl) -> None:
    web = busybox("web", "mkdir -p /www && echo ok > /www/index.html && "
                         "exec httpd -f -p 8080 -h /www",
                  livenessProbe={"httpGet": {"path": "/index.html", "port": 8080},
                                 "periodSeconds": 1, "failureThreshold": 1})
    k.create(pod("live", [web]))
    p = wait_pod(k, "live", lambda p: running(p, "web") and condition(p, "Ready") == "True")
    first = container_status(p, "web")
    assert first["restartCount"] == 0
    k("exec", "live", "--", "rm", "/www/index.html")

    p = wait_pod(k, "live", lambda p: container_status(p, "web").get("restartCount") == 1
                 and running(p, "web"))
    status = container_status(p, "web")
    assert status["containerID"] != first["containerID"]
    assert status["lastState"]["terminated"]["containerID"] == first["containerID"]
    assert eventually(lambda: has_event(
        k, "live", lambda e: e == ("Warning", "Unhealthy",
                                   "Liveness probe failed: HTTP probe failed with statuscode: "
                                   "404")))
    assert eventually(lambda: has_event(
        k, "live", lambda e: e == ("Normal", "Killing",
                                   "Container web failed liveness probe, will be restarted")))
    # The new container serves its page again: the pod stays at one restart and gets Ready.
    p = wait_pod(k, "live", lambda p: condition(p, "Ready") == "True")
    assert container_status(p, "web")["restartCount"] == 1


def test_failing_exec_liveness_probe_restarts_the_container(k: Kubectl) -> None:
    app = busybox("app", "touch /tmp/healthy; exec sleep 3600",
                  livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]},
                                 "periodSeconds": 1, "failureThreshold": 2})
    k.create(pod("execlive", [app]))
    first = container_status(wait_pod(k, "execlive", lambda p: running(p, "app")), "app")
    k("exec", "execlive", "--", "rm", "/tmp/healthy")
    p = wait_pod(k, "execlive", lambda p: container_status(p, "app").get("restartCount") == 1
                 and running(p, "app"))
    last = container_status(p, "app")["lastState"]["terminated"]
    assert last["containerID"] == first["containerID"]
    assert last["reason"] == "Error" and last["exitCode"] == 137
    evs = events(k, "execlive")
    assert ("Warning", "Unhealthy", "Liveness probe failed: cat: can't open '/tmp/healthy': "
                                    "No such file or directory\n") in evs
    assert ("Normal", "Killing", "Container app failed liveness probe, will be restarted") \
        in evs
    # The new container made its file again: it stays up.
    assert k("exec", "execlive", "--", "cat", "/tmp/healthy").returncode == 0


def test_readiness_probe_toggles_ready(k: Kubectl) -> None:
    app = busybox("app", "exec sleep 3600",
                  readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]},
                                  "periodSeconds": 1, "failureThreshold": 1})
    k.create(pod("ready", [app]))
    p = wait_pod(k, "ready", lambda p: running(p, "app"))
    assert condition(p, "Ready") == "False" and condition(p, "ContainersReady") == "False"
    assert columns(k, "ready")[1:3] == ["0/1", "Running"]

    k("exec", "ready", "--", "touch", "/tmp/ready")
    wait_pod(k, "ready", lambda p: condition(p, "Ready") == "True")
    assert columns(k, "ready")[1] == "1/1"

    k("exec", "ready", "--", "rm", "/tmp/ready")
    p = wait_pod(k, "ready", lambda p: condition(p, "Ready") == "False")
    assert container_status(p, "app")["ready"] is False
    assert columns(k, "ready")[1:3] == ["0/1", "Running"]
    assert eventually(lambda: has_event(
        k, "ready", lambda e: e[:2] == ("Warning", "Unhealthy") and
        e[2].startswith("Readiness probe failed: cat: can't open '/tmp/ready'")))

    k("exec", "ready", "--", "touch", "/tmp/ready")
    p = wait_pod(k, "ready", lambda p: condition(p, "Ready") == "True")
    assert container_status(p, "app")["restartCount"] == 0
    assert columns(k, "ready")[1] == "1/1"


# --- init containers and jobs ----------------------------------------------------------------


def test_init_containers_run_in_order(k: Kubectl) -> None:
    # Each init container appends its line, then waits for a go-file the test creates, so
    # the pod's status can be seen at each step.
    def init(name: str) -> Obj:
        return busybox(name, f"echo {name} >> /work/log; "
                             f"while [ ! -f /work/go-{name} ]; do sleep 0.1; done",
                       volumeMounts=[{"name": "work", "mountPath": "/work"}])

    app = busybox("app", "echo app >> /work/log; cat /work/log; exec sleep 3600",
                  volumeMounts=[{"name": "work", "mountPath": "/work"}])
    k.create(pod("inits", [app], initContainers=[init("first"), init("second")],
                 volumes=[{"name": "work", "emptyDir": {}}]))

    wait_pod(k, "inits", lambda p: "running" in container_status(
        p, "first", "initContainerStatuses").get("state", {}))
    assert columns(k, "inits")[1:3] == ["0/1", "Init:0/2"]
    p = get_pod(k, "inits")
    assert p is not None and p["status"]["phase"] == "Pending"
    assert waiting_reason(p, "app") == "PodInitializing"
    assert condition(p, "Initialized") == "False"
    k("exec", "inits", "-c", "first", "--", "touch", "/work/go-first")

    wait_pod(k, "inits", lambda p: "running" in container_status(
        p, "second", "initContainerStatuses").get("state", {}))
    assert columns(k, "inits")[1:3] == ["0/1", "Init:1/2"]
    p = get_pod(k, "inits")
    assert p is not None
    first = container_status(p, "first", "initContainerStatuses")["state"]["terminated"]
    assert (first["exitCode"], first["reason"]) == (0, "Completed")
    k("exec", "inits", "-c", "second", "--", "touch", "/work/go-second")

    p = wait_pod(k, "inits", lambda p: running(p, "app"))
    assert p["status"]["phase"] == "Running" and condition(p, "Initialized") == "True"
    assert eventually(lambda: k("logs", "inits", "-c", "app").stdout == "first\nsecond\napp\n")
    assert k("logs", "inits", "-c", "first").stdout == ""
    assert columns(k, "inits")[1:3] == ["1/1", "Running"]


def test_job_with_restart_policy_never_completes(k: Kubectl) -> None:
    k.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
              "spec": {"template": {"spec": {
                  "restartPolicy": "Never",
                  "containers": [busybox("once", "echo finished")]}}}})
    k("wait", "--for=condition=complete", "job/once", "--timeout=60s")
    (p,) = json.loads(k("get", "pods", "-l", "batch.kubernetes.io/job-name=once", "-o",
                        "json").stdout)["items"]
    assert p["status"]["phase"] == "Succeeded"
    term = container_status(p, "once")["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert k("logs", "job/once").stdout == "finished\n"
    assert k("get", "job", "once", "--no-headers").stdout.split()[1:3] == ["Complete", "1/1"]


# --- images -----------------------------------------------------------------------------------


def test_image_pull_failure_backs_off(k: Kubectl) -> None:
    image = "127.0.0.1:1/nothing:v1"
    # ErrImagePull shows only until the next sync: a watch sees every state.
    watch = ReasonWatch(k, "nopull")
    try:
        k.create(pod("nopull", [{"name": "app", "image": image}]))
        seen = watch.until(lambda seen: seen[-2:] == ["ErrImagePull", "ImagePullBackOff"])
    finally:
        watch.close()
    assert seen[0] == "ContainerCreating", seen
    p = get_pod(k, "nopull")
    assert p is not None and p["status"]["phase"] == "Pending"
    assert container_status(p, "app")["state"]["waiting"]["message"].startswith(
        f'Back-off pulling image "{image}"')
    assert columns(k, "nopull")[1:3] == ["0/1", "ImagePullBackOff"]
    evs = eventually(lambda: (lambda e: any(r == "BackOff" for _, r, _ in e) and e)(
        events(k, "nopull")))
    assert ("Normal", "Pulling", f'Pulling image "{image}"') in evs
    assert [m for t, r, m in evs if (t, r) == ("Warning", "Failed") and
            m.startswith(f'Failed to pull image "{image}": ')]
    assert ("Warning", "Failed", "Error: ErrImagePull") in evs
    assert ("Normal", "BackOff", f'Back-off pulling image "{image}"') in evs
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in evs


def test_image_never_pulled(k: Kubectl) -> None:
    image = "127.0.0.1:1/absent:v1"
    k.create(pod("never", [{"name": "app", "image": image, "imagePullPolicy": "Never"}]))
    p = wait_pod(k, "never", lambda p: waiting_reason(p, "app") == "ErrImageNeverPull")
    message = f'Container image "{image}" is not present with pull policy of Never'
    assert container_status(p, "app")["state"]["waiting"]["message"] == message
    evs = eventually(lambda: (lambda e: len(e) >= 3 and e)(events(k, "never")))
    assert ("Warning", "ErrImageNeverPull", message) in evs
    assert ("Warning", "Failed", "Error: ErrImageNeverPull") in evs
    assert not [e for e in evs if e[1] == "Pulling"]


# --- termination ------------------------------------------------------------------------------


def test_prestop_hook_runs_before_sigterm(k: Kubectl) -> None:
    # On SIGTERM the container prints what the preStop hook left in the shared emptyDir,
    # then takes its time: its log can be read while the pod is terminating.
    script = ("trap 'echo term: $(cat /shared/marker); sleep 30' TERM; "
              "echo started; while true; do sleep 0.1; done")
    app = busybox("app", script,
                  lifecycle={"preStop": {"exec": {"command": [
                      "sh", "-c", "echo prestop-ran > /shared/marker"]}}},
                  volumeMounts=[{"name": "shared", "mountPath": "/shared"}])
    other = busybox("other", "exec sleep 3600",
                    volumeMounts=[{"name": "shared", "mountPath": "/shared"}])
    k.create(pod("hooked", [app, other], terminationGracePeriodSeconds=20,
                 volumes=[{"name": "shared", "emptyDir": {}}]))
    wait_pod(k, "hooked", lambda p: condition(p, "Ready") == "True")
    assert eventually(lambda: k("logs", "hooked", "-c", "app").stdout == "started\n")

    k("delete", "pod", "hooked", "--wait=false")
    assert eventually(lambda: k("logs", "hooked", "-c", "app", check=False).stdout
                      == "started\nterm: prestop-ran\n", timeout=15)
    assert k("exec", "hooked", "-c", "other", "--", "cat", "/shared/marker").stdout \
        == "prestop-ran\n"
    assert columns(k, "hooked")[2] == "Terminating"
    evs = events(k, "hooked")
    assert ("Normal", "Killing", "Stopping container app") in evs
    k("delete", "pod", "hooked", "--grace-period=0", "--force", check=False)


def test_grace_period_bounds_termination(k: Kubectl) -> None:
    stubborn = busybox("stubborn", "trap '' TERM; while true; do sleep 0.1; done")
    k.create(pod("stubborn", [stubborn], terminationGracePeriodSeconds=30))
    wait_pod(k, "stubborn", lambda p: condition(p, "Ready") == "True")
    started = time.monotonic()
    k("delete", "pod", "stubborn", "--grace-period=3")
    took = time.monotonic() - started
    assert 2.5 <= took < 10, took
    assert get_pod(k, "stubborn") is None


# --- static pods ------------------------------------------------------------------------------


def test_static_pod_and_its_mirror(cluster: Cluster, k: Kubectl, ns: str) -> None:
    node = node_ready(cluster)
    assert node
    name = f"static-{node.lower()}"
    manifests = cluster.data_dir / "manifests"
    manifests.mkdir(exist_ok=True)
    path = manifests / f"{ns}.yaml"
    manifest = pod("static", [busybox("app", "echo static-up; exec sleep 3600")])
    manifest["metadata"]["namespace"] = ns
    path.write_text(to_yaml(manifest))
    try:
        mirror = wait_pod(k, name, lambda p: running(p, "app"), timeout=40)
        annotations = mirror["metadata"]["annotations"]
        assert annotations["kubernetes.io/config.mirror"] == \
            annotations["kubernetes.io/config.hash"]
        assert annotations["kubernetes.io/config.source"] == "file"
        owner = mirror["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Node", node)
        assert mirror["spec"]["nodeName"] == node
        assert name in k("get", "pods", "-o", "name").stdout
        assert eventually(lambda: k("logs", name).stdout == "static-up\n")
        cid = container_status(mirror, "app")["containerID"]
        assert conmons(cid.split("://", 1)[1])

        # Deleting the mirror pod does not stop the static pod: the mirror comes back.
        k("delete", "pod", name, "--wait=false")
        again = wait_pod(k, name, lambda p: p["metadata"]["uid"] != mirror["metadata"]["uid"]
                         and running(p, "app"), timeout=40)
        assert container_status(again, "app")["containerID"] == cid
        assert container_status(again, "app")["restartCount"] == 0
    finally:
        path.unlink()
    eventually(lambda: get_pod(k, name) is None, timeout=40)
    # The container is gone from the node too: its state and its conmon.
    state = cluster.data_dir / "agent" / "runc" / "containers" / cid.split("://", 1)[1]
    assert eventually(lambda: not state.exists() and not conmons(state.name), timeout=30)


# --- restarting the server --------------------------------------------------------------------


def test_restarted_agent_adopts_running_pods(cluster: Cluster, k: Kubectl) -> None:
    k.create(pod("survivor", [busybox("app", "echo up; exec sleep 3600")]))
    before = wait_pod(k, "survivor", lambda p: condition(p, "Ready") == "True")
    status = container_status(before, "app")

    beat = heartbeat(cluster)
    cluster.stop()
    cluster.start()
    # The node's status still says Ready from before: wait for the new agent's report.
    eventually(lambda: heartbeat(cluster) not in ("", beat), timeout=60)

    after = wait_pod(k, "survivor", lambda p: condition(p, "Ready") == "True")
    now = container_status(after, "app")
    assert after["status"]["phase"] == "Running"
    assert now["containerID"] == status["containerID"]
    assert now["state"]["running"]["startedAt"] == status["state"]["running"]["startedAt"]
    assert now["restartCount"] == 0
    assert after["status"]["podIP"] == before["status"]["podIP"]
    assert k("exec", "survivor", "--", "echo", "still here").stdout == "still here\n"
    assert k("logs", "survivor").stdout == "up\n"
    k("delete", "pod", "survivor", "--wait=false")


def test_kubectl_exec_reaches_the_pod_network(k: Kubectl) -> None:
    # A pod's address answers from another pod on the same node (through the bridge).
    server = busybox("web", "mkdir -p /www && echo hello-net > /www/index.html && "
                            "exec httpd -f -p 8080 -h /www")
    k.create(pod("netweb", [server]))
    ip = wait_pod(k, "netweb", lambda p: running(p, "web") and p["status"].get("podIP"))[
        "status"]["podIP"]
    k.create(pod("netclient", [busybox("c", "exec sleep 3600")]))
    wait_pod(k, "netclient", lambda p: running(p, "c"))
    out = eventually(lambda: k("exec", "netclient", "--", "wget", "-qO-",
                               f"http://{ip}:8080/index.html", check=False).stdout)
    assert out == "hello-net\n"
