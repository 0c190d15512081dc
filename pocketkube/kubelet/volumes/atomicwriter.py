"""Kube's atomic writer (`pkg/volume/util/atomic_writer.go`) for configMap, secret, downwardAPI
and projected volumes, so a reader inside a container never sees half of an update:

    <dir>/..2026_01_02_15_04_05.123456789/   the payload, one timestamped directory per version
    <dir>/..data -> ..2026_01_02_15_04_05.123456789
    <dir>/key    -> ..data/key               user-visible names, symlinks through ..data

An update writes a fresh timestamped directory, points `..data_tmp` at it and renames that over
`..data` (rename(2) replaces a symlink atomically), adds symlinks for new top-level names,
removes those no longer in the payload, then deletes the old directory. A payload equal to what
is on disk (content and mode) writes nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from pocketkube.kubelet.volumes.common import Payload, SetupError

log = logging.getLogger("pocketkube.kubelet.volumes")

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"
MAX_PATH_LEN = 4096
MAX_FILE_NAME_LEN = 255


def validate_path(path: str) -> str:
    """`validatePath`: relative, no `..` element, not starting with `..`; returns it cleaned."""
    if not path:
        raise SetupError("invalid path: must not be empty")
    if len(path) > MAX_PATH_LEN:
        raise SetupError(f"invalid path: must be less than or equal to {MAX_PATH_LEN} characters")
    if path.startswith("/"):
        raise SetupError("invalid path: must be relative path")
    parts = path.split("/")
    if ".." in parts:
        raise SetupError("invalid path: must not contain '..'")
    if path.startswith(".."):
        raise SetupError("invalid path: must not start with '..'")
    for part in parts:
        if len(part) > MAX_FILE_NAME_LEN:
            raise SetupError(f"invalid path: filenames must be less than or equal to "
                             f"{MAX_FILE_NAME_LEN} characters")
    return os.path.normpath(path)


def _ts_dir_name() -> str:
    now = time.time_ns()
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(now // 1_000_000_000))
    return f"..{stamp}.{secrets.randbelow(10**9):09d}"


def _files_under(root: Path) -> set[str]:
    """Relative paths of every file and directory under root."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            out.add(name if rel == "." else os.path.join(rel, name))
    return out


def _unchanged(payload: Payload, ts_dir: Path) -> bool:
    for rel, proj in payload.items():
        p = ts_dir / rel
        try:
            st = p.lstat()
            if (st.st_mode & 0o7777) != proj.mode or p.read_bytes() != proj.data:
                return False
        except OSError:
            return False
    return True


def write(target: Path, payload: Payload) -> bool:
    """Make `target` hold exactly `payload`; returns whether anything was written."""
    clean: Payload = {validate_path(rel): proj for rel, proj in payload.items()}
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA_DIR
    old_ts = ""
    if data_link.is_symlink():
        old_ts = os.readlink(data_link)
    old_ts_path = target / old_ts if old_ts else None

    wanted: set[str] = set()
    for rel in clean:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            wanted.add("/".join(parts[:i]))
    to_remove: set[str] = set()
    if old_ts_path is not None and old_ts_path.is_dir():
        to_remove = _files_under(old_ts_path) - wanted
        if not to_remove and _unchanged(clean, old_ts_path):
            return False

    ts_name = _ts_dir_name()
    ts_path = target / ts_name
    ts_path.mkdir(mode=0o755)
    ts_path.chmod(0o755)
    for rel, proj in clean.items():
        dest = ts_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, proj.mode)
        try:
            os.write(fd, proj.data)
        finally:
            os.close(fd)
        os.chmod(dest, proj.mode)

    tmp_link = target / DATA_DIR_TMP
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(ts_name, tmp_link)
    os.rename(tmp_link, data_link)

    for top in {rel.split("/")[0] for rel in clean}:
        visible = target / top
        if not visible.is_symlink() and not visible.exists():
            os.symlink(os.path.join(DATA_DIR, top), visible)
    for rel in to_remove:
        if "/" in rel or rel in {r.split("/")[0] for r in clean}:
            continue
        visible = target / rel
        if visible.is_symlink():
            visible.unlink()
    if old_ts_path is not None and old_ts_path.exists() and old_ts != ts_name:
        shutil.rmtree(old_ts_path, ignore_errors=True)
    log.debug("wrote %d files to %s (%s)", len(clean), target, ts_name)
    return True
