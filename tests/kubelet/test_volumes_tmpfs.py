"""Memory-backed volumes: emptyDir medium Memory (sized as the kubelet sizes it) and secrets on
tmpfs; teardown unmounts them and removes the pod's directory."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from pocketkube.kubelet.volumes.manager import VolumeManager, _mounts_under

pytestmark = pytest.mark.usefixtures("require_root")


class Secrets:
    async def configmap(self, ns: str, name: str) -> None:
        return None

    async def secret(self, ns: str, name: str) -> dict:
        return {"data": {"key": base64.b64encode(b"value").decode()}}


def fs_type(path: Path) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(path):
                return fields[fields.index("-") + 1]
    return ""


async def test_tmpfs_volumes(tmp_path: Path) -> None:
    vm = VolumeManager(tmp_path / "pods", Secrets(), node_name="n", tmpfs=True,
                       allocatable={"memory": "1Gi"})
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "tmpfs-uid"},
           "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}],
                    "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory",
                                                               "sizeLimit": "8Mi"}},
                                {"name": "podsized", "emptyDir": {"medium": "Memory"}},
                                {"name": "disk", "emptyDir": {}},
                                {"name": "creds", "secret": {"secretName": "s"}}]}}
    try:
        dirs = await vm.setup(pod)
        assert fs_type(dirs["cache"]) == "tmpfs"
        st = os.statvfs(dirs["cache"])
        assert st.f_blocks * st.f_frsize == 8 * 1024 * 1024
        st = os.statvfs(dirs["podsized"])
        assert st.f_blocks * st.f_frsize == 64 * 1024 * 1024  # the pod's memory limit
        assert fs_type(dirs["disk"]) == ""
        assert fs_type(dirs["creds"]) == "tmpfs"
        assert (dirs["creds"] / "key").read_text() == "value"
        assert os.stat(dirs["cache"]).st_mode & 0o777 == 0o777
        # Setting up again is idempotent: no second mount stacked on the first.
        await vm.setup(pod)
        assert len(_mounts_under(tmp_path / "pods" / "tmpfs-uid")) == 3
    finally:
        await vm.teardown("tmpfs-uid")
    assert _mounts_under(tmp_path / "pods" / "tmpfs-uid") == []
    assert not (tmp_path / "pods" / "tmpfs-uid").exists()
