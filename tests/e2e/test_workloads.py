"""Deployments, ReplicaSets and ReplicationControllers end to end: a `pocketkube server
--simulated-nodes 3` driven by the real kubectl through the workflows of the seed notes — apply
a Deployment, watch it roll out, change the image, read the history, roll back, scale, pause and
resume, restart, and let a ReplicaSet heal itself. Every wait is kubectl's own (`rollout
status`, `wait`, `delete`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl, unique_name
from tests.support.cluster import Cluster

NODES = ("sim-0", "sim-1", "sim-2")
WAIT = "--timeout=90s"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("deployments"), extra_args=["--simulated-nodes", "3"])
    c.start()
    try:
        for node in NODES:
            c.kubectl("wait", "--for=create", f"node/{node}", WAIT)
        c.kubectl("wait", "--for=condition=Ready", *(f"node/{n}" for n in NODES), WAIT)
        yield c
    finally:
        c.close()


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    ns = unique_name("deploy")
    cluster.kubectl("create", "namespace", ns)
    return Kubectl(cluster, ns)


def deployment(image: str = "nginx:1.25", replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "web", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}},
                     **spec}}


def replica_set(name: str = "echo", replicas: int = 3) -> dict[str, Any]:
    """The seed notes' simple-replicaset.yaml: two containers per pod."""
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": {"app": "echo"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "echo"}},
                     "template": {"metadata": {"labels": {"app": "echo"}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "nginx", "image": "gihyodocker/nginx:latest"},
                                      {"name": "echo", "image": "gihyodocker/echo:latest"}]}}}}


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines() if line.strip()]


def replica_sets(k: Kubectl) -> dict[str, dict[str, Any]]:
    return {rs["metadata"]["name"]: rs for rs in k.json("replicasets", "-l", "app=web")["items"]}


def images(k: Kubectl, *what: str) -> list[str]:
    return k("get", *what, "-o",
             "jsonpath={range .items[*]}{.spec.template.spec.containers[0].image}{'\\n'}{end}"
             ).stdout.split()


def test_deployment_rolls_out_updates_and_rolls_back(k: Kubectl) -> None:
    out = k.apply(deployment(), "--record").stdout
    assert "deployment.apps/web created" in out
    assert 'deployment "web" successfully rolled out' in \
        k("rollout", "status", "deployment/web", WAIT).stdout

    table = rows(k("get", "pod,replicaset,deployment", "--selector", "app=web").stdout)
    pods = [r for r in table if r[0].startswith("pod/")]
    assert len(pods) == 3 and all(r[1:3] == ["1/1", "Running"] for r in pods)
    (rs_row,) = [r for r in table if r[0].startswith("replicaset.apps/")]
    assert rs_row[1:4] == ["3", "3", "3"]
    first_rs = rs_row[0].removeprefix("replicaset.apps/")
    assert all(r[0].startswith(f"pod/{first_rs}-") for r in pods)
    (d_row,) = [r for r in table if r[0].startswith("deployment.apps/")]
    assert d_row[1:4] == ["3/3", "3", "3"]
    rs = replica_sets(k)[first_rs]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert first_rs == f"web-{h}" and rs["spec"]["selector"]["matchLabels"] == \
        {"app": "web", "pod-template-hash": h}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    k("set", "image", "deployment/web", "web=nginx:1.26")
    k("annotate", "deployment", "web", "kubernetes.io/change-cause=move to 1.26")
    k("rollout", "status", "deployment/web", WAIT)
    sets = replica_sets(k)
    assert len(sets) == 2
    assert {n: s["spec"]["replicas"] for n, s in sets.items()}[first_rs] == 0
    history = rows(k("rollout", "history", "deployment/web").stdout)
    assert history[1] == ["REVISION", "CHANGE-CAUSE"]
    assert history[2][0] == "1" and "--record=true" in " ".join(history[2])
    assert history[3] == ["2", "move", "to", "1.26"]
    old = k("rollout", "history", "deployment/web", "--revision=1").stdout
    assert "Image:\tnginx:1.25" in old and f"pod-template-hash={h}" in old

    assert "deployment.apps/web rolled back" in k("rollout", "undo", "deployment/web").stdout
    k("rollout", "status", "deployment/web", WAIT)
    assert images(k, "deployment") == ["nginx:1.25"]
    sets = replica_sets(k)
    assert len(sets) == 2 and sets[first_rs]["spec"]["replicas"] == 3
    assert sets[first_rs]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert [r[0] for r in rows(k("rollout", "history", "deployment/web").stdout)[2:]] == \
        ["2", "3"]
    pod_images = k("get", "pods", "-l", f"pod-template-hash={h}", "-o",
                   "jsonpath={.items[*].spec.containers[0].image}").stdout.split()
    assert len(pod_images) >= 3 and set(pod_images) == {"nginx:1.25"}

    events = k("get", "events", "--field-selector", "involvedObject.kind=Deployment",
               "-o", "jsonpath={range .items[*]}{.reason}|{.message}{'\\n'}{end}").stdout
    assert f"ScalingReplicaSet|Scaled up replica set {first_rs} from 0 to 3" in events
    assert f"Scaled down replica set {first_rs} from 3 to 2" in events
    status = k.json("deployment", "web")["status"]
    conds = {c["type"]: c["reason"] for c in status["conditions"]}
    assert conds == {"Available": "MinimumReplicasAvailable",
                     "Progressing": "NewReplicaSetAvailable"}


