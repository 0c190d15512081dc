"""Named network namespaces for pod sandboxes, and TCP connections made from inside them.

A pod's network namespace is a file under /var/run/netns bind-mounted on the namespace, exactly
what `ip netns add` makes, so `ip netns exec`, runc (`"path": ...` in the OCI spec) and the CNI
plugins all see the same object. They are made the way iproute2 makes them, with the system
calls rather than an `ip` process per pod: /var/run/netns made a shared mount point (bind-mounted
onto itself first if it is not one) so the bind mounts propagate everywhere, then a thread of
its own unshares a new network namespace and bind-mounts it on the file, and ends there.
Deleting detaches the bind mount and removes the file, as `ip netns delete` does.

Python 3.11 has no `os.setns` nor `os.unshare`, so they go through libc via ctypes. Entering a
namespace runs in a thread of its own that always switches back to the agent's namespace; a
socket keeps the namespace it was created in, so the connected socket is handed back to asyncio
afterwards.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import socket
import threading
from pathlib import Path

from pocketkube.kubelet import mountcalls

log = logging.getLogger(__name__)

NETNS_DIR = Path("/var/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 0x100000
_libc = ctypes.CDLL(None, use_errno=True)
_shared_lock = threading.Lock()


class NetnsError(Exception):
    """A network namespace could not be created, deleted or entered."""


def netns_name(sandbox_id: str) -> str:
    """The namespace name of a sandbox: `pk-` and the first 12 characters of its id."""
    return f"pk-{sandbox_id[:12]}"


async def run(*argv: str) -> str:
    """Run a command; its stdout, or NetnsError with its stderr when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip()
        raise NetnsError(f"{' '.join(argv)}: {detail or f'exit status {proc.returncode}'}")
    return out.decode(errors="replace")


def _share_netns_dir() -> None:
    """Make NETNS_DIR a shared mount point, as `ip netns add` does before its first mount."""
    with _shared_lock:
        NETNS_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            mountcalls.mount("none", NETNS_DIR, "none", MS_SHARED | MS_REC)
            return
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: not a mount point yet
                raise
        mountcalls.mount(str(NETNS_DIR), NETNS_DIR, "none", MS_BIND | MS_REC)
        mountcalls.mount("none", NETNS_DIR, "none", MS_SHARED | MS_REC)


def _unshare_onto(path: Path) -> None:
    """In the calling thread, which must end afterwards: a new network namespace, bind-mounted
    on `path`."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    mountcalls.mount(own, path, "none", MS_BIND)


def _mounted(path: Path) -> bool:
    """Whether a namespace is bind-mounted on `path` (a file: os.path.ismount says no)."""
    try:
        return path.stat().st_dev != NETNS_DIR.stat().st_dev
    except OSError:
        return False


def _add(path: Path) -> None:
    _share_netns_dir()
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    failure: list[BaseException] = []

    def work() -> None:
        try:
            _unshare_onto(path)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            failure.append(exc)

    # A thread that ends right after: it is the one left in the new namespace.
    t = threading.Thread(target=work, name=f"netns-{path.name}", daemon=True)
    t.start()
    t.join()
    if failure:
        path.unlink(missing_ok=True)
        raise NetnsError(f"creating network namespace {path.name}: {failure[0]}")


async def create(name: str) -> str:
    """Create the named namespace (reusing it when it already exists); its path."""
    path = NETNS_DIR / name

    def make() -> None:
        if not _mounted(path):
            _add(path)

    try:
        await asyncio.to_thread(make)
    except OSError as e:
        raise NetnsError(f"creating network namespace {name}: {e}") from None
    return str(path)


async def delete(path: str) -> None:
    """Delete a namespace made by `create`; nothing to do when it is already gone."""
    p = Path(path)
    if p.parent != NETNS_DIR:
        if await asyncio.to_thread(p.exists):
            raise NetnsError(f"{path} is not a named network namespace under {NETNS_DIR}")
        return

    def remove() -> None:
        mountcalls.umount(p, mountcalls.MNT_DETACH)  # nothing mounted: a leftover file
        p.unlink(missing_ok=True)

    try:
        await asyncio.to_thread(remove)
    except OSError as e:
        raise NetnsError(f"deleting network namespace {p.name}: {e}") from None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _connect_inside(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """In the calling thread: enter `netns`, connect, switch back, return the socket."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            # Switching back cannot be skipped: this thread must not stay in the pod's network.
            _setns(own)
    finally:
        os.close(own)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_socket(netns: str, port: int, *, host: str = "127.0.0.1",
                         timeout: float = 10.0) -> socket.socket:  # fmt: skip
    """A TCP socket connected to host:port as seen from inside the namespace at `netns`."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(sock: socket.socket | None, exc: BaseException | None) -> None:
        if done.cancelled():
            if sock is not None:
                sock.close()
        elif exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(sock)  # type: ignore[arg-type]

    def work() -> None:
        try:
            sock = _connect_inside(netns, host, port, timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(deliver, None, exc)
        else:
            loop.call_soon_threadsafe(deliver, sock, None)

    # A fresh thread each time: a pool thread could be reused while inside the pod's namespace
    # if switching back ever failed.
    threading.Thread(target=work, name=f"netns-connect-{port}", daemon=True).start()
    return await done


async def open_connection(netns: str, port: int
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
    """asyncio streams over a TCP connection to 127.0.0.1:port inside the namespace."""
    sock = await connect_socket(netns, port)
    return await asyncio.open_connection(sock=sock)
