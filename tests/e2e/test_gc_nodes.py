"""The garbage collector and the node controllers end to end, through the real kubectl on a
server with two simulated nodes: cascading deletion in its three policies, pod CIDRs for
nodes, a node whose kubelet dies going Unknown and tainted with its pods evicted as their
tolerations say, pods of a deleted node collected, and the controller manager's lease.

Node timings are shortened through the control plane's component options
(tests/e2e/gc_nodes_app.py), never by sleeping: every wait is `kubectl wait` or a bounded poll.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl, unique_name
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

APP = f"{Path(__file__).with_name('gc_nodes_app.py')}:control_plane"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("gc-nodes"),
                extra_args=["--simulated-nodes", "2", "--app", APP])
    c.start()
    try:
        for node in ("sim-0", "sim-1"):
            c.kubectl("wait", "--for=create", f"node/{node}", "--timeout=60s")
        yield c
    finally:
        c.close()


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    ns = unique_name("gc")
    cluster.kubectl("create", "namespace", ns)
    return Kubectl(cluster, ns)




def owner_ref(obj: dict, block: bool = False) -> dict:
    ref = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
           "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]}
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


def configmap(name: str, *owners: dict, block: bool = False) -> dict:
    meta: dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = [owner_ref(o, block) for o in owners]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def pod(name: str, *owners: dict, node: str | None = None, **spec: Any) -> dict:
    meta: dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = [owner_ref(o, True) for o in owners]
    body = {"containers": [{"name": "app", "image": "nginx:1.27"}],
            "terminationGracePeriodSeconds": 1, **spec}
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def create(k: Kubectl, manifest: dict) -> dict:
    return json.loads(k.create(manifest, "-o", "json").stdout)


def names(k: Kubectl, kind: str) -> set[str]:
    return set(k("get", kind, "-o", "jsonpath={.items[*].metadata.name}").stdout.split())


# -- garbage collector --------------------------------------------------------------------------
def test_background_deletion_removes_dependents_and_theirs(k: Kubectl) -> None:
    owner = create(k, configmap("owner"))
    mid = create(k, configmap("mid", owner))
    create(k, configmap("leaf", mid))
    create(k, pod("worker", owner))
    create(k, configmap("bystander"))
    k("delete", "configmap", "owner")
    k("wait", "--for=delete", "configmap/mid", "configmap/leaf", "pod/worker",
      f"--timeout={TIMEOUT:.0f}s")
    assert "bystander" in names(k, "configmaps")


def test_an_owner_with_the_same_name_but_another_uid_is_gone(k: Kubectl) -> None:
    owner = create(k, configmap("owner"))
    stale = dict(owner, metadata={**owner["metadata"],
                                  "uid": "00000000-0000-0000-0000-000000000001"})
    create(k, configmap("dep", stale))
    create(k, configmap("kept", owner))
    k("wait", "--for=delete", "configmap/dep", f"--timeout={TIMEOUT:.0f}s")
    assert {"owner", "kept"} <= names(k, "configmaps")


def test_orphan_deletion_keeps_dependents_without_the_reference(k: Kubectl) -> None:
    owner = create(k, configmap("owner"))
    create(k, configmap("dep1", owner, block=True))
    create(k, configmap("dep2", owner))
    # kubectl waits until the owner is gone, i.e. until the orphan finalizer was handled.
    k("delete", "configmap", "owner", "--cascade=orphan", f"--timeout={TIMEOUT:.0f}s")
    assert "owner" not in names(k, "configmaps")
    for dep in ("dep1", "dep2"):
        refs = k("get", "configmap", dep, "-o", "jsonpath={.metadata.ownerReferences}").stdout
        assert refs == ""


def test_foreground_deletion_deletes_dependents_before_the_owner(k: Kubectl) -> None:
    owner = create(k, configmap("owner"))
    mid = create(k, configmap("mid", owner, block=True))
    create(k, pod("worker", mid))
    create(k, configmap("dep", owner, block=True))
    k("wait", "--for=condition=Ready", "pod/worker", f"--timeout={TIMEOUT:.0f}s")
    proc = k.cluster.kubectl_popen("-n", k.ns, "delete", "configmap", "owner",
                                   "--cascade=foreground", f"--timeout={TIMEOUT:.0f}s")
    # While dependents remain, the owner waits with the foregroundDeletion finalizer.
    fins = eventually(lambda: k("get", "configmap", "owner", "--ignore-not-found", "-o",
                                "jsonpath={.metadata.finalizers}").stdout)
    assert "foregroundDeletion" in fins
    out, err = proc.communicate(timeout=TIMEOUT + 10)
    assert proc.returncode == 0, err
    assert not {"owner", "mid", "dep"} & names(k, "configmaps")
    assert "worker" not in names(k, "pods")


def deployment(k: Kubectl, name: str) -> tuple[set[str], set[str]]:
    """A Deployment of two pods, rolled out: (its ReplicaSets, its pods)."""
    k("create", "deployment", name, "--image=nginx:1.27", "--replicas=2")
    k("rollout", "status", f"deployment/{name}", f"--timeout={TIMEOUT:.0f}s")
    rs = names(k, "replicasets")

    def two_pods() -> set[str] | None:
        pods = names(k, "pods")
        return pods if len(pods) == 2 else None

    pods = eventually(two_pods)
    assert len(rs) == 1
    return rs, pods


def test_deleting_a_deployment_removes_its_replicasets_and_pods(k: Kubectl) -> None:
    rs, pods = deployment(k, "web")
    k("delete", "deployment", "web")
    k("wait", "--for=delete", *(f"replicaset/{r}" for r in rs), *(f"pod/{p}" for p in pods),
      f"--timeout={TIMEOUT:.0f}s")


def test_orphaning_a_deployment_keeps_its_replicaset_and_pods(k: Kubectl) -> None:
    rs, pods = deployment(k, "web")
    k("delete", "deployment", "web", "--cascade=orphan", f"--timeout={TIMEOUT:.0f}s")
    assert names(k, "replicasets") == rs
    assert k("get", "replicaset", *rs, "-o", "jsonpath={.metadata.ownerReferences}").stdout == ""
    assert names(k, "pods") == pods


# -- node IPAM, leader election, admission ------------------------------------------------------
def test_nodes_get_distinct_pod_cidrs(cluster: Cluster) -> None:
    def cidrs() -> list[str]:
        out = cluster.kubectl("get", "nodes", "sim-0", "sim-1", "-o",
                              "jsonpath={.items[*].spec.podCIDR}").stdout.split()
        return out if len(out) == 2 else []

    got = eventually(cidrs)
    nets = [ipaddress.ip_network(c) for c in got]
    assert len(set(nets)) == 2
    assert all(n.prefixlen == 24 and n.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
               for n in nets)


def test_the_controller_manager_holds_its_lease(cluster: Cluster) -> None:
    holder = cluster.kubectl("get", "lease", "-n", "kube-system", "kube-controller-manager",
                             "-o", "jsonpath={.spec.holderIdentity}").stdout
    assert holder


def test_new_pods_tolerate_lost_nodes_for_five_minutes(k: Kubectl) -> None:
    created = create(k, pod("p"))
    tolerations = {(t["key"], t["effect"], t.get("tolerationSeconds"))
                   for t in created["spec"]["tolerations"]}
    assert tolerations == {("node.kubernetes.io/not-ready", "NoExecute", 300),
                           ("node.kubernetes.io/unreachable", "NoExecute", 300)}


# -- a node whose kubelet dies ------------------------------------------------------------------
def start_node(cluster: Cluster, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    """One simulated node in a process of its own, renewing its lease every second."""
    code = ("import sys; from pathlib import Path; "
            "from pocketkube.simulator.component import run_standalone; "
            "sys.exit(run_standalone(Path(sys.argv[1]), {'nodes': 1, 'name_prefix': sys.argv[2],"
            " 'lease_interval': 1.0}))")
    return subprocess.Popen([sys.executable, "-c", code, str(cluster.kubeconfig), prefix],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_a_lost_node_goes_unknown_is_tainted_and_its_pods_are_evicted(
        cluster: Cluster, k: Kubectl, tmp_path: Path) -> None:
    node = f"{unique_name('lost')}-0"
    proc = start_node(cluster, node[:-1], tmp_path / "node.log")
    try:
        cluster.kubectl("wait", "--for=create", f"node/{node}", "--timeout=60s")
        cluster.kubectl("wait", "--for=condition=Ready", f"node/{node}", "--timeout=60s")
        quick = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                  "effect": "NoExecute", "tolerationSeconds": 2}]
        create(k, pod("quick", node=node, tolerations=quick))
        create(k, pod("patient", node=node))
        k("wait", "--for=condition=Ready", "pod/quick", "pod/patient", "--timeout=60s")
    finally:
        proc.kill()
        proc.wait(10)
    cluster.kubectl("wait", "--for=condition=Ready=Unknown", f"node/{node}", "--timeout=60s")
    doc = json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout)
    ready = next(c for c in doc["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    taints = {(t["key"], t["effect"]) for t in doc["spec"]["taints"]}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints
    # Pods on it are marked not ready; the one tolerating 2 s is evicted, with the reason.
    k("wait", "--for=condition=Ready=False", "pod/patient", "--timeout=60s")
    k("wait", "--for=jsonpath={.metadata.deletionTimestamp}", "pod/quick", "--timeout=60s")
    quick_pod = k.json("pod", "quick")
    cond = next(c for c in quick_pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert cond["reason"] == "DeletionByTaintManager"
    patient = k.json("pod", "patient")
    assert not patient["metadata"].get("deletionTimestamp")
    events = k("get", "events", "--field-selector", "involvedObject.name=quick").stdout
    assert "TaintManagerEviction" in events
    # The node is deleted for good: pod GC force-deletes what was left on it.
    cluster.kubectl("delete", "node", node)
    k("wait", "--for=delete", "pod/quick", "pod/patient", "--timeout=60s")
