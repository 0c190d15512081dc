"""hostPath volumes (kube's `pkg/volume/hostpath`): the host path itself, after the type check
the volume asks for, with kube's messages (`hostPath type check failed: /x is not a directory,
it's a file`). DirectoryOrCreate makes the directory (0755), FileOrCreate an empty file (0644).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pocketkube.kubelet.volumes.common import SetupError

_EXPECTED = {"Directory": "directory", "File": "file", "Socket": "socket file",
             "CharDevice": "character device", "BlockDevice": "block device"}


def _file_type(path: str) -> str:
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return "Directory"
    if stat.S_ISREG(mode):
        return "File"
    if stat.S_ISSOCK(mode):
        return "Socket"
    if stat.S_ISCHR(mode):
        return "CharDevice"
    if stat.S_ISBLK(mode):
        return "BlockDevice"
    raise OSError(f"only recognise file, directory, socket, block device and character "
                  f"device: {path}")


def _matches(path: str, expected: str) -> None:
    if not os.path.exists(path):
        raise SetupError(f"hostPath {path} doesn't exist")
    description = _EXPECTED[expected]
    try:
        actual = _file_type(path)
    except OSError as e:
        raise SetupError(f"hostPath type check failed, {path} is not a {description}, unable "
                         f"to determine its type: {e}") from None
    if actual != expected:
        raise SetupError(f"hostPath type check failed: {path} is not a {description}, "
                         f"it's a {actual}")


def check(path: str, path_type: str) -> None:
    """`checkType` for one of the HostPathType values ("" skips the check)."""
    if path_type == "DirectoryOrCreate":
        if not os.path.exists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        _matches(path, "Directory")
    elif path_type == "FileOrCreate":
        if not os.path.exists(path):
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
        _matches(path, "File")
    elif path_type in _EXPECTED:
        _matches(path, path_type)
    elif path_type:
        raise SetupError(f"{path_type} is an invalid volume type")


def setup(volume: dict[str, Any]) -> Path:
    src = volume.get("hostPath") or {}
    path = str(src.get("path", ""))
    if ".." in path.split("/"):
        raise SetupError(f"invalid HostPath `{path}`: must not contain '..'")
    check(path, src.get("type") or "")
    return Path(path)
