"""The per-container supervisor of the process runtime (the role conmon plays for runc):
`python -m pocketkube.kubelet.runtime.process_shim <container dir>`.

It runs in its own session, apart from the agent, so a container outlives an agent restart and
keeps being logged. It starts the container's process (in a session and process group of its
own, on a pty when the spec asks for a TTY), copies stdout/stderr into the CRI log file, serves
attach on `attach.sock`, and records the exit code in `exit.json` when the process ends — after
killing whatever is left in the process group, as the end of a container's pid 1 ends the rest.

The attach socket speaks one line of header, then raw bytes: `stdout` or `stderr` (receive that
stream's live output until the container exits), `stdin` (bytes go to the process's stdin; EOF
closes it for a stdinOnce container), `resize <width> <height>` (set the pty's window size),
`reopen-log` (write the CRI log to a new file at its path from now on, after the log manager
renamed the old one to rotate it; answered with one line, `ok` or `error <message>`).

It reports to the agent on its stdout, inherited as a pipe: `started <pid>` or
`error <message>`, then detaches from the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pty
import signal
import struct
import sys
import termios
import time
from pathlib import Path

from pocketkube.kubelet.runtime.process_state import (
    CriLog,
    exit_code_of,
    proc_start_ticks,
    read_json,
    write_json,
)

log = logging.getLogger("pocketkube.kubelet.runtime.process_shim")

# A subscriber whose socket buffers more than this is too slow to follow the output: dropped.
MAX_SUBSCRIBER_BUFFER = 4 * 1024 * 1024


def _set_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_winsize(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class Shim:
    def __init__(self, cdir: Path, spec: dict) -> None:
        self.cdir = cdir
        self.spec = spec
        log_path = spec.get("log_path")
        self.log = CriLog(Path(log_path) if log_path else None)
        self.subscribers: dict[str, set[asyncio.StreamWriter]] = {"stdout": set(), "stderr": set()}
        self.stdin: asyncio.StreamWriter | None = None
        self.master = -1
        self.stdin_used = False
        self.dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY)

    def sock_path(self) -> str:
        # Through the directory's fd: a socket path must be shorter than 108 bytes.
        return f"/proc/self/fd/{self.dirfd}/attach.sock"

    async def spawn(self) -> asyncio.subprocess.Process:
        spec = self.spec
        kw: dict = {"env": dict(spec["env"]), "cwd": spec["cwd"], "start_new_session": True}
        if spec.get("tty"):
            self.master, slave = pty.openpty()
            kw.update(stdin=slave, stdout=slave, stderr=slave, preexec_fn=_set_controlling_tty)
            try:
                proc = await asyncio.create_subprocess_exec(spec["exe"], *spec["argv"][1:], **kw)
            finally:
                os.close(slave)
            if spec.get("stdin"):
                loop = asyncio.get_running_loop()
                transport, protocol = await loop.connect_write_pipe(
                    asyncio.streams.FlowControlMixin, os.fdopen(os.dup(self.master), "wb", 0)
                )
                self.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        else:
            stdin = asyncio.subprocess.PIPE if spec.get("stdin") else asyncio.subprocess.DEVNULL
            proc = await asyncio.create_subprocess_exec(
                spec["exe"], *spec["argv"][1:], stdin=stdin, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, **kw,
            )  # fmt: skip
            self.stdin = proc.stdin
        return proc

    def publish(self, stream: str, data: bytes) -> None:
        self.log.write(stream, data)
        for writer in list(self.subscribers[stream]):
            if writer.transport.get_write_buffer_size() > MAX_SUBSCRIBER_BUFFER:
                self.subscribers[stream].discard(writer)
                writer.close()
            else:
                writer.write(data)

    async def copy(self, stream: str, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            self.publish(stream, data)

    async def copy_pty(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ready = loop.create_future()
            loop.add_reader(self.master, lambda f=ready: f.done() or f.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(self.master)
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the pty's other side is gone
                return
            if not data:
                return
            self.publish("stdout", data)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = (await reader.readline()).decode(errors="replace").split()
            if not header:
                writer.close()
            elif header[0] in self.subscribers and not (
                self.spec.get("tty") and header[0] == "stderr"
            ):
                # Until the client goes; the stream's end closes it when the process ends.
                self.subscribers[header[0]].add(writer)
                while await reader.read(65536):
                    pass
                self.subscribers[header[0]].discard(writer)
            elif header[0] == "stdin":
                await self.pump_stdin(reader)
                writer.close()
            elif header[0] == "reopen-log":
                writer.write(self.reopen_log())
                await writer.drain()
                writer.close()
            elif header[0] == "resize" and len(header) == 3 and self.master >= 0:
                set_winsize(self.master, int(header[1]), int(header[2]))
                writer.close()
            else:
                writer.close()
        except (OSError, ValueError) as exc:
            log.debug("attach client: %s", exc)
            writer.close()

    def reopen_log(self) -> bytes:
        """The answer to `reopen-log`: "ok" once new output goes to a new file at the path."""
        try:
            self.log.reopen()
        except OSError as exc:
            return f"error {exc.strerror or exc}\n".encode()
        return b"ok\n"

    async def pump_stdin(self, reader: asyncio.StreamReader) -> None:
        if self.stdin is None:
            return
        self.stdin_used = True
        while data := await reader.read(65536):
            if self.stdin is None:
                return
            self.stdin.write(data)
            await self.stdin.drain()
        if self.spec.get("stdin_once") and self.stdin is not None:
            if self.spec.get("tty"):
                self.stdin.write(b"\x04")  # end of input on a terminal
            else:
                self.stdin.close()
                self.stdin = None

    async def run(self, report: int) -> int:
        try:
            proc = await self.spawn()
        except OSError as exc:
            os.write(report, f"error {exc.strerror or exc}\n".encode())
            return 1
        started = {
            "pid": proc.pid,
            "start_ticks": proc_start_ticks(proc.pid),
            "shim_pid": os.getpid(),
            "shim_start_ticks": proc_start_ticks(os.getpid()),
            "started_at": time.time(),
        }
        write_json(self.cdir / "started.json", started)
        server = await asyncio.start_unix_server(self.client, path=self.sock_path())
        os.write(report, f"started {proc.pid}\n".encode())
        os.close(report)
        if self.spec.get("tty"):
            copiers = [asyncio.create_task(self.copy_pty())]
        else:
            copiers = [asyncio.create_task(self.copy("stdout", proc.stdout)),  # type: ignore[arg-type]
                       asyncio.create_task(self.copy("stderr", proc.stderr))]  # type: ignore[arg-type]  # fmt: skip
        returncode = await proc.wait()
        finished = time.time()
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # the rest of the container's processes
        # Output still buffered in the pipes is copied; a descendant that escaped the process
        # group and keeps them open is not waited for.
        _, pending = await asyncio.wait(copiers, timeout=2)
        for task in pending:
            task.cancel()
        self.log.close()
        write_json(self.cdir / "exit.json", {"exit_code": exit_code_of(returncode),
                                              "finished_at": finished})  # fmt: skip
        server.close()
        for writers in self.subscribers.values():
            for w in writers:
                w.close()
        with contextlib.suppress(OSError):
            os.unlink(self.sock_path())
        return 0


def main() -> int:
    cdir = Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = read_json(cdir / "spec.json")
    if spec is None:
        os.write(1, f"error cannot read {cdir / 'spec.json'}\n".encode())
        return 1
    # The report pipe moves off fd 1, and fd 1 goes to /dev/null: when the agent stops reading,
    # nothing here blocks or dies of SIGPIPE.
    report = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return asyncio.run(Shim(cdir, spec).run(report))


if __name__ == "__main__":
    sys.exit(main())
