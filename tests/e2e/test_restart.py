"""State survives the API server: a graceful restart and a kill -9 keep namespaces and objects
(same uid and resourceVersion) on both datastores, bootstrap does not recreate what exists, and a
watch from before the restart is told its resourceVersion is too old (410 Expired)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, watch

from tests.e2e.manifests import configmap, deployment
from tests.support.cluster import Cluster

NS = "persist"


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def restartable(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of this module's own: its tests restart it."""
    c = Cluster(tmp_path_factory.mktemp(f"restart-{request.param}"), datastore=request.param)
    c.start()
    try:
        yield c
    finally:
        c.close()


def snapshot(c: Cluster) -> dict[str, tuple[str, str]]:
    """name → (uid, resourceVersion) for the objects these tests look at."""
    out = {}
    for args in (("namespaces",), ("-n", NS, "configmaps"), ("-n", NS, "deployments"),
                 ("-n", "default", "services")):
        doc = json.loads(c.kubectl("get", *args, "-o", "json").stdout)
        for item in doc["items"]:
            m = item["metadata"]
            out[f"{item['kind']}/{m['name']}"] = (m["uid"], m["resourceVersion"])
    return out


def test_state_survives_restart_and_kill(restartable: Cluster) -> None:
    c = restartable
    c.kubectl("create", "namespace", NS)
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(configmap("kept", {"a": "1"})))
    c.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(deployment("web")))
    before = snapshot(c)
    for key in ("Namespace/default", "Namespace/kube-system", "Namespace/kube-public",
                "Namespace/kube-node-lease", f"Namespace/{NS}", "ConfigMap/kept",
                "Deployment/web", "Service/kubernetes"):
        assert key in before

    c.restart()
    after = snapshot(c)
    # Same uid everywhere; same resourceVersion for what no controller writes to.
    assert {k: after[k][0] for k in before} == {k: v[0] for k, v in before.items()}
    assert {k: after[k] for k in before if not k.startswith("Deployment/")} == \
        {k: v for k, v in before.items() if not k.startswith("Deployment/")}
    assert c.kubectl("get", "deploy", "web", "-n", NS, "-o",
                     "jsonpath={.metadata.generation}").stdout == "1"
    assert c.kubectl("get", "cm", "kept", "-n", NS, "-o", "jsonpath={.data.a}").stdout == "1"

    # Writes continue from the stored revision.
    c.kubectl("label", "-n", NS, "cm", "kept", "round=2")
    rv = int(json.loads(c.kubectl("get", "-n", NS, "cm", "kept", "-o", "json").stdout)[
        "metadata"]["resourceVersion"])
    assert rv > max(int(v[1]) for v in before.values())

    c.restart(hard=True)
    again = snapshot(c)
    assert again["ConfigMap/kept"] == (before["ConfigMap/kept"][0], str(rv))
    assert again["Deployment/web"][0] == before["Deployment/web"][0]
    labels = c.kubectl("get", "-n", NS, "cm", "kept", "-o", "jsonpath={.metadata.labels.round}")
    assert labels.stdout == "2"
    # The kubernetes Service keeps its ClusterIP.
    assert c.kubectl("get", "svc", "kubernetes", "-n", "default", "-o",
                     "jsonpath={.spec.clusterIP}").stdout == "10.96.0.1"


def test_watch_from_before_restart_is_expired(restartable: Cluster) -> None:
    c = restartable
    v1 = client.CoreV1Api(c.api_client())
    ns = "expiry"
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    old = v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="old"), data={"k": "v"})).metadata.resource_version
    v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="newer"), data={"k": "v"}))
    c.restart()
    v1 = client.CoreV1Api(c.api_client())

    status, _, body = c.request(
        "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={old}",
        timeout=10)
    assert status == 200
    event = json.loads(body.decode().splitlines()[0])
    assert event["type"] == "ERROR"
    s = event["object"]
    assert (s["kind"], s["code"], s["reason"]) == ("Status", 410, "Expired")
    assert s["message"].startswith(f"too old resource version: {old} (")

    with pytest.raises(client.ApiException) as e:
        for _ in watch.Watch().stream(v1.list_namespaced_config_map, ns,
                                      resource_version=old, timeout_seconds=5):
            pass
    assert e.value.status == 410
    assert e.value.reason.startswith("Expired: too old resource version")

    # Watching from the current list's resourceVersion works after the restart.
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version
    v1.delete_namespaced_config_map("old", ns)
    w = watch.Watch()
    events = []
    for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=rv,
                       timeout_seconds=10):
        events.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert events == [("DELETED", "old")]
