"""Image layers stacked by overlayfs the way the runc runtime stacks them: the built-in
busybox runs from its layer, and an upper layer's whiteouts hide files of the layers below."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pocketkube.kubelet.images import builtin
from pocketkube.kubelet.images.service import ImageManager
from tests.unit.kubelet.test_images_archive import LOWER, UPPER, docker_archive

pytestmark = pytest.mark.usefixtures("require_root")


def mount_overlay(layers: list[Path], base: Path) -> Path:
    """Mount `layers` (lowest first) with a scratch upper directory; returns the merged dir."""
    for name in ("upper", "work", "merged"):
        (base / name).mkdir(parents=True)
    lower = ":".join(str(p) for p in reversed(layers))  # overlayfs lists the top layer first
    options = f"lowerdir={lower},upperdir={base / 'upper'},workdir={base / 'work'}"
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(base / "merged")], check=True
    )
    return base / "merged"


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    made: list[Path] = []
    try:
        yield made
    finally:
        for path in made:
            subprocess.run(["umount", str(path)], check=False)


def chroot(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, timeout=30)


async def test_busybox_runs_and_whiteouts_hide_lower_files(
    tmp_path: Path, mounts: list[Path]
) -> None:
    manager = ImageManager(tmp_path / "images")
    await manager.ensure_builtin()
    busybox = await manager.get("busybox")
    assert busybox is not None
    archive = docker_archive(tmp_path / "app.tar", [(["app:1"], [LOWER, UPPER], {})])
    [app] = await manager.load(archive)
    merged = mount_overlay(busybox.layers + app.layers, tmp_path / "rootfs")
    mounts.append(merged)

    assert chroot(merged, "/bin/busybox", "echo", "hi").stdout == "hi\n"
    listing = chroot(
        merged, "sh", "-c", "ls /data; cat /etc/keep; test -e /etc/gone || echo hidden"
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == "new\nkeep\nhidden\n"  # data/old went with the opaque directory
    assert not (merged / "etc/gone").exists()
    assert (app.layers[0] / "etc/gone").exists() and (app.layers[0] / "data/old").exists()
    assert (merged / "bin/hello-link").read_bytes() == (merged / "bin/hello").read_bytes()
    assert chroot(merged, "/bin/sym").stdout == "hello\n"  # the symlink, through busybox sh


async def test_pause_image_runs_catatonit(tmp_path: Path, mounts: list[Path]) -> None:
    manager = ImageManager(tmp_path / "images")
    await manager.ensure_builtin()
    pause = await manager.get(builtin.PAUSE)
    assert pause is not None
    merged = mount_overlay(pause.layers, tmp_path / "rootfs")
    mounts.append(merged)
    result = chroot(merged, "/catatonit", "--version")
    assert result.returncode == 0 and "catatonit" in result.stdout + result.stderr
