"""configMap, secret, downwardAPI and projected volumes through the VolumeManager (on plain
directories; tmpfs is covered under tests/kubelet)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pocketkube.kubelet.volumes.common import VolumeError
from pocketkube.kubelet.volumes.manager import VolumeManager, referenced_objects


class FakeSource:
    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.callbacks: list[Callable[[str, str, str], None]] = []
        self.token_requests: list[dict] = []

    def on_change(self, cb: Callable[[str, str, str], None]) -> None:
        self.callbacks.append(cb)

    def set_configmap(self, ns: str, name: str, data: dict[str, str]) -> None:
        self.configmaps[(ns, name)] = {"metadata": {"name": name, "namespace": ns},
                                       "data": data}
        for cb in self.callbacks:
            cb("ConfigMap", ns, name)

    async def configmap(self, ns: str, name: str) -> dict | None:
        return self.configmaps.get((ns, name))

    async def secret(self, ns: str, name: str) -> dict | None:
        return self.secrets.get((ns, name))

    async def token(self, ns: str, service_account: str, *, audiences: list[str],
                    expiration_seconds: int, pod_name: str, pod_uid: str) -> dict:
        self.token_requests.append({"ns": ns, "sa": service_account, "audiences": audiences,
                                    "exp": expiration_seconds, "pod": (pod_name, pod_uid)})
        exp = datetime.now(UTC) + timedelta(seconds=expiration_seconds)
        return {"spec": {"expirationSeconds": expiration_seconds},
                "status": {"token": f"tok-{len(self.token_requests)}",
                           "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def make_pod(volumes: list[dict], **meta: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns1", "uid": "uid-1",
                         "labels": {"app": "web"}, "annotations": {"a": "1"}, **meta},
            "spec": {"serviceAccountName": "runner", "volumes": volumes,
                     "containers": [{"name": "app", "resources": {
                         "limits": {"memory": "128Mi"}}}]}}


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def manager(tmp_path: Path, source: FakeSource) -> VolumeManager:
    return VolumeManager(tmp_path / "pods", source, node_name="n1", tmpfs=False,
                         allocatable={"cpu": "2", "memory": "1Gi"})


def mode(p: Path) -> int:
    return os.stat(p).st_mode & 0o777


async def test_configmap_all_keys_and_items(manager: VolumeManager, source: FakeSource) -> None:
    source.set_configmap("ns1", "cfg", {"a.conf": "A", "b": "B"})
    source.configmaps[("ns1", "cfg")]["binaryData"] = {"bin": base64.b64encode(b"\x00\x01").decode()}
    pod = make_pod([
        {"name": "all", "configMap": {"name": "cfg", "defaultMode": 0o440}},
        {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o644, "items": [
            {"key": "a.conf", "path": "conf/app.conf", "mode": 0o600}, {"key": "b", "path": "b"}]}},
    ])
    dirs = await manager.setup(pod)
    base = manager.root / "uid-1" / "volumes" / "kubernetes.io~configmap"
    assert dirs == {"all": base / "all", "some": base / "some"}
    assert sorted(p.name for p in dirs["all"].iterdir() if not p.name.startswith("..")) == \
        ["a.conf", "b", "bin"]
    assert (dirs["all"] / "bin").read_bytes() == b"\x00\x01"
    assert mode(dirs["all"] / "a.conf") == 0o440
    assert (dirs["some"] / "conf" / "app.conf").read_text() == "A"
    assert mode(dirs["some"] / "conf" / "app.conf") == 0o600
    assert mode(dirs["some"] / "b") == 0o644
    assert mode(dirs["all"]) == 0o777


async def test_missing_objects_and_keys(manager: VolumeManager, source: FakeSource) -> None:
    source.set_configmap("ns1", "cfg", {"a": "A"})
    cases = [
        ({"configMap": {"name": "x"}}, 'MountVolume.SetUp failed for volume "v" : configmap "x" not found'),
        ({"secret": {"secretName": "s"}}, 'MountVolume.SetUp failed for volume "v" : secret "s" not found'),
        ({"configMap": {"name": "cfg", "items": [{"key": "zz", "path": "zz"}]}},
         'MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: zz'),
    ]
    for src, message in cases:
        with pytest.raises(VolumeError) as e:
            await manager.setup(make_pod([{"name": "v", **src}]))
        assert e.value.message == message
    # Optional: an empty volume, and missing item keys are skipped.
    dirs = await manager.setup(make_pod([
        {"name": "o1", "configMap": {"name": "x", "optional": True}},
        {"name": "o2", "secret": {"secretName": "s", "optional": True}},
        {"name": "o3", "configMap": {"name": "cfg", "optional": True, "items": [
            {"key": "zz", "path": "zz"}, {"key": "a", "path": "a"}]}}]))
    assert [p.name for p in dirs["o1"].iterdir() if not p.name.startswith("..")] == []
    assert [p.name for p in dirs["o3"].iterdir() if not p.name.startswith("..")] == ["a"]


async def test_first_error_after_setting_up_the_rest(manager: VolumeManager,
                                                     source: FakeSource) -> None:
    with pytest.raises(VolumeError, match='volume "bad"'):
        await manager.setup(make_pod([{"name": "bad", "configMap": {"name": "x"}},
                                      {"name": "scratch", "emptyDir": {}}]))
    assert (manager.root / "uid-1/volumes/kubernetes.io~empty-dir/scratch").is_dir()


async def test_secret_volume(manager: VolumeManager, source: FakeSource) -> None:
    source.secrets[("ns1", "s")] = {"data": {"user": base64.b64encode(b"admin").decode(),
                                             "pw": base64.b64encode(b"hunter2").decode()}}
    dirs = await manager.setup(make_pod([{"name": "s", "secret": {
        "secretName": "s", "defaultMode": 0o400, "items": [{"key": "pw", "path": "password"}]}}]))
    assert (dirs["s"] / "password").read_text() == "hunter2"
    assert mode(dirs["s"] / "password") == 0o400
    assert not (dirs["s"] / "user").exists()


async def test_downward_api(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "info", "downwardAPI": {"defaultMode": 0o644, "items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                             "divisor": "1Mi"}},
        {"path": "cpu", "mode": 0o600, "resourceFieldRef": {"containerName": "app",
                                                           "resource": "limits.cpu"}},
    ]}}])
    pod["metadata"]["labels"] = {"z": 'q"uote', "app": "web"}
    dirs = await manager.setup(pod)
    d = dirs["info"]
    assert (d / "labels").read_text() == 'app="web"\nz="q\\"uote"'
    assert (d / "annotations").read_text() == 'a="1"'
    assert [(d / n).read_text() for n in ("name", "ns", "uid", "app", "mem", "cpu")] == \
        ["p", "ns1", "uid-1", "web", "128", "2"]
    assert mode(d / "cpu") == 0o600
    # Labels change: refresh rewrites the file.
    pod["metadata"]["labels"] = {"app": "api"}
    await manager.refresh(pod)
    assert (d / "labels").read_text() == 'app="api"'

    bad = make_pod([{"name": "b", "downwardAPI": {"items": [
        {"path": "x", "resourceFieldRef": {"containerName": "nope", "resource": "limits.cpu"}}]}}])
    with pytest.raises(VolumeError, match='"b" : container nope not found$'):
        await manager.setup(bad)


def kube_api_access() -> dict:
    return {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


async def test_projected_kube_api_access(manager: VolumeManager, source: FakeSource) -> None:
    source.set_configmap("ns1", "kube-root-ca.crt", {"ca.crt": "-----BEGIN CERTIFICATE-----"})
    dirs = await manager.setup(make_pod([kube_api_access()]))
    d = dirs["kube-api-access-abcde"]
    assert d == manager.root / "uid-1/volumes/kubernetes.io~projected/kube-api-access-abcde"
    assert (d / "token").read_text() == "tok-1"
    assert (d / "ca.crt").read_text() == "-----BEGIN CERTIFICATE-----"
    assert (d / "namespace").read_text() == "ns1"
    assert mode(d / "token") == 0o644
    assert source.token_requests == [{"ns": "ns1", "sa": "runner", "audiences": [],
                                      "exp": 3607, "pod": ("p", "uid-1")}]
    # A cached token is reused until 80% of its lifetime has passed.
    await manager.refresh(make_pod([kube_api_access()]))
    assert len(source.token_requests) == 1
    due = manager.tokens.next_refresh("uid-1")
    assert due is not None
    now = datetime.now(UTC).timestamp()
    assert now + 3607 * 0.8 - 15 < due < now + 3607 * 0.8 + 1
    await manager.teardown("uid-1")


async def test_projected_aggregates_errors(manager: VolumeManager) -> None:
    vol = {"name": "pj", "projected": {"sources": [{"configMap": {"name": "a"}},
                                                   {"secret": {"name": "b"}}]}}
    with pytest.raises(VolumeError) as e:
        await manager.setup(make_pod([vol]))
    assert e.value.message == ('MountVolume.SetUp failed for volume "pj" : '
                               '[configmap "a" not found, secret "b" not found]')


async def test_change_notification_refreshes_files(manager: VolumeManager,
                                                   source: FakeSource) -> None:
    source.set_configmap("ns1", "cfg", {"k": "v1"})
    dirs = await manager.setup(make_pod([{"name": "c", "configMap": {"name": "cfg"}}]))
    source.set_configmap("ns1", "other", {"k": "x"})  # not referenced: nothing to do
    assert not manager._tasks
    source.set_configmap("ns1", "cfg", {"k": "v2", "new": "n"})
    await asyncio.gather(*manager._tasks)
    assert (dirs["c"] / "k").read_text() == "v2"
    assert (dirs["c"] / "new").read_text() == "n"


async def test_teardown_removes_pod_dir(manager: VolumeManager, source: FakeSource) -> None:
    source.set_configmap("ns1", "cfg", {"k": "v"})
    await manager.setup(make_pod([{"name": "c", "configMap": {"name": "cfg"}},
                                  {"name": "e", "emptyDir": {}}]))
    await manager.teardown("uid-1")
    assert not (manager.root / "uid-1").exists()
    await manager.teardown("uid-1")  # idempotent
    source.set_configmap("ns1", "cfg", {"k": "w"})
    assert not manager._tasks  # a torn-down pod is not refreshed


def test_referenced_objects() -> None:
    pod = make_pod([kube_api_access(), {"name": "s", "secret": {"secretName": "tls"}}])
    pod["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "env-cm"}}]
    pod["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {
        "secretKeyRef": {"name": "db", "key": "pw"}}}]
    assert referenced_objects(pod) == {("ConfigMap", "kube-root-ca.crt"), ("Secret", "tls"),
                                       ("ConfigMap", "env-cm"), ("Secret", "db")}
