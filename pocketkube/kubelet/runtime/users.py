"""The user a container runs as, resolved in its own root filesystem.

An image's `USER` and a pod's runAsUser/runAsGroup/supplementalGroups become one uid, one gid and
the additional gids, the way containerd resolves them: names are looked up in the image's
/etc/passwd and /etc/group, the user's groups from /etc/group are added, and HOME comes from the
passwd entry. Paths inside the rootfs are resolved without following a symlink out of it (an
image may ship /etc/passwd -> /etc/shadow-of-the-host style links), which `os.path.realpath`
would not guarantee.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class UserError(Exception):
    """The user or group is not in the image (the message is what the user sees)."""


@dataclass
class User:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def secure_join(root: Path, path: str) -> Path:
    """`path` inside `root`, following symlinks as if `root` were `/`."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise UserError(f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _entries(rootfs: Path, name: str) -> list[list[str]]:
    try:
        text = secure_join(rootfs, name).read_text(errors="replace")
    except (OSError, UserError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve(
    rootfs: Path,
    image_user: str,
    run_as_user: int | None,
    run_as_group: int | None,
    run_as_username: str,
    supplemental_groups: list[int],
) -> User:
    """The container's user: run_as_user wins over run_as_username, which wins over the image's
    USER ("name", "uid", "name:group", "uid:gid")."""
    spec = image_user
    if run_as_user is not None:
        spec = str(run_as_user)
    elif run_as_username:
        spec = run_as_username
    user_part, _, group_part = spec.partition(":")
    passwd = _entries(rootfs, "/etc/passwd")
    groups = _entries(rootfs, "/etc/group")
    user = User()
    entry = None
    if user_part.isdigit():
        user.uid = int(user_part)
        entry = next((e for e in passwd if len(e) >= 7 and e[2] == user_part), None)
    elif user_part:
        entry = next((e for e in passwd if len(e) >= 7 and e[0] == user_part), None)
        if entry is None:
            raise UserError(f"unable to find user {user_part}: no matching entries in passwd file")
        user.uid = int(entry[2])
    if entry is not None:
        user.gid = int(entry[3])
        user.home = entry[5] or "/"
    if group_part:
        if group_part.isdigit():
            user.gid = int(group_part)
        else:
            match = next((g for g in groups if len(g) >= 3 and g[0] == group_part), None)
            if match is None:
                raise UserError(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
            user.gid = int(match[2])
    if run_as_group is not None:
        user.gid = run_as_group
    name = entry[0] if entry is not None else ""
    extra: list[int] = []
    if name:
        for g in groups:
            if len(g) >= 4 and name in g[3].split(",") and g[2].isdigit():
                extra.append(int(g[2]))
    extra.extend(supplemental_groups)
    user.additional_gids = sorted({gid for gid in extra if gid != user.gid})
    return user
