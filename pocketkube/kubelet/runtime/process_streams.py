"""Interactive streams of the process runtime: exec sessions (pipes, or a pty with a TTY),
attach sessions over the supervisor's socket, and waiting for a process that is not our child.

asyncio's pipe transports report EIO when the last holder of a pty's other side closes it; for a
terminal that is the normal end of output, so the read side turns it into EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pty
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from pocketkube.kubelet.runtime.interface import ExecResult, StreamSession
from pocketkube.kubelet.runtime.process_shim import _set_controlling_tty, set_winsize
from pocketkube.kubelet.runtime.process_state import exit_code_of

# Output kept from exec_sync (probes and hooks read far less).
MAX_EXEC_OUTPUT = 1024 * 1024


class _EioIsEof(asyncio.StreamReaderProtocol):
    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


async def pty_streams(master: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Reader and writer over a pty master (each on its own duplicate of the fd)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: _EioIsEof(reader), os.fdopen(os.dup(master), "rb", 0))
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(master), "wb", 0)
    )
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


async def wait_pid(pid: int, still_same: Callable[[], bool], timeout: float | None) -> bool:
    """Wait until `pid` (any process, not only a child) exits: True if it did within `timeout`.
    `still_same` confirms, once a pidfd holds the process, that the pid was not reused."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return True
    loop = asyncio.get_running_loop()
    try:
        if not still_same():
            return True
        done = loop.create_future()
        loop.add_reader(fd, lambda: done.done() or done.set_result(None))
        try:
            await asyncio.wait_for(done, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_sync(exe: str, argv: list[str], env: dict[str, str], cwd: str,
                   timeout: float) -> ExecResult:  # fmt: skip
    """Run argv to its end (stdout and stderr together, capped); TimeoutError after `timeout`
    seconds (0: no limit). Whatever it left in its process group is killed afterwards."""
    proc = await asyncio.create_subprocess_exec(
        exe, *argv[1:], env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    stdout = proc.stdout
    assert stdout is not None

    async def collect() -> bytes:
        chunks, size = [], 0
        while data := await stdout.read(65536):
            if size < MAX_EXEC_OUTPUT:
                chunks.append(data[: MAX_EXEC_OUTPUT - size])
                size += len(chunks[-1])
        await proc.wait()
        return b"".join(chunks)

    try:
        output = await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise TimeoutError(f"command {argv!r} timed out after {timeout}s") from None
    _kill_group(proc.pid)
    return ExecResult(exit_code=exit_code_of(proc.returncode or 0), output=output)


async def exec_session(exe: str, argv: list[str], env: dict[str, str], cwd: str, *,
                       stdin: bool, tty: bool) -> StreamSession:  # fmt: skip
    """Start argv as an interactive process in its own session; the session's streams."""
    kw: dict = {"env": env, "cwd": cwd, "start_new_session": True}
    master = -1
    if tty:
        master, slave = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                exe, *argv[1:], stdin=slave, stdout=slave, stderr=slave,
                preexec_fn=_set_controlling_tty, **kw,
            )  # fmt: skip
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        out, writer = await pty_streams(master)
        session_stdin, err = (writer if stdin else None), None
        if not stdin:
            writer.close()
    else:
        proc = await asyncio.create_subprocess_exec(
            exe, *argv[1:], stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kw,
        )  # fmt: skip
        out, err, session_stdin = proc.stdout, proc.stderr, proc.stdin

    async def wait() -> int:
        return exit_code_of(await proc.wait())

    async def resize(width: int, height: int) -> None:
        if master >= 0:
            set_winsize(master, width, height)

    async def close() -> None:
        nonlocal master
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
        if session_stdin is not None:
            session_stdin.close()
        if master >= 0:
            os.close(master)
            master = -1

    return StreamSession(stdin=session_stdin, stdout=out, stderr=err, wait=wait,
                         resize=resize, close=close)  # fmt: skip


async def attach_session(cdir: Path, *, stdin: bool, tty: bool,
                         ended: Callable[[], Awaitable[None]]) -> StreamSession:  # fmt: skip
    """Attach to a running container through its supervisor's socket. `ended` waits for the
    container to exit; the session's wait() returns (None) then or when it is closed."""
    dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY)
    path = f"/proc/self/fd/{dirfd}/attach.sock"
    writers: list[asyncio.StreamWriter] = []

    async def open_stream(header: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_unix_connection(path)
        writers.append(writer)
        writer.write(header.encode() + b"\n")
        await writer.drain()
        return reader, writer

    try:
        out, _ = await open_stream("stdout")
        err = None if tty else (await open_stream("stderr"))[0]
        session_stdin = (await open_stream("stdin"))[1] if stdin else None
    except BaseException:
        for w in writers:
            w.close()
        os.close(dirfd)
        raise
    closed = asyncio.Event()

    async def wait() -> None:
        ending = asyncio.ensure_future(ended())
        closing = asyncio.ensure_future(closed.wait())
        try:
            await asyncio.wait([ending, closing], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            closing.cancel()
        return None

    async def resize(width: int, height: int) -> None:
        if tty and not closed.is_set():
            reader, writer = await open_stream(f"resize {int(width)} {int(height)}")
            await reader.read()  # the supervisor closes the connection once the size is set
            writer.close()
            writers.remove(writer)

    async def close() -> None:
        if closed.is_set():
            return
        closed.set()
        for w in writers:
            w.close()
        os.close(dirfd)

    return StreamSession(stdin=session_stdin, stdout=out, stderr=err, wait=wait,
                         resize=resize, close=close)  # fmt: skip


async def reopen_log(cdir: Path) -> None:
    """Ask a running container's supervisor to reopen its log file (log rotation). Raises
    OSError when it cannot be reached or answers with an error."""
    dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY)
    try:
        reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{dirfd}/attach.sock")
        try:
            writer.write(b"reopen-log\n")
            await writer.drain()
            answer = (await asyncio.wait_for(reader.readline(), 10)).decode(errors="replace")
        finally:
            writer.close()
    finally:
        os.close(dirfd)
    if answer.strip() != "ok":
        raise OSError(answer.strip().removeprefix("error ") or "the supervisor did not answer")
