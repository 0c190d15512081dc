"""Root filesystems of runc containers: an overlayfs of the image's layers with a private upper
directory per container, and the per-sandbox /dev/shm tmpfs.

The image store keeps each layer extracted once (whiteouts already in overlayfs form), so a
container costs one mount and two empty directories. Mounting calls mount(2)/umount2(2) in a
worker thread (kubelet/mountcalls.py), so the event loop never blocks in them and no `mount`
process is started per container; when a call fails, the `mount`/`umount` command is run
instead, as an asyncio subprocess, and its own error is what gets reported. The command also
mounts overlays whose layer list is too long for one page of options: it runs in the layers'
common parent directory (a working directory is per process, not per thread).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from pocketkube.kubelet import mountcalls

log = logging.getLogger(__name__)

# mount(2) takes at most a page of options; past this, layers are named relative to a shared
# parent directory (the mount runs there) so long layer paths still fit.
MAX_OPTIONS = 3500


class MountError(Exception):
    pass


async def _run(*argv: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == target for line in f)
    except OSError:
        return False


def _lowerdirs(layers: list[Path]) -> tuple[str, Path | None]:
    # overlayfs lists lowerdirs top first; the image lists layers bottom first.
    top_first = [str(p) for p in reversed(layers)]
    option = ":".join(top_first)
    if len(option) <= MAX_OPTIONS:
        return option, None
    parent = Path(os.path.commonpath(top_first))
    return ":".join(os.path.relpath(p, parent) for p in top_first), parent


async def mount_overlay(layers: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount the layers (lowest first) with `upper`/`work` at `target` (all created here)."""
    if not layers:
        raise MountError("the image has no layers")
    lower, cwd = _lowerdirs(layers)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"

    def make() -> bool:
        for d in (upper, work, target):
            d.mkdir(parents=True, exist_ok=True)
        if cwd is not None:
            return False
        try:
            mountcalls.mount("overlay", target, "overlay", 0, options)
        except OSError:
            return False
        return True

    if await asyncio.to_thread(make):
        return
    code, out = await _run("mount", "-t", "overlay", "overlay", "-o", options, str(target), cwd=cwd)
    if code != 0:
        raise MountError(f"mounting the root filesystem failed: {out}")


async def mount_tmpfs(target: Path, size: str = "64m") -> None:
    def make() -> bool:
        target.mkdir(parents=True, exist_ok=True)
        try:
            mountcalls.mount("shm", target, "tmpfs",
                             mountcalls.MS_NOSUID | mountcalls.MS_NODEV | mountcalls.MS_NOEXEC,
                             f"mode=1777,size={size}")
        except OSError:
            return False
        return True

    if await asyncio.to_thread(make):
        return
    code, out = await _run(
        "mount",
        "-t",
        "tmpfs",
        "-o",
        f"rw,nosuid,nodev,noexec,mode=1777,size={size}",
        "shm",
        str(target),
    )
    if code != 0:
        raise MountError(f"mounting /dev/shm failed: {out}")


async def unmount(target: Path) -> None:
    """Unmount `target` if it is mounted (lazily if it is busy)."""

    def call() -> bool:
        try:
            if mountcalls.unmount_or_detach(target) == "detached":
                log.warning("umount %s: busy; detached it", target)
        except OSError:
            return is_mounted(target)  # left to the command, for its error
        return False

    if not await asyncio.to_thread(call):
        return
    code, out = await _run("umount", str(target))
    if code != 0:
        log.warning("umount %s: %s; detaching it", target, out)
        code, out = await _run("umount", "-l", str(target))
        if code != 0:
            raise MountError(f"unmounting {target} failed: {out}")


async def remove_tree(path: Path) -> None:
    """Remove a container's directory; refuses while anything below it is still mounted."""
    prefix = os.path.realpath(path) + "/"

    def remove() -> None:
        with open("/proc/self/mountinfo") as f:
            busy = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
        if busy:
            raise MountError(f"{busy[0]} is still mounted")
        shutil.rmtree(path, ignore_errors=True)

    await asyncio.to_thread(remove)