def test_scale_up_and_down(k: Kubectl) -> None:
    k.apply(deployment(replicas=2))
    k("rollout", "status", "deployment/web", WAIT)
    assert "deployment.apps/web scaled" in \
        k("scale", "deployment", "web", "--replicas=5").stdout
    k("rollout", "status", "deployment/web", WAIT)
    k("wait", "--for=jsonpath={.status.readyReplicas}=5", "deployment/web", WAIT)
    (rs,) = replica_sets(k).values()
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    k("scale", "deployment", "web", "--replicas=1")
    k("rollout", "status", "deployment/web", WAIT)
    k("wait", "--for=jsonpath={.status.replicas}=1", "replicaset", rs["metadata"]["name"], WAIT)
    assert len(replica_sets(k)) == 1  # scaling makes no new revision


def test_replica_set_heals_itself(k: Kubectl) -> None:
    assert "replicaset.apps/echo created" in k.apply(replica_set()).stdout
    k("wait", "--for=jsonpath={.status.readyReplicas}=3", "replicaset/echo", WAIT)
    table = rows(k("get", "pod", "-l", "app=echo").stdout)[1:]
    assert len(table) == 3
    assert all(r[0].startswith("echo-") and r[1:3] == ["2/2", "Running"] for r in table)
    victim = table[0][0]
    k("delete", "pod", victim)  # returns once the pod is gone
    k("wait", "--for=jsonpath={.status.readyReplicas}=3", "replicaset/echo", WAIT)
    names = [r[0] for r in rows(k("get", "pod", "-l", "app=echo").stdout)[1:]]
    assert len(names) == 3 and victim not in names
    events = k("get", "events", "--field-selector", "involvedObject.name=echo",
               "-o", "jsonpath={range .items[*]}{.reason}|{.message}{'\\n'}{end}").stdout
    assert all(f"SuccessfulCreate|Created pod: {n}" in events for n in names)


def test_replica_set_adopts_and_releases_pods(k: Kubectl) -> None:
    k.apply(replica_set(replicas=2))
    k("wait", "--for=jsonpath={.status.readyReplicas}=2", "replicaset/echo", WAIT)
    pod = rows(k("get", "pod", "-l", "app=echo").stdout)[1][0]
    k("label", "pod", pod, "app=other", "--overwrite")
    k("wait", "--for=jsonpath={.status.readyReplicas}=2", "replicaset/echo", WAIT)
    released = k.json("pod", pod)["metadata"]
    assert not released.get("ownerReferences")
    k("label", "pod", pod, "app=echo", "--overwrite")
    k("wait", f"pod/{pod}", "--for=jsonpath={.metadata.ownerReferences[0].name}=echo", WAIT)
    k("wait", "--for=jsonpath={.status.replicas}=2", "replicaset/echo", WAIT)
    assert pod in [r[0] for r in rows(k("get", "pod", "-l", "app=echo").stdout)[1:]]


def test_replication_controller(k: Kubectl) -> None:
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
          "spec": {"replicas": 2, "selector": {"app": "rc"},
                   "template": {"metadata": {"labels": {"app": "rc"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    k.apply(rc)
    k("wait", "--for=jsonpath={.status.readyReplicas}=2", "rc/rc", WAIT)
    assert rows(k("get", "rc", "rc").stdout)[1][1:4] == ["2", "2", "2"]


def test_pause_resume_and_restart(k: Kubectl) -> None:
    k.apply(deployment(replicas=2))
    k("rollout", "status", "deployment/web", WAIT)
    k("rollout", "pause", "deployment/web")
    k("set", "image", "deployment/web", "web=nginx:1.27")
    k("wait", "deployment/web", WAIT,
      "--for=jsonpath={.status.conditions[?(@.type=='Progressing')].reason}=DeploymentPaused")
    assert len(replica_sets(k)) == 1
    k("rollout", "resume", "deployment/web")
    k("rollout", "status", "deployment/web", WAIT)
    assert sorted(images(k, "replicasets", "-l", "app=web")) == ["nginx:1.25", "nginx:1.27"]
    k("rollout", "restart", "deployment/web")
    k("rollout", "status", "deployment/web", WAIT)
    sets = replica_sets(k)
    assert len(sets) == 3
    revisions = sorted(int(s["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                       for s in sets.values())
    assert revisions == [1, 2, 3]
    live = [s for s in sets.values() if s["spec"]["replicas"]]
    assert len(live) == 1 and "kubectl.kubernetes.io/restartedAt" in \
        live[0]["spec"]["template"]["metadata"]["annotations"]


def test_recreate_strategy(k: Kubectl) -> None:
    k.apply(deployment(replicas=2, strategy={"type": "Recreate"}))
    k("rollout", "status", "deployment/web", WAIT)
    k("set", "image", "deployment/web", "web=nginx:1.26")
    k("rollout", "status", "deployment/web", WAIT)
    sizes = {n: s["spec"]["replicas"] for n, s in replica_sets(k).items()}
    (old,) = [n for n, size in sizes.items() if size == 0]
    (new,) = [n for n, size in sizes.items() if size == 2]
    described = k("describe", "deployment", "web").stdout
    down = described.index(f"Scaled down replica set {old} from 2 to 0")
    assert described.index(f"Scaled up replica set {new} from 0 to 2") > down
    assert json.loads(k("get", "deployment", "web", "-o", "json").stdout)["status"][
        "updatedReplicas"] == 2
