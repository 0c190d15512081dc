"""exec and attach for runc containers.

- exec_sync (probes, hooks): `runc exec` with stdout and stderr on one pipe, killed at the
  timeout.
- exec without a terminal: `runc exec` with pipes; runc waits for the process and exits with
  its code.
- exec with a terminal: `runc exec -d --tty --console-socket`: runc sends the pty master over
  the console socket (SCM_RIGHTS) and leaves; the reaper helper (reaper.py) collects the exit
  code. Resizing is TIOCSWINSZ on the master.
- attach: conmon's attach socket (SOCK_SEQPACKET, `<bundle>/attach`). Every message from conmon
  is one read of the container's output, prefixed with one byte naming the pipe (2 stdout,
  3 stderr); what we send is written to the container's stdin as is. Resizing goes through
  conmon's control fifo.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
import termios
from dataclasses import dataclass
from pathlib import Path

from pocketkube.kubelet.runtime import conmon, stdio
from pocketkube.kubelet.runtime.interface import ExecResult, StreamSession

MAX_OUTPUT = 16 * 1024 * 1024  # the CRI's limit on exec_sync output
STDOUT_PIPE = 2
STDERR_PIPE = 3
CONSOLE_TIMEOUT = 30.0


class ExecError(Exception):
    """The exec could not start (the message is runc's)."""


@dataclass
class Target:
    runc: str
    runc_root: Path
    container_id: str
    bundle: Path


def _argv(
    t: Target,
    argv: list[str],
    pid_file: Path,
    *,
    tty: bool = False,
    console_socket: Path | None = None,
) -> list[str]:
    cmd = [t.runc, "--root", str(t.runc_root), "exec", "--pid-file", str(pid_file)]
    if tty:
        cmd.append("--tty")
    if console_socket is not None:
        cmd += ["--detach", "--console-socket", str(console_socket)]
    return cmd + [t.container_id] + argv


def _pid_file(t: Target) -> Path:
    return t.bundle / f"exec-{secrets.token_hex(6)}.pid"


async def _kill_from(pid_file: Path, done: asyncio.Future | None = None) -> None:
    """SIGKILL the exec'd process named in `pid_file`, waiting for runc to write it (runc writes
    it once the process runs) unless `done` says the exec already ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONSOLE_TIMEOUT
    while not pid_file.exists() and loop.time() < deadline:
        if done is not None and done.done():
            return
        await asyncio.sleep(0.01)
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


async def exec_sync(t: Target, argv: list[str], timeout: float) -> ExecResult:
    pid_file = _pid_file(t)
    proc = await asyncio.create_subprocess_exec(
        *_argv(t, argv, pid_file),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = bytearray()

    async def collect() -> int:
        while chunk := await proc.stdout.read(65536):
            if len(output) < MAX_OUTPUT:
                output.extend(chunk[: MAX_OUTPUT - len(output)])
        return await proc.wait()

    try:
        code = await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
    except TimeoutError:
        await _kill_from(pid_file)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
        raise TimeoutError(f"command {argv!r} timed out after {timeout}s") from None
    finally:
        pid_file.unlink(missing_ok=True)
    return ExecResult(exit_code=code, output=bytes(output))


async def _noresize(width: int, height: int) -> None:
    return None


async def exec_pipes(t: Target, argv: list[str], stdin: bool) -> StreamSession:
    pid_file = _pid_file(t)
    proc = await asyncio.create_subprocess_exec(
        *_argv(t, argv, pid_file),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    finished = asyncio.ensure_future(proc.wait())

    async def wait() -> int:
        code = await finished
        pid_file.unlink(missing_ok=True)
        return code

    async def close() -> None:
        if not finished.done():
            await _kill_from(pid_file, finished)
        stdio.close_writer(proc.stdin)
        await wait()

    return StreamSession(
        stdin=proc.stdin,
        stdout=proc.stdout,
        stderr=proc.stderr,
        wait=wait,
        resize=_noresize,
        close=close,
    )


async def _receive_pty(listener: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    with conn:
        while True:
            await stdio.wait_readable(conn)
            try:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            except BlockingIOError:
                continue
            if not fds:
                raise ExecError("runc sent no terminal")
            return fds[0]


async def exec_tty(t: Target, argv: list[str], stdin: bool) -> StreamSession:
    pid_file = _pid_file(t)
    tmp = Path(tempfile.mkdtemp(prefix="pocketkube-console-"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp / "sock"))
    listener.listen(1)
    listener.setblocking(False)
    helper = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pocketkube.kubelet.runtime.reaper",
        str(pid_file),
        "--",
        *_argv(t, argv, pid_file, tty=True, console_socket=tmp / "sock"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert helper.stderr is not None
    errors = asyncio.ensure_future(helper.stderr.read())
    receive = asyncio.ensure_future(_receive_pty(listener))
    exited = asyncio.ensure_future(helper.wait())
    try:
        await asyncio.wait(
            {receive, exited}, timeout=CONSOLE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        listener.close()
    if not receive.done() or receive.exception() is not None:
        receive.cancel()
        await _kill_from(pid_file, exited)
        await exited
        message = (await errors).decode(errors="replace").strip()
        shutil.rmtree(tmp, ignore_errors=True)
        pid_file.unlink(missing_ok=True)
        raise ExecError(message or f"runc exec failed with status {helper.returncode}")
    master = receive.result()
    reader, stop_reading = stdio.fd_reader(master)
    writer = await stdio.fd_writer(os.dup(master)) if stdin else None

    async def wait() -> int:
        return await exited

    async def resize(width: int, height: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    closed = False

    async def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if not exited.done():
            await _kill_from(pid_file, exited)
        await exited
        errors.cancel()
        stdio.close_writer(writer)
        stop_reading()
        os.close(master)
        pid_file.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)

    return StreamSession(
        stdin=writer, stdout=reader, stderr=None, wait=wait, resize=resize, close=close
    )


async def attach(t: Target, *, stdin: bool, tty: bool) -> StreamSession:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.setblocking(False)
    # Through the directory's /proc/self/fd entry: the bundle path may exceed sun_path's 108.
    dir_fd = os.open(t.bundle, os.O_PATH)
    try:
        await loop.sock_connect(sock, f"/proc/self/fd/{dir_fd}/attach")
    except OSError as exc:
        sock.close()
        raise ExecError(f"cannot attach to container {t.container_id}: {exc}") from exc
    finally:
        os.close(dir_fd)
    stdout = asyncio.StreamReader(limit=2**20)
    stderr = None if tty else asyncio.StreamReader(limit=2**20)

    async def pump() -> None:
        try:
            while data := await loop.sock_recv(sock, 65536):
                target = stderr if data[0] == STDERR_PIPE and stderr is not None else stdout
                target.feed_data(data[1:])
        except OSError:
            pass
        finally:
            for reader in (stdout, stderr):
                if reader is not None and not reader.at_eof():
                    reader.feed_eof()

    pumping = loop.create_task(pump())
    writer = None
    if stdin:

        def end_input() -> None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        writer, _ = await stdio.pumped_writer(lambda data: loop.sock_sendall(sock, data), end_input)

    async def wait() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(pumping)
        return None

    async def resize(width: int, height: int) -> None:
        if tty:
            with contextlib.suppress(OSError):
                await conmon.resize(t.bundle, width, height)

    async def close() -> None:
        stdio.close_writer(writer)
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
        sock.close()

    return StreamSession(
        stdin=writer, stdout=stdout, stderr=stderr, wait=wait, resize=resize, close=close
    )
