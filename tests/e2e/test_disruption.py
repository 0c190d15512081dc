"""PodDisruptionBudgets end to end, with two simulated nodes and the real kubectl: the
disruption controller keeps ALLOWED DISRUPTIONS, the eviction API refuses (429, kube's
message) what would break a budget, `kubectl drain` evicts what the budget allows, and pods
that are not running are evicted whatever the budget says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("disruption"), extra_args=["--simulated-nodes", "2"])
    c.start()
    try:
        yield c
    finally:
        c.close()


def pdb_status(k: Kubectl, name: str) -> dict:
    return json.loads(k("get", "pdb", name, "-o", "json").stdout).get("status") or {}


def running_pods(k: Kubectl, selector: str) -> list[str]:
    items = json.loads(k("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return [p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running"]


class Refused(Exception):
    def __init__(self, status: dict) -> None:
        super().__init__(status.get("message"))
        self.code, self.reason = status["code"], status["reason"]
        self.message, self.details = status["message"], status.get("details") or {}


def evict(cluster: Cluster, ns: str, name: str) -> None:
    """POST an Eviction with the official Python client; a refusal raises Refused."""
    api = client.CoreV1Api(cluster.api_client())
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    try:
        api.create_namespaced_pod_eviction(name, ns, body)
    except ApiException as e:
        raise Refused(json.loads(e.body)) from None


def test_budget_status_follows_the_pods(k: Kubectl) -> None:
    k("create", "deployment", "web", "--image=busybox", "--replicas=3")
    k("create", "pdb", "web", "--selector=app=web", "--min-available=2")
    k("rollout", "status", "deploy/web", "--timeout=60s")
    st = eventually(lambda: (s := pdb_status(k, "web")).get("currentHealthy") == 3 and s)
    assert (st["desiredHealthy"], st["expectedPods"], st["disruptionsAllowed"]) == (2, 3, 1)
    cond = next(c for c in st["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")
    row = k("get", "pdb", "web").stdout.splitlines()[1].split()
    assert row[:4] == ["web", "2", "N/A", "1"]


def test_eviction_refused_when_budget_exhausted(cluster: Cluster, k: Kubectl) -> None:
    k("create", "deployment", "db", "--image=busybox", "--replicas=2")
    k("create", "pdb", "db", "--selector=app=db", "--max-unavailable=0")
    k("rollout", "status", "deploy/db", "--timeout=60s")
    eventually(lambda: pdb_status(k, "db").get("currentHealthy") == 2)
    victim = running_pods(k, "app=db")[0]
    with pytest.raises(Refused) as err:
        evict(cluster, k.ns, victim)
    e = err.value
    assert (e.code, e.reason) == (429, "TooManyRequests")
    assert e.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert e.details["causes"] == [{"reason": "DisruptionBudget", "message":
                                    "The disruption budget db needs 2 healthy pods and has 2 "
                                    "currently"}]
    assert victim in running_pods(k, "app=db")


def test_eviction_allowed_once_then_refused(cluster: Cluster, k: Kubectl) -> None:
    # Bare pods: nothing replaces the evicted one, so the budget stays spent.
    for name in ("api-1", "api-2"):
        k("run", name, "--image=busybox", "--labels=app=api")
    k("wait", "--for=condition=Ready", "pod/api-1", "pod/api-2", "--timeout=60s")
    k("create", "pdb", "api", "--selector=app=api", "--min-available=1")
    eventually(lambda: pdb_status(k, "api").get("disruptionsAllowed") == 1)
    first, second = running_pods(k, "app=api")[:2]
    evict(cluster, k.ns, first)
    assert pdb_status(k, "api")["disruptionsAllowed"] == 0
    with pytest.raises(Refused) as err:
        evict(cluster, k.ns, second)
    assert err.value.code == 429
    pod = json.loads(k("get", "pod", first, "-o", "json").stdout)
    assert pod["metadata"].get("deletionTimestamp")


def test_pending_pod_evicted_despite_budget(cluster: Cluster, k: Kubectl) -> None:
    k("run", "lonely", "--image=busybox", "--labels=app=lonely",
      "--overrides", json.dumps({"spec": {"nodeSelector": {"nowhere": "true"}}}))
    k("create", "pdb", "lonely", "--selector=app=lonely", "--min-available=1")
    evict(cluster, k.ns, "lonely")
    gone = k("get", "pod", "lonely", "--ignore-not-found", "-o", "name").stdout.strip()
    assert gone == ""


def test_drain_respects_the_budget(cluster: Cluster, k: Kubectl) -> None:
    k("create", "deployment", "drainme", "--image=busybox", "--replicas=2")
    k("rollout", "status", "deploy/drainme", "--timeout=60s")
    k("create", "pdb", "drainme", "--selector=app=drainme", "--max-unavailable=0")
    eventually(lambda: pdb_status(k, "drainme").get("currentHealthy") == 2)
    nodes = {json.loads(k("get", "pod", p, "-o", "json").stdout)["spec"]["nodeName"]
             for p in running_pods(k, "app=drainme")}
    node = sorted(nodes)[0]
    try:
        out = cluster.kubectl("drain", node, "--ignore-daemonsets", "--timeout=3s",
                              "--pod-selector=app=drainme", check=False)
        assert out.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in \
            out.stdout + out.stderr
        assert len(running_pods(k, "app=drainme")) == 2
    finally:
        cluster.kubectl("uncordon", node)
