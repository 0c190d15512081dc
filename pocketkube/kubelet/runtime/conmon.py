"""conmon, the monitor that stays with each runc container.

conmon runs `runc create`, then daemonizes: it is the container's parent (so the agent can
restart without killing anything), writes the container's stdout/stderr to the CRI log file,
keeps its stdin and pty, records the exit code in `<exit-dir>/<id>` and an `oom` file in the
bundle when the kernel OOM-kills it, and serves an attach socket. We learn the outcome of
`runc create` through conmon's sync pipe (`_OCI_SYNCPIPE`): one JSON line, {"data": <pid>} or
{"data": -1, "message": "<runc's error>"}.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

# conmon's control fifo messages, "<type> <height> <width>\n": 1 resizes the terminal, 2 makes
# conmon reopen the container's log file (the sizes are ignored), as CRI-O asks for it.
WIN_RESIZE_EVENT = 1
REOPEN_LOGS_EVENT = 2
REOPEN_TIMEOUT = 5.0
CREATE_TIMEOUT = 60.0


class ConmonError(Exception):
    """`runc create` failed; the message is runc's (or conmon's) error."""


@dataclass
class ConmonPaths:
    runc_root: Path
    exit_dir: Path
    socket_dir: Path


def error_text(message: str) -> str:
    # runc reports `time="..." level=error msg="runc create failed: ..."`; keep the msg part.
    marker = 'msg="'
    if marker in message:
        message = message.split(marker, 1)[1].rsplit('"', 1)[0]
    return message.replace('\\"', '"').strip()


async def start(
    *,
    conmon: str,
    runc: str,
    paths: ConmonPaths,
    container_id: str,
    name: str,
    bundle: Path,
    log_path: Path,
    tty: bool,
    stdin: bool,
    stdin_once: bool,
) -> int:
    """Start conmon for `bundle` (runc create); the container's pid once it is created."""
    read_fd, write_fd = os.pipe()
    argv = [
        conmon,
        "--api-version",
        "1",
        "-c",
        container_id,
        "-u",
        container_id,
        "-n",
        name,
        "-r",
        runc,
        "-b",
        str(bundle),
        "-p",
        str(bundle / "pid"),
        "--exit-dir",
        str(paths.exit_dir),
        "--socket-dir-path",
        str(paths.socket_dir),
        "-l",
        # No --log-size-max: conmon would start the file afresh past it and lose what was
        # logged; the agent's log manager (logrotation.py) rotates the file instead.
        f"k8s-file:{log_path}",
        "--runtime-arg",
        f"--root={paths.runc_root}",
        "--conmon-pidfile",
        str(bundle / "conmon.pid"),
        "--syslog=false",
    ]
    if tty:
        argv.append("-t")
    if stdin:
        argv.append("--stdin")
        if not stdin_once:
            argv.append("--leave-stdin-open")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "_OCI_SYNCPIPE": str(write_fd),
    }
    try:
        # stdio on /dev/null: the daemonized conmon must not hold a pipe of ours open.
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=bundle,
            env=env,
            pass_fds=(write_fd,),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
    )
    try:
        await proc.wait()
        raw = await asyncio.wait_for(reader.readline(), CREATE_TIMEOUT)
    finally:
        transport.close()
    line = raw.decode(errors="replace").strip()
    if not line:
        raise ConmonError(
            f"conmon exited with status {proc.returncode} before creating the container"
        )
    reply = json.loads(line)
    pid = int(reply.get("data", -1))
    if pid <= 0:
        raise ConmonError(error_text(reply.get("message") or "runc create failed"))
    return pid


def exit_code(paths: ConmonPaths, container_id: str) -> tuple[int, float] | None:
    """(exit code, time it was recorded) once conmon saw the container exit."""
    path = paths.exit_dir / container_id
    try:
        text = path.read_text().strip()
        stamp = path.stat().st_mtime
    except OSError:
        return None
    if not text:
        return None  # conmon creates the file before it writes the code
    return int(text), stamp


def oom_killed(bundle: Path) -> bool:
    return (bundle / "oom").exists()


def attach_dir(paths: ConmonPaths, container_id: str) -> Path:
    """The directory of the attach socket (conmon links it to the bundle)."""
    return paths.socket_dir / container_id


def cleanup(paths: ConmonPaths, container_id: str) -> None:
    for path in (paths.exit_dir / container_id, paths.socket_dir / container_id):
        path.unlink(missing_ok=True)


def _control(bundle: Path, event: int, a: int = 0, b: int = 0) -> None:
    """One message on conmon's control fifo ("<event> <arg> <arg>\\n"); OSError when nobody
    reads it (conmon is gone)."""
    fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, f"{event} {a} {b}\n".encode())
    finally:
        os.close(fd)


async def resize(bundle: Path, width: int, height: int) -> None:
    """Resize the container's pty through conmon's control fifo."""
    await asyncio.to_thread(_control, bundle, WIN_RESIZE_EVENT, height, width)


async def reopen_log(bundle: Path, log_path: Path) -> None:
    """Have conmon reopen the container's log after it was renamed away (log rotation).

    conmon writes a fresh file next to the log (`<log>.tmp`) and renames it over the log's path,
    so a log still in place would be emptied: only call this once it was moved. conmon exits if
    it cannot create the file, hence the directory is made first. Returns once the new file is
    there; raises OSError when conmon is gone (nobody reads the fifo) or does not answer."""

    def write() -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        _control(bundle, REOPEN_LOGS_EVENT)

    await asyncio.to_thread(write)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REOPEN_TIMEOUT
    while not await asyncio.to_thread(log_path.exists):
        if loop.time() >= deadline:
            raise TimeoutError(f"conmon did not reopen {log_path} in {REOPEN_TIMEOUT:g}s")
        await asyncio.sleep(0.01)
