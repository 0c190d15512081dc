"""The pod lifecycle on a node whose containers are host processes (`pocketkube server
--node-agent --node-runtime process`), driven by the real kubectl: what needs no isolation
works as on a runc node — a pod runs its command, `kubectl logs` and `kubectl exec` reach it,
deleting the pod ends the process, a restartPolicy Never pod completes with its exit code, a
crashing container goes into CrashLoopBackOff, an exec readiness probe runs on the host, and a
restarted server adopts the processes that kept running. Nothing here needs root.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.node import node_cluster
from tests.support.waiting import eventually

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("nodeproc"), "--node-runtime", "process") as c:
        yield c


def node(cluster: Cluster) -> Obj | None:
    """The node once it is Ready."""
    items = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for n in items:
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in n.get("status", {}).get("conditions") or []):
            return n
    return None


def heartbeat(cluster: Cluster) -> str:
    """The node's last Ready heartbeat while it is Ready, else "" (a restarted agent reports
    a new one)."""
    n = node(cluster)
    return next(c["lastHeartbeatTime"] for c in n["status"]["conditions"]
                if c["type"] == "Ready") if n else ""


def pod(name: str, script: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 5, **spec, "containers": [
                {"name": "app", "image": "busybox", "command": ["sh", "-c", script],
                 "env": [{"name": "GREETING", "value": "hi from env"}]}]}}


def get_pod(k: Kubectl, name: str) -> Obj | None:
    proc = k("get", "pod", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def wait_pod(k: Kubectl, name: str, check: Callable[[Obj], Any], timeout: float = 30) -> Obj:
    return eventually(lambda: (lambda p: p if p is not None and check(p) else None)(
        get_pod(k, name)), timeout=timeout)


def state(p: Obj) -> Obj:
    statuses = p.get("status", {}).get("containerStatuses") or [{}]
    return statuses[0]


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def columns(k: Kubectl, name: str) -> list[str]:
    return k("get", "pod", name, "--no-headers").stdout.split()


def test_pod_runs_a_host_command(cluster: Cluster, k: Kubectl) -> None:
    # A sleep with a duration no other process uses: the test can find it among the host's.
    marker = f"3600.{os.getpid()}{time.monotonic_ns() % 100000}"
    k.create(pod("hello", f'echo hello; echo "$GREETING"; exec sleep {marker}'))
    p = wait_pod(k, "hello", lambda p: p["status"].get("phase") == "Running"
                 and "running" in state(p).get("state", {}))
    assert p["status"]["podIP"] == p["status"]["hostIP"]
    assert state(p)["containerID"].startswith("process://")
    assert columns(k, "hello")[1:3] == ["1/1", "Running"]
    assert eventually(lambda: k("logs", "hello").stdout == "hello\nhi from env\n")
    assert len(processes_with(f"sleep {marker}")) == 1

    out = k("exec", "hello", "--", "sh", "-c", 'echo "exec: $GREETING"').stdout
    assert out == "exec: hi from env\n"
    assert k("exec", "-i", "hello", "--", "cat", input="through stdin\n").stdout == \
        "through stdin\n"
    failed = k("exec", "hello", "--", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    assert "command terminated with exit code 7" in failed.stderr

    started = time.monotonic()
    k("delete", "pod", "hello")
    assert time.monotonic() - started < 10
    assert get_pod(k, "hello") is None
    assert eventually(lambda: not processes_with(f"sleep {marker}"), timeout=10)


@pytest.mark.parametrize(("code", "phase", "reason"),
                         [(0, "Succeeded", "Completed"), (3, "Failed", "Error")])
def test_restart_policy_never_completes_with_exit_code(k: Kubectl, code: int, phase: str,
                                                       reason: str) -> None:
    k.create(pod("once", f"echo finishing; exit {code}", restartPolicy="Never"))
    p = wait_pod(k, "once", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
    assert p["status"]["phase"] == phase
    term = state(p)["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (code, reason)
    assert term["startedAt"] <= term["finishedAt"]
    assert state(p)["restartCount"] == 0
    assert columns(k, "once")[1:4] == ["0/1", reason, "0"]
    assert k("logs", "once").stdout == "finishing\n"


def test_crashing_container_backs_off(k: Kubectl) -> None:
    k.create(pod("crash", "echo crashed; exit 1"))
    p = wait_pod(k, "crash", lambda p: state(p).get("state", {}).get("waiting", {}).get(
        "reason") == "CrashLoopBackOff" and state(p)["restartCount"] >= 1)
    assert p["status"]["phase"] == "Running"
    waiting = state(p)["state"]["waiting"]
    uid = p["metadata"]["uid"]
    assert waiting["message"].startswith("back-off 10s restarting failed container=app "
                                         f"pod=crash_{k.ns}({uid})")
    last = state(p)["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert columns(k, "crash")[2] == "CrashLoopBackOff"
    assert k("logs", "crash", "--previous").stdout == "crashed\n"

    def backoff_event() -> list:
        items = json.loads(k("get", "events", "--field-selector",
                             "involvedObject.name=crash", "-o", "json").stdout)["items"]
        return [e for e in items if e["reason"] == "BackOff"]

    (event,) = eventually(backoff_event)
    assert event["type"] == "Warning"
    assert event["message"] == "Back-off restarting failed container app in pod " \
                               f"crash_{k.ns}({uid})"
    k("delete", "pod", "crash")


def test_readiness_probe_runs_on_the_host(k: Kubectl, tmp_path: Path) -> None:
    ready_file = tmp_path / "ready"
    spec = pod("probed", "exec sleep 3600")
    spec["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["cat", str(ready_file)]}, "periodSeconds": 1,
        "failureThreshold": 1}
    k.create(spec)
    wait_pod(k, "probed", lambda p: "running" in state(p).get("state", {}))
    assert columns(k, "probed")[1] == "0/1"
    ready_file.write_text("yes\n")
    wait_pod(k, "probed", lambda p: state(p).get("ready") is True)
    assert columns(k, "probed")[1] == "1/1"
    ready_file.unlink()
    wait_pod(k, "probed", lambda p: state(p).get("ready") is False)
    k("delete", "pod", "probed")


def test_restarted_agent_adopts_host_processes(cluster: Cluster, k: Kubectl) -> None:
    marker = f"3600.{os.getpid()}{time.monotonic_ns() % 100000 + 1}"
    k.create(pod("kept", f"echo up; exec sleep {marker}"))
    before = state(wait_pod(k, "kept", lambda p: state(p).get("ready") is True))
    (pid,) = processes_with(f"sleep {marker}")
    beat = heartbeat(cluster)
    cluster.stop()
    cluster.start()
    eventually(lambda: heartbeat(cluster) not in ("", beat), timeout=60)

    after = state(wait_pod(k, "kept", lambda p: state(p).get("ready") is True))
    assert after["containerID"] == before["containerID"]
    assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    assert after["restartCount"] == 0
    assert processes_with(f"sleep {marker}") == [pid]
    assert k("exec", "kept", "--", "echo", "still here").stdout == "still here\n"
    assert k("logs", "kept").stdout == "up\n"
    k("delete", "pod", "kept")
    assert eventually(lambda: not processes_with(f"sleep {marker}"), timeout=10)
