"""mount(2)/umount2(2) through libc, and the runtime's mounts built on them: a tmpfs comes and
goes, a busy mount is detached, and a failing overlay reports what the `mount` command says."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from pocketkube.kubelet import mountcalls
from pocketkube.kubelet.runtime import rootfs
from pocketkube.kubelet.volumes import emptydir

pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture
def target(tmp_path: Path):
    path = tmp_path / "mnt"
    path.mkdir()
    try:
        yield path
    finally:
        while rootfs.is_mounted(path):
            mountcalls.umount(path, mountcalls.MNT_DETACH)


def test_tmpfs_mounted_and_unmounted(target: Path) -> None:
    mountcalls.mount("tmpfs", target, "tmpfs", mountcalls.MS_NOSUID, "mode=0755,size=1m")
    assert rootfs.is_mounted(target)
    (target / "f").write_text("x")
    assert mountcalls.unmount_or_detach(target) == "unmounted"
    assert not rootfs.is_mounted(target)
    assert not (target / "f").exists()
    assert mountcalls.unmount_or_detach(target) == "not mounted"


def test_busy_mount_is_detached(target: Path) -> None:
    mountcalls.mount("tmpfs", target, "tmpfs", 0, "size=1m")
    with open(target / "held", "w") as held:
        assert mountcalls.unmount_or_detach(target) == "detached"
        held.write("still writable while open")
    assert not rootfs.is_mounted(target)


def test_mount_error_carries_errno(target: Path) -> None:
    with pytest.raises(OSError) as info:
        mountcalls.mount("none", target, "no-such-filesystem")
    assert info.value.errno is not None and info.value.filename == str(target)


async def test_overlay_failure_reports_the_mount_command(tmp_path: Path) -> None:
    with pytest.raises(rootfs.MountError) as info:
        await rootfs.mount_overlay([tmp_path / "missing-layer"], tmp_path / "upper",
                                   tmp_path / "work", tmp_path / "rootfs")
    assert str(info.value).startswith("mounting the root filesystem failed: mount: ")
    assert not rootfs.is_mounted(tmp_path / "rootfs")


async def test_runtime_tmpfs_and_volume_tmpfs(tmp_path: Path) -> None:
    shm, vol = tmp_path / "shm", tmp_path / "vol"
    try:
        await rootfs.mount_tmpfs(shm, "1m")
        await emptydir.mount_tmpfs(vol, 1 << 20)
        await emptydir.mount_tmpfs(vol, 1 << 20)  # idempotent: one mount
        mounted = [line.split()[4]
                   for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        assert mounted.count(str(shm)) == 1 and mounted.count(str(vol)) == 1
        await rootfs.unmount(shm)
        await emptydir.unmount(vol)
        assert not rootfs.is_mounted(shm) and not rootfs.is_mounted(vol)
        await rootfs.unmount(shm)  # not mounted: nothing to do
    finally:
        for path in (shm, vol):
            with contextlib.suppress(OSError):
                while rootfs.is_mounted(path):
                    mountcalls.umount(path, mountcalls.MNT_DETACH)
