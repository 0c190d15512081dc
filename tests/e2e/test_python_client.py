"""The official `kubernetes` Python client: CRUD, watch, resourceVersion semantics, optimistic
concurrency, selectors and chunked lists."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, watch

from tests.support.cluster import Cluster

WATCH_SECONDS = 10


@pytest.fixture
def v1(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
                              data=data or {"k": "v"})


def collect(v1: client.CoreV1Api, ns: str, count: int, **kwargs) -> list[tuple[str, str, str]]:
    """The first `count` watch events as (type, name, resourceVersion)."""
    seen = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, ns, timeout_seconds=WATCH_SECONDS,
                       **kwargs):
        obj = ev["object"]
        seen.append((ev["type"], obj.metadata.name, obj.metadata.resource_version))
        if len(seen) == count:
            w.stop()
    return seen


def test_create_read_update_delete(v1: client.CoreV1Api, ns: str) -> None:
    created = v1.create_namespaced_config_map(ns, cm("a", {"set": "crud"}, x="1"))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.namespace == ns
    got = v1.read_namespaced_config_map("a", ns)
    assert got.data == {"x": "1"}
    assert got.metadata.resource_version == created.metadata.resource_version

    got.data["y"] = "2"
    updated = v1.replace_namespaced_config_map("a", ns, got)
    assert int(updated.metadata.resource_version) > int(got.metadata.resource_version)
    patched = v1.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"p": "1"}}})
    assert patched.metadata.labels == {"set": "crud", "p": "1"}
    assert patched.data == {"x": "1", "y": "2"}

    # This client version returns deletes as plain dicts.
    status = v1.delete_namespaced_config_map("a", ns)
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"] == {"name": "a", "kind": "configmaps", "uid": created.metadata.uid}
    with pytest.raises(client.ApiException) as e:
        v1.read_namespaced_config_map("a", ns)
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == 'configmaps "a" not found'


def test_optimistic_concurrency(v1: client.CoreV1Api, ns: str) -> None:
    first = v1.create_namespaced_config_map(ns, cm("occ"))
    v1.patch_namespaced_config_map("occ", ns, {"data": {"k": "newer"}})
    first.data = {"k": "stale"}
    with pytest.raises(client.ApiException) as e:
        v1.replace_namespaced_config_map("occ", ns, first)
    assert e.value.status == 409
    status = json.loads(e.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == ('Operation cannot be fulfilled on configmaps "occ": the object '
                                 'has been modified; please apply your changes to the latest '
                                 'version and try again')
    assert status["details"] == {"name": "occ", "kind": "configmaps"}
    assert v1.read_namespaced_config_map("occ", ns).data == {"k": "newer"}

    with pytest.raises(client.ApiException) as e:
        v1.create_namespaced_config_map(ns, cm("occ"))
    assert e.value.status == 409
    assert json.loads(e.value.body)["reason"] == "AlreadyExists"


def test_watch_from_list_resource_version(v1: client.CoreV1Api, ns: str) -> None:
    v1.create_namespaced_config_map(ns, cm("before", {"set": "w"}))
    listed = v1.list_namespaced_config_map(ns, label_selector="set=w")
    assert [c.metadata.name for c in listed.items] == ["before"]
    rv = listed.metadata.resource_version
    assert int(rv) >= int(listed.items[0].metadata.resource_version)

    after = v1.create_namespaced_config_map(ns, cm("after", {"set": "w"}))
    v1.patch_namespaced_config_map("after", ns, {"data": {"k": "2"}})
    v1.delete_namespaced_config_map("before", ns)
    events = collect(v1, ns, 3, label_selector="set=w", resource_version=rv)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "after"), ("MODIFIED", "after"),
                                            ("DELETED", "before")]
    assert events[0][2] == after.metadata.resource_version
    revisions = [int(r) for _, _, r in events]
    assert revisions == sorted(revisions) and revisions[0] > int(rv)

    # Without a resourceVersion the watch starts with the current state.
    initial = collect(v1, ns, 1, label_selector="set=w")
    assert initial[0][:2] == ("ADDED", "after")


def test_namespaced_watch_sees_only_its_namespace(v1: client.CoreV1Api, cluster: Cluster,
                                                  ns: str) -> None:
    other = f"{ns}-other"
    cluster.kubectl("create", "namespace", other)
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version
    v1.create_namespaced_config_map(other, cm("elsewhere"))
    v1.create_namespaced_config_map(ns, cm("here"))
    # Live events and the replay from a resourceVersion both keep to the namespace.
    assert [(t, n) for t, n, _ in collect(v1, ns, 1, resource_version=rv)] == [("ADDED", "here")]
    seen: list[str] = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, ns, timeout_seconds=WATCH_SECONDS):
        seen.append(ev["object"].metadata.name)
        if ev["object"].metadata.name == "here":
            v1.create_namespaced_config_map(other, cm("elsewhere-2"))
            v1.create_namespaced_config_map(ns, cm("here-2"))
        if ev["object"].metadata.name == "here-2":
            w.stop()
    assert [n for n in seen if n != "kube-root-ca.crt"] == ["here", "here-2"]


def test_watch_ends_at_timeout_seconds(v1: client.CoreV1Api, ns: str) -> None:
    start = time.monotonic()
    events = list(watch.Watch().stream(v1.list_namespaced_config_map, ns,
                                       label_selector="set=none", timeout_seconds=2))
    assert events == []
    assert 1.5 < time.monotonic() - start < 8


def test_selectors(v1: client.CoreV1Api, ns: str) -> None:
    for name, labels in (("s1", {"app": "web", "tier": "fe"}), ("s2", {"app": "web"}),
                         ("s3", {"app": "db"})):
        v1.create_namespaced_config_map(ns, cm(name, labels))

    def names(**kw) -> list[str]:
        return [c.metadata.name for c in v1.list_namespaced_config_map(ns, **kw).items]

    assert names(label_selector="app=web") == ["s1", "s2"]
    assert names(label_selector="app=web,!tier") == ["s2"]
    assert names(label_selector="app in (db,x)") == ["s3"]
    assert names(field_selector="metadata.name=s2") == ["s2"]
    assert names(field_selector="metadata.name!=s2", label_selector="app") == ["s1", "s3"]
    assert names(field_selector=f"metadata.namespace={ns},metadata.name=s3") == ["s3"]
    with pytest.raises(client.ApiException) as e:
        names(label_selector="app=(")
    assert e.value.status == 400


def test_limit_and_continue(v1: client.CoreV1Api, ns: str) -> None:
    for i in range(5):
        v1.create_namespaced_config_map(ns, cm(f"page-{i}", {"set": "page"}))
    pages, token = [], None
    while True:
        page = v1.list_namespaced_config_map(ns, label_selector="set=page", limit=2,
                                             _continue=token)
        pages.append([c.metadata.name for c in page.items])
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count in (None, 3, 1)
    assert pages == [["page-0", "page-1"], ["page-2", "page-3"], ["page-4"]]

    # A continued list is a consistent snapshot: later writes do not show up in it.
    first = v1.list_namespaced_config_map(ns, label_selector="set=page", limit=2)
    v1.create_namespaced_config_map(ns, cm("page-5", {"set": "page"}))
    rest = v1.list_namespaced_config_map(ns, label_selector="set=page", limit=10,
                                         _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["page-2", "page-3", "page-4"]
    assert rest.metadata.resource_version == first.metadata.resource_version

    with pytest.raises(client.ApiException) as e:
        v1.list_namespaced_config_map(ns, limit=2, _continue="not-a-token")
    assert e.value.status == 400


def test_apps_and_batch_clients(cluster: Cluster, ns: str) -> None:
    apps = client.AppsV1Api(cluster.api_client())
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "py"},
            "spec": {"selector": {"matchLabels": {"app": "py"}},
                     "template": {"metadata": {"labels": {"app": "py"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    d = apps.create_namespaced_deployment(ns, body)
    assert d.spec.replicas == 1
    assert d.spec.template.spec.containers[0].image_pull_policy == "Always"
    scale = apps.read_namespaced_deployment_scale("py", ns)
    assert scale.spec.replicas == 1
    apps.patch_namespaced_deployment_scale("py", ns, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("py", ns).spec.replicas == 3
