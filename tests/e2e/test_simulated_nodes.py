"""Simulated nodes end to end: a cluster started with `pocketkube start --simulated-nodes 3`,
driven by the real kubectl, and `pocketkube simulate` joining that cluster from its kubeconfig.

Nodes must look like kubelet-registered nodes to kubectl (get, describe), pods bound to them
must run and become Ready, graceful deletion must complete, and a pod simulating a batch
workload must reach Succeeded. Every wait is kubectl's own (`kubectl wait`), never a sleep.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Kubectl, to_yaml, unique_name
from tests.support.cluster import Cluster, _pocketkube_command

NODES = ("sim-0", "sim-1", "sim-2")


def _env(cluster: Cluster) -> dict[str, str]:
    # `start` merges the cluster into the user's kubeconfig: keep that inside the test dir.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env.update(HOME=str(cluster.home), KUBECONFIG=str(cluster.base_dir / "user-kubeconfig"))
    return env


def wait_created(cluster: Cluster, *nodes: str) -> None:
    # One name per call: given several names, kubectl 1.32 fails at once on a missing one
    # instead of waiting for it to be created.
    for node in nodes:
        cluster.kubectl("wait", "--for=create", f"node/{node}", "--timeout=60s")
        # Node IPAM hands out ranges in the order nodes arrive; pods take addresses from it.
        cluster.kubectl("wait", "--for=jsonpath={.spec.podCIDR}", f"node/{node}", "--timeout=60s")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("simulated"))
    for d in (cluster.home, cluster.cache_dir):
        d.mkdir(parents=True, exist_ok=True)
    data = ["--data-dir", str(cluster.data_dir)]
    start = [*_pocketkube_command(), "start", *data, "--port", str(cluster.port),
             "--simulated-nodes", "3", "--no-node-agent"]  # fmt: skip
    proc = subprocess.run(start, capture_output=True, text=True, env=_env(cluster), timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    try:
        wait_created(cluster, *NODES)
        yield cluster
    finally:
        subprocess.run([*_pocketkube_command(), "delete", *data], capture_output=True,
                       env=_env(cluster), timeout=60)  # fmt: skip


@pytest.fixture
def k(sim: Cluster) -> Kubectl:
    ns = unique_name("sim")
    sim.kubectl("create", "namespace", ns)
    return Kubectl(sim, ns)


def pod(name: str, node: str, **extra: object) -> dict:
    annotations = extra.pop("annotations", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": "nginx:1.27",
                                 "resources": {"requests": {"cpu": "100m"}}}],
                 **extra},
    }  # fmt: skip


def test_nodes_are_ready_in_kubectl(sim: Cluster) -> None:
    sim.kubectl("wait", "--for=condition=Ready", *(f"node/{n}" for n in NODES), "--timeout=60s")
    out = sim.kubectl("get", "nodes", "-l", "node.pocketkube.io/simulated=true").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == list(NODES)
    for row in rows.values():
        assert (row[1], row[2], row[4]) == ("Ready", "<none>", "v1.32.0-pocketkube")
    wide = sim.kubectl("get", "node", "sim-1", "-o", "wide", "--no-headers").stdout.split()
    assert wide[5] == "10.250.0.2"  # INTERNAL-IP
    node = json.loads(sim.kubectl("get", "node", "sim-1", "-o", "json").stdout)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "sim-1"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "simulated://0.1"
    assert "taints" not in node["spec"]
    lease = json.loads(sim.kubectl("get", "lease", "sim-1", "-n", "kube-node-lease",
                                   "-o", "json").stdout)  # fmt: skip
    assert lease["spec"]["holderIdentity"] == "sim-1"
    assert lease["spec"]["leaseDurationSeconds"] == 40


def test_describe_node(sim: Cluster) -> None:
    out = sim.kubectl("describe", "node", "sim-0").stdout
    assert "node.pocketkube.io/simulated=true" in out
    assert "Taints:             <none>" in out
    assert "HolderIdentity:  sim-0" in out
    assert "KubeletReady                 kubelet is posting ready status" in out
    assert "InternalIP:  10.250.0.1" in out
    assert "Kubelet Version:            v1.32.0-pocketkube" in out
    assert "Container Runtime Version:  simulated://0.1" in out


def test_pod_runs_becomes_ready_and_is_deleted_gracefully(k: Kubectl) -> None:
    k.create(pod("web", "sim-2"))
    k("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
    got = k.json("pod", "web")
    status = got["status"]
    assert status["phase"] == "Running"
    assert status["hostIP"] == "10.250.0.3"
    pod_cidr = k("get", "node", "sim-2", "-o", "jsonpath={.spec.podCIDR}").stdout
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(pod_cidr)
    assert status["qosClass"] == "Burstable"
    (c,) = status["containerStatuses"]
    assert (c["ready"], c["started"], c["restartCount"]) == (True, True, 0)
    assert c["image"] == "docker.io/library/nginx:1.27"
    assert c["containerID"].startswith("simulated://")
    row = k("get", "pod", "web", "-o", "wide", "--no-headers").stdout.split()
    assert row[1:3] == ["1/1", "Running"]
    assert row[6] == "sim-2"
    out = k("describe", "node", "sim-2").stdout
    assert f"{k.ns}" in out and "web" in out  # listed under Non-terminated Pods
    k("delete", "pod", "web", "--timeout=60s")  # waits for the node to finish the deletion
    assert "NotFound" in k.fails("get", "pod", "web").stderr


def test_job_pod_runs_to_completion(k: Kubectl) -> None:
    ann = {"pocketkube.io/simulate-run-seconds": "1"}
    k.create(pod("job", "sim-0", restartPolicy="Never", annotations=ann))
    k("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/job", "--timeout=60s")
    status = k.json("pod", "job")["status"]
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert k("get", "pod", "job", "--no-headers").stdout.split()[2] == "Completed"
    failing = {**ann, "pocketkube.io/simulate-exit-code": "2"}
    k.create(pod("bad", "sim-0", restartPolicy="Never", annotations=failing))
    k("wait", "--for=jsonpath={.status.phase}=Failed", "pod/bad", "--timeout=60s")
    assert k("get", "pod", "bad", "--no-headers").stdout.split()[2] == "Error"


def test_pods_on_other_nodes_are_left_alone(k: Kubectl) -> None:
    k.create(pod("orphan", "not-simulated"))
    k.create(pod("ok", "sim-1"))
    k("wait", "--for=condition=Ready", "pod/ok", "--timeout=60s")
    assert k.json("pod", "orphan")["status"]["phase"] == "Pending"


def test_component_reports_its_nodes(sim: Cluster) -> None:
    out = sim.kubectl("get", "componentstatuses", "simulated-nodes", "--no-headers").stdout
    assert out.split()[1] == "Healthy"
    assert "3 nodes," in out


def test_simulate_command_joins_the_cluster(sim: Cluster, tmp_path: Path) -> None:
    cmd = [
        *_pocketkube_command(),
        "simulate",
        "--nodes",
        "2",
        "--name-prefix",
        "ext-",
        "--cpu",
        "2",
        "--memory",
        "4Gi",
        "--pods",
        "20",
        "--kubeconfig",
        str(sim.kubeconfig),
    ]
    log = (tmp_path / "simulate.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(sim))
    try:
        wait_created(sim, "ext-0", "ext-1")
        sim.kubectl("wait", "--for=condition=Ready", "node/ext-0", "node/ext-1", "--timeout=60s")
        node = json.loads(sim.kubectl("get", "node", "ext-1", "-o", "json").stdout)
        assert node["status"]["capacity"]["cpu"] == "2"
        assert node["status"]["capacity"]["memory"] == "4Gi"
        assert node["status"]["capacity"]["pods"] == "20"
        names = sim.kubectl("get", "nodes", "-o", "name").stdout.split()
        assert {"node/ext-0", "node/ext-1", *(f"node/{n}" for n in NODES)} <= set(names)
        manifest = to_yaml(pod("ext-pod", "ext-0"))
        sim.kubectl("create", "-n", "default", "-f", "-", input=manifest)
        sim.kubectl("wait", "-n", "default", "--for=condition=Ready", "pod/ext-pod",
                    "--timeout=60s")  # fmt: skip
        sim.kubectl("delete", "-n", "default", "pod", "ext-pod", "--timeout=60s")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        log.close()
    assert code == 0, (tmp_path / "simulate.log").read_text()
