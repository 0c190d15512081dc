"""mount(2) and umount2(2) through libc, for the runtime's root filesystems and /dev/shm and the
volume manager's tmpfs volumes.

Running the `mount` command costs a fork and exec from the agent's event loop plus the command's
own start-up (libmount reads mountinfo and fstab), and a pod start makes several mounts; the
system call itself takes microseconds. Python has no binding for either call, hence ctypes. The
calls block, so callers run them in a worker thread (asyncio.to_thread). A failure comes back as
OSError with the errno; the callers then run the command after all, so the error people read is
the one `mount` prints (and, for volumes, the text kube's mount utility reports).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MNT_DETACH = 0x2


def _check(result: int, what: str, path: Path | str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", str(path))


def mount(source: str, target: Path | str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2): `fstype` from `source` at `target` with `data` as its options."""
    _check(_libc.mount(source.encode(), os.fsencode(target), fstype.encode(), flags,
                       data.encode() if data else None), "mount", target)


def umount(target: Path | str, flags: int = 0) -> bool:
    """umount2(2); False when nothing is mounted there (or the path is gone)."""
    if _libc.umount2(os.fsencode(target), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return False
    raise OSError(err, f"umount: {os.strerror(err)}", str(target))


def unmount_or_detach(target: Path | str) -> str:
    """Unmount `target`, detaching it lazily when busy: "unmounted", "detached" or
    "not mounted". Raises OSError for anything else."""
    try:
        return "unmounted" if umount(target) else "not mounted"
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
    return "detached" if umount(target, MNT_DETACH) else "not mounted"
