"""The cgroup (v1) side of runc containers that runc itself does not cover: whether the memory
controller OOM-killed something in a container's cgroup, and removing a pod's now empty parent
cgroups (runc creates `pocketkube/<pod-uid>/` on the way to a container's cgroup but only removes
the container's own directory).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def default_parent(pod_uid: str) -> str:
    return f"/pocketkube/{pod_uid}"


def oom_kills(cgroups_path: str) -> int:
    """The memory controller's OOM kill count of the cgroup (0 if unknown or gone)."""
    path = CGROUP_ROOT / "memory" / cgroups_path.lstrip("/") / "memory.oom_control"
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def remove_parent(parent: str) -> None:
    """rmdir the pod's cgroup `parent` in every controller (it is empty once its containers
    are deleted). `/pocketkube` itself stays: another pod may be creating its cgroup in it."""
    relative = parent.strip("/")
    if not relative:
        return
    with contextlib.suppress(OSError):
        for controller in CGROUP_ROOT.iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(controller / relative)
