"""Container mounts from volumeMounts: subPath, subPathExpr, readOnly, propagation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pocketkube.kubelet.envvars import ContainerConfigError
from pocketkube.kubelet.runtime.interface import Mount
from pocketkube.kubelet.volumes.manager import VolumeManager


class NoObjects:
    async def configmap(self, ns: str, name: str) -> None:
        return None

    async def secret(self, ns: str, name: str) -> None:
        return None


@pytest.fixture
def vm(tmp_path: Path) -> VolumeManager:
    return VolumeManager(tmp_path / "pods", NoObjects(), node_name="n", tmpfs=False)


def pod_with(mounts: list[dict], env: list[dict] | None = None) -> tuple[dict, dict]:
    container = {"name": "app", "volumeMounts": mounts, "env": env or []}
    pod = {"metadata": {"name": "web-1", "namespace": "ns", "uid": "u"},
           "spec": {"containers": [container], "volumes": [
               {"name": "data", "emptyDir": {}},
               {"name": "cfg", "configMap": {"name": "c", "optional": True}},
               {"name": "host", "hostPath": {"path": "/tmp"}}]}}
    return pod, container


async def test_mounts(vm: VolumeManager) -> None:
    pod, c = pod_with([
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/ro", "readOnly": True},
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "host", "mountPath": "/host", "mountPropagation": "HostToContainer"},
        {"name": "data", "mountPath": "/shared", "mountPropagation": "Bidirectional"},
    ])
    dirs = await vm.setup(pod)
    assert vm.mounts(pod, c, dirs) == [
        Mount("/data", str(dirs["data"]), False, "private"),
        Mount("/ro", str(dirs["data"]), True, "private"),
        Mount("/etc/cfg", str(dirs["cfg"]), True, "private"),  # configMaps are always ro
        Mount("/host", "/tmp", False, "rslave"),
        Mount("/shared", str(dirs["data"]), False, "rshared"),
    ]


async def test_subpath_created_with_volume_mode(vm: VolumeManager) -> None:
    pod, c = pod_with([{"name": "data", "mountPath": "/logs", "subPath": "a/logs"}])
    dirs = await vm.setup(pod)
    [m] = vm.mounts(pod, c, dirs)
    assert m.host_path == str(dirs["data"] / "a" / "logs")
    assert os.stat(m.host_path).st_mode & 0o777 == 0o777


async def test_subpath_expr(vm: VolumeManager) -> None:
    env = [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "KIND", "value": "logs"}]
    pod, c = pod_with([{"name": "data", "mountPath": "/out", "subPathExpr": "$(KIND)/$(POD)"}],
                      env)
    dirs = await vm.setup(pod)
    [m] = vm.mounts(pod, c, dirs)
    assert m.host_path == str(dirs["data"] / "logs" / "web-1")
    # With the built environment given, it is what counts.
    [m] = vm.mounts(pod, c, dirs, env=[("KIND", "k"), ("POD", "p")])
    assert m.host_path == str(dirs["data"] / "k" / "p")
    pod, c = pod_with([{"name": "data", "mountPath": "/o", "subPathExpr": "$(NOPE)/$(ALSO)"}])
    with pytest.raises(ContainerConfigError, match="^missing value for ALSO, NOPE$"):
        vm.mounts(pod, c, dirs)


async def test_subpath_errors(vm: VolumeManager, tmp_path: Path) -> None:
    pod, _ = pod_with([])
    dirs = await vm.setup(pod)
    (dirs["data"] / "escape").symlink_to(tmp_path)
    cases = [
        ({"name": "data", "mountPath": "/x", "subPath": "/abs"},
         "error SubPath `/abs` must not be an absolute path"),
        ({"name": "data", "mountPath": "/x", "subPath": "a/../.."},
         "unable to provision SubPath `a/../..`: must not contain '..'"),
        ({"name": "data", "mountPath": "/x", "subPath": "escape"},
         'failed to prepare subPath for volumeMount "data" of container "app"'),
        ({"name": "missing", "mountPath": "/x"},
         'cannot find volume "missing" to mount into container "app"'),
        ({"name": "data", "mountPath": "/x", "mountPropagation": "Sideways"},
         'invalid MountPropagation mode: "Sideways"'),
    ]
    for mount, message in cases:
        p, c = pod_with([mount])
        with pytest.raises(ContainerConfigError) as e:
            vm.mounts(p, c, dirs)
        assert e.value.message == message
