"""Named network namespaces for pod sandboxes, and TCP connections made from inside them.

A pod's network namespace is a file under /var/run/netns bind-mounted on the namespace, exactly
what `ip netns add` makes, so `ip netns exec`, runc (`"path": ...` in the OCI spec) and the CNI
plugins all see the same object. iproute2 itself creates and deletes them: it also prepares the
shared mount propagation of /var/run/netns that keeps the bind mounts visible everywhere.

Python 3.11 has no `os.setns`, so entering a namespace goes through libc's setns(2) via ctypes.
It runs in a thread of its own that always switches back to the agent's namespace; a socket keeps
the namespace it was created in, so the connected socket is handed back to asyncio afterwards.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)

NETNS_DIR = Path("/var/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


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


async def create(name: str) -> str:
    """Create the named namespace (reusing it when it already exists); its path."""
    path = NETNS_DIR / name
    if await asyncio.to_thread(os.path.ismount, path):
        return str(path)
    await run("ip", "netns", "add", name)
    return str(path)


async def delete(path: str) -> None:
    """Delete a namespace made by `create`; nothing to do when it is already gone."""
    p = Path(path)
    if not await asyncio.to_thread(p.exists):
        return
    if p.parent != NETNS_DIR:
        raise NetnsError(f"{path} is not a named network namespace under {NETNS_DIR}")
    if await asyncio.to_thread(os.path.ismount, p):
        await run("ip", "netns", "delete", p.name)
    else:  # a leftover file from an interrupted `ip netns add`
        await asyncio.to_thread(p.unlink, True)


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
