"""asyncio streams over the file descriptors of exec and attach sessions.

A StreamSession hands out asyncio StreamReader/StreamWriter objects, but a pty master and conmon's
SOCK_SEQPACKET attach socket are not what asyncio's stream helpers accept (a pty master reports
EIO, not EOF, once the last process closes the terminal, and asyncio only wraps SOCK_STREAM
sockets). These adapters pump such descriptors into ordinary streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Awaitable, Callable

CHUNK = 32 * 1024


def fd_reader(fd: int) -> tuple[asyncio.StreamReader, Callable[[], None]]:
    """A StreamReader fed from non-blocking `fd` (EIO counts as EOF) and a function that
    stops reading (the fd stays open)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    os.set_blocking(fd, False)
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            loop.remove_reader(fd)
            if not reader.at_eof():
                reader.feed_eof()

    def readable() -> None:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EBADF):
                reader.set_exception(exc)
            data = b""
        if data:
            reader.feed_data(data)
        else:
            stop()

    loop.add_reader(fd, readable)
    return reader, stop


async def fd_writer(fd: int) -> asyncio.StreamWriter:
    """A StreamWriter over `fd` (a pipe, pty master or socket); closing it closes `fd`."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", 0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def pumped_writer(
    send: Callable[[bytes], Awaitable[None]], on_eof: Callable[[], None]
) -> tuple[asyncio.StreamWriter, asyncio.Task]:
    """A StreamWriter whose bytes go to `send` (one call per chunk written); `on_eof` runs when
    the writer is closed. Built on a pipe so callers get a real StreamWriter."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    writer = await fd_writer(write_fd)
    reader, stop = fd_reader(read_fd)

    async def pump() -> None:
        try:
            while chunk := await reader.read(CHUNK):
                await send(chunk)
        except (OSError, ConnectionError):
            pass
        finally:
            stop()
            os.close(read_fd)
            on_eof()

    return writer, loop.create_task(pump())


async def wait_readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        loop.remove_reader(sock.fileno())


def close_writer(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
