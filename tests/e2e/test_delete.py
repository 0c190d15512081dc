"""kubectl delete in its forms, finalizers holding an object, dry-run, and deletecollection."""

from __future__ import annotations

import json

from kubernetes import client

from tests.e2e.conftest import Kubectl
from tests.e2e.manifests import configmap, pod
from tests.support.cluster import Cluster


def cm_names(k: Kubectl, selector: str) -> list[str]:
    out = k("get", "configmaps", "-l", selector, "-o", "name").stdout.split()
    return [n.split("/", 1)[1] for n in out]


def test_delete_by_name_file_label_and_all(k: Kubectl, manifest_file) -> None:
    k.apply([configmap(f"d{i}", labels={"set": "del", "n": str(i)}) for i in range(5)])
    assert k("delete", "configmap", "d0").stdout == 'configmap "d0" deleted\n'
    path = manifest_file("d1.json", configmap("d1", labels={"set": "del"}))
    assert k("delete", "-f", str(path)).stdout == 'configmap "d1" deleted\n'
    assert k("delete", "configmaps", "-l", "n in (2,3)").stdout == \
        'configmap "d2" deleted\nconfigmap "d3" deleted\n'
    assert cm_names(k, "set=del") == ["d4"]
    proc = k.fails("delete", "configmap", "d0")
    assert proc.stderr == 'Error from server (NotFound): configmaps "d0" not found\n'

    k.apply(pod("p1"))
    out = k("delete", "all", "--all").stdout
    assert 'pod "p1" deleted' in out
    out = k("delete", "configmaps", "--all").stdout
    assert 'configmap "d4" deleted' in out
    assert cm_names(k, "set=del") == []
    proc = k("get", "pods")
    assert proc.stderr == f"No resources found in {k.ns} namespace.\n"


def test_delete_unscheduled_pod_is_immediate(k: Kubectl) -> None:
    k.apply(pod("p1"))
    # kubectl waits for the object to be gone; an unscheduled pod goes at once.
    assert k("delete", "pod", "p1", "--timeout=10s").stdout == 'pod "p1" deleted\n'
    proc = k.fails("get", "pod", "p1")
    assert proc.stderr == 'Error from server (NotFound): pods "p1" not found\n'


def test_finalizer_holds_deletion(k: Kubectl) -> None:
    cm = configmap("held")
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    k.apply(cm)
    assert k("delete", "configmap", "held", "--wait=false").stdout == \
        'configmap "held" deleted\n'
    live = k.json("configmap", "held")
    assert live["metadata"]["deletionTimestamp"]
    assert live["metadata"]["deletionGracePeriodSeconds"] == 0
    assert live["metadata"]["finalizers"] == ["example.com/hold"]
    # Deleting again is accepted and changes nothing.
    k("delete", "configmap", "held", "--wait=false")
    assert k.json("configmap", "held")["metadata"]["deletionTimestamp"] == \
        live["metadata"]["deletionTimestamp"]
    # A terminating object takes no new finalizers.
    proc = k.fails("patch", "configmap", "held", "--type=merge", "-p",
                   '{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}')
    assert "Forbidden: no new finalizers can be added if the object is being deleted" in \
        proc.stderr

    k("patch", "configmap", "held", "--type=json", "-p",
      '[{"op":"remove","path":"/metadata/finalizers"}]')
    proc = k.fails("get", "configmap", "held")
    assert proc.stderr == 'Error from server (NotFound): configmaps "held" not found\n'


def test_delete_dry_run_server(k: Kubectl) -> None:
    k.apply(configmap("keep"))
    assert k("delete", "configmap", "keep", "--dry-run=server").stdout == \
        'configmap "keep" deleted (server dry run)\n'
    assert k.json("configmap", "keep")["metadata"]["name"] == "keep"
    assert "deletionTimestamp" not in k.json("configmap", "keep")["metadata"]


def test_deletecollection_with_python_client(cluster: Cluster, k: Kubectl) -> None:
    k.apply([configmap(f"c{i}", labels={"set": "coll" if i < 3 else "stay"}) for i in range(5)])
    v1 = client.CoreV1Api(cluster.api_client())
    # kube's generic store answers deletecollection with the list of deleted objects.
    deleted = v1.delete_collection_namespaced_config_map(k.ns, label_selector="set=coll")
    assert deleted.kind == "ConfigMapList"
    assert cm_names(k, "set in (coll,stay)") == ["c3", "c4"]
    dry = v1.delete_collection_namespaced_config_map(k.ns, label_selector="set=stay",
                                                     dry_run="All")
    assert dry.kind == "ConfigMapList"
    assert cm_names(k, "set=stay") == ["c3", "c4"]


def test_delete_with_preconditions(cluster: Cluster, k: Kubectl) -> None:
    k.apply(configmap("pre"))
    uid = k.json("configmap", "pre")["metadata"]["uid"]
    v1 = client.CoreV1Api(cluster.api_client())
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-" + uid))
    try:
        v1.delete_namespaced_config_map("pre", k.ns, body=body)
    except client.ApiException as e:
        assert e.status == 409
        status = json.loads(e.body)
        assert status["reason"] == "Conflict"
        assert status["message"] == (
            f'Operation cannot be fulfilled on configmaps "pre": Precondition failed: '
            f'UID in precondition: not-{uid}, UID in object meta: {uid}')
    else:
        raise AssertionError("a delete with a wrong uid precondition succeeded")
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
    v1.delete_namespaced_config_map("pre", k.ns, body=body)
    proc = k.fails("get", "configmap", "pre")
    assert proc.stderr == 'Error from server (NotFound): configmaps "pre" not found\n'
