"""The components process end to end: `pocketkube server --simulated-nodes 2` runs the
controller manager, the scheduler and the simulated nodes in a child process; kubectl sees them
healthy in componentstatuses, the scheduler in the child places pods, a killed child is restarted
by the server, and nothing outlives the server, whether stopped or killed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.e2e.conftest import Kubectl, unique_name
from tests.support.cluster import Cluster, _pocketkube_command

COMPONENTS = ("controller-manager", "etcd-0", "scheduler", "simulated-nodes")
DEADLINE = 60.0
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll `probe` until it returns something other than None (fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        assert time.monotonic() < deadline, f"no {what} after {timeout:g}s"
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def components_pid(cluster: Cluster) -> int | None:
    assert cluster.pid is not None
    for pid in children(cluster.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"pocketkube.cli.components" in cmdline and alive(pid):
            return pid
    return None


def statuses(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """componentstatuses as kubectl prints them: name -> (STATUS, MESSAGE or ERROR)."""
    doc = json.loads(cluster.kubectl("get", "componentstatuses", "-o", "json").stdout)
    out = {}
    for item in doc["items"]:
        (cond,) = item["conditions"]
        healthy = "Healthy" if cond["status"] == "True" else "Unhealthy"
        out[item["metadata"]["name"]] = (healthy, cond.get("message") or cond.get("error", ""))
    return out


def all_healthy(cluster: Cluster) -> dict[str, tuple[str, str]] | None:
    got = statuses(cluster)
    return got if all(status == "Healthy" for status, _ in got.values()) else None


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("components"), extra_args=["--simulated-nodes", "2"])
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


def schedule_pod(k: Kubectl, name: str) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": "nginx:1.27"}]}}  # fmt: skip
    k.create(pod)
    k("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    return k.json("pod", name)


def test_components_are_healthy_in_componentstatuses(sim: Cluster) -> None:
    got = eventually(lambda: all_healthy(sim), "healthy components")
    assert sorted(got) == list(COMPONENTS)
    assert got["simulated-nodes"][1].startswith("2 nodes, ")
    out = sim.kubectl("get", "cs", "scheduler", "--no-headers").stdout.split()
    assert out[:3] == ["scheduler", "Healthy", "ok"]
    assert components_pid(sim) is not None


def test_the_scheduler_in_the_child_places_pods(sim: Cluster) -> None:
    k = Kubectl(sim, unique_name("comp"))
    sim.kubectl("create", "namespace", k.ns)
    pod = schedule_pod(k, "placed")
    assert pod["spec"]["nodeName"] in ("sim-0", "sim-1")
    assert pod["status"]["phase"] == "Running"


def test_a_killed_components_process_is_restarted(sim: Cluster) -> None:
    eventually(lambda: all_healthy(sim), "healthy components")
    first = components_pid(sim)
    assert first is not None
    subprocess.run(["kill", "-KILL", str(first)], check=True)
    second = eventually(lambda: p if (p := components_pid(sim)) not in (None, first) else None,
                        "new components process")  # fmt: skip
    assert not alive(first)
    got = eventually(lambda: all_healthy(sim), "healthy components after the restart")
    assert sorted(got) == list(COMPONENTS)
    assert components_pid(sim) == second
    # The new scheduler takes over the lease the killed one held, then schedules again.
    k = Kubectl(sim, unique_name("comp"))
    sim.kubectl("create", "namespace", k.ns)
    # Pod admission needs the namespace's `default` ServiceAccount, which only the leading
    # controller manager creates (kube's e2e framework waits for it in every new namespace).
    k("wait", "--for=create", "serviceaccount/default", "--timeout=60s")
    assert schedule_pod(k, "after-restart")["spec"]["nodeName"] in ("sim-0", "sim-1")


def test_pocketkube_stop_leaves_no_process(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "stop")
    cluster.start()
    try:
        child = eventually(lambda: components_pid(cluster), "components process")
        server = cluster.pid
        assert server is not None
        stop = subprocess.run([*_pocketkube_command(), "stop", "--data-dir", str(cluster.data_dir)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert stop.returncode == 0, stop.stderr
        assert "pocketkube stopped" in stop.stdout
        assert cluster._proc is not None and cluster._proc.wait(30) == 0
        assert not alive(child)
    finally:
        cluster.close()


def test_components_die_with_a_killed_server(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "killed")
    cluster.start()
    try:
        child = eventually(lambda: components_pid(cluster), "components process")
        assert cluster._proc is not None
        cluster._proc.send_signal(signal.SIGKILL)
        cluster._proc.wait(30)
        # The child is not ours to reap: it is re-parented, then ends on PR_SET_PDEATHSIG.
        eventually(lambda: True if not alive(child) else None, "exit of the components process")
    finally:
        cluster.close()


def test_components_in_process_option(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "inproc", extra_args=["--components-in-process"])
    cluster.start()
    try:
        got = eventually(lambda: all_healthy(cluster), "healthy components")
        assert sorted(got) == ["controller-manager", "etcd-0", "scheduler"]
        assert cluster.pid is not None and children(cluster.pid) == []
        remembered = json.loads((cluster.data_dir / "config.json").read_text())
        assert remembered["components_in_process"] is True
    finally:
        cluster.close()
