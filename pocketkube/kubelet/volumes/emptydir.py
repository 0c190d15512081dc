"""emptyDir volumes (kube's `pkg/volume/emptydir`): a directory under the pod's volume dir,
mode 0777, or with `medium: Memory` a tmpfs mounted there (root only) and sized as the kubelet
sizes it: the smallest positive of node allocatable memory, the pod's memory limit and the
volume's sizeLimit. Secret, downwardAPI and projected volumes reuse the tmpfs path so their
contents never touch the disk, as kube's memory-backed wrappers do.

tmpfs is mounted and unmounted with the system calls (kubelet/mountcalls.py) in a worker
thread; only when a call fails is the `mount`/`umount` command run, so a failure reads as kube's
mount utility reports it (the command, its arguments and its output).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from pathlib import Path
from typing import Any

from pocketkube.api.validation.quantity import value as quantity_value
from pocketkube.kubelet import mountcalls
from pocketkube.kubelet.volumes.common import SetupError

log = logging.getLogger("pocketkube.kubelet.volumes")


def _bytes(q: Any) -> int:
    v = quantity_value(q) if q is not None else None
    return math.ceil(v) if v is not None else 0


def pod_memory_limit(pod: dict[str, Any]) -> int:
    """The pod cgroup's memory limit (`ResourceConfigForPod`): the sum of the containers'
    limits (the larger init container limit if bigger), 0 unless every container has one."""
    spec = pod.get("spec") or {}
    total = 0
    for c in spec.get("containers") or []:
        limit = _bytes(((c.get("resources") or {}).get("limits") or {}).get("memory"))
        if limit <= 0:
            return 0
        total += limit
    for c in spec.get("initContainers") or []:
        limit = _bytes(((c.get("resources") or {}).get("limits") or {}).get("memory"))
        if c.get("restartPolicy") == "Always":
            if limit <= 0:
                return 0
            total += limit
        elif limit > total:
            total = limit
    return total


def memory_size(pod: dict[str, Any], size_limit: Any, allocatable_memory: int) -> int:
    """`calculateEmptyDirMemorySize`; 0 means "no size option" (the kernel's default)."""
    size = allocatable_memory
    pod_limit = pod_memory_limit(pod)
    if pod_limit > 0 and (size == 0 or pod_limit <= size):
        size = pod_limit
    volume_limit = _bytes(size_limit)
    if volume_limit > 0 and (size == 0 or volume_limit <= size):
        size = volume_limit
    return size


async def _run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def mount_tmpfs(path: Path, size: int) -> None:
    """A tmpfs at path (idempotent: an existing mount point is left as it is)."""
    options = "mode=0777" + (f",size={size}" if size > 0 else "")

    def make() -> bool:
        path.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(path):
            return True
        try:
            mountcalls.mount("tmpfs", path, "tmpfs", 0, options)
        except OSError:
            return False
        return True

    if await asyncio.to_thread(make):
        return
    rc, out = await _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path))
    if rc != 0:
        raise SetupError(f"mount failed: exit status {rc}\nMounting command: mount\n"
                         f"Mounting arguments: -t tmpfs -o {options} tmpfs {path}\n"
                         f"Output: {out}")


async def unmount(path: Path) -> None:
    def call() -> bool:
        try:
            mountcalls.unmount_or_detach(path)  # a busy one goes away once released
        except OSError:
            return False
        return True

    if await asyncio.to_thread(call):
        return
    rc, out = await _run("umount", str(path))
    if rc != 0:
        # A busy mount (a process still has it open) goes away once released.
        rc, out = await _run("umount", "-l", str(path))
        if rc != 0:
            raise SetupError(f"unmount failed: {out}")


async def setup(volume: dict[str, Any], pod: dict[str, Any], path: Path, *, tmpfs: bool,
                allocatable_memory: int) -> None:
    src = volume.get("emptyDir") or {}
    medium = src.get("medium") or ""
    if medium == "Memory" and tmpfs:
        await mount_tmpfs(path, memory_size(pod, src.get("sizeLimit"), allocatable_memory))
        return
    if medium not in ("", "Memory"):
        raise SetupError(f"unknown storage medium {medium!r}")

    def make() -> None:
        existed = path.exists()
        path.mkdir(parents=True, exist_ok=True)
        if not existed:
            path.chmod(0o777)

    await asyncio.to_thread(make)
