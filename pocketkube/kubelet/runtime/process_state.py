"""On-disk state of the process runtime, shared by the runtime and its per-container supervisor
(process_shim.py), plus the CRI log file writer.

A container is a directory `<root>/containers/<id>/`:
  config.json   what create_container recorded (argv, env, log path, sandbox, ...)
  spec.json     what the supervisor runs (resolved executable, env, cwd, stdin/tty)
  started.json  written by the supervisor once the process runs (pids and /proc start times)
  exit.json     written when it ended (exit code, time, reason)
  attach.sock   the supervisor's socket for attach (live output, stdin, resize)
Everything a restarted agent needs is there, so adopting running containers is just reading it.
A pid alone is not an identity (pids are reused), so every pid is stored with the process's
start time from /proc/<pid>/stat.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pocketkube.kubelet.runtime.interface import ContainerStatus

# The longest line kept whole in the log; longer ones are split into partial (P) records, as
# containerd does with its 16 KiB buffer.
MAX_LOG_LINE = 16 * 1024
# containerd's exit code when a container's end was not observed.
UNKNOWN_EXIT_CODE = 255


class ContainerError(RuntimeError):
    """A container cannot be started or exec'd into; the message is what the user sees."""


def write_json(path: Path, data: Any) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state); starttime is field 22.
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, ticks: int | None) -> bool:
    """Whether `pid` still is the process that had start time `ticks`."""
    return pid > 0 and ticks is not None and proc_start_ticks(pid) == ticks


def _running(started: dict) -> bool:
    """Whether the supervisor, or at least the container's process, still runs."""
    return alive(started["shim_pid"], started.get("shim_start_ticks")) or alive(
        started["pid"], started.get("start_ticks")
    )


def read_status(cdir: Path, cid: str) -> ContainerStatus | None:
    """The container's status from its directory (None when there is no such container)."""
    config = read_json(cdir / "config.json")
    if config is None:
        return None
    st = ContainerStatus(
        id=cid, sandbox_id=config["sandbox_id"], name=config["name"],
        attempt=config["attempt"], state="created", created_at=config["created_at"],
        image_id=config["image_id"], image_ref=config["image_ref"],
        log_path=config["log_path"] or "", labels=config["labels"],
    )  # fmt: skip
    started = read_json(cdir / "started.json")
    exited = read_json(cdir / "exit.json")
    if started:
        st.started_at, st.pid = started["started_at"], started["pid"]
    if exited is None and started is not None and not _running(started):
        # The supervisor died without recording the end (killed, or the machine rebooted);
        # recorded once so the finish time stays put.
        exited = {"exit_code": UNKNOWN_EXIT_CODE, "finished_at": time.time(),
                  "message": "the container's supervisor ended without its exit status"}  # fmt: skip
        write_json(cdir / "exit.json", exited)
    if exited is not None:
        st.state = "exited"
        st.pid = 0
        st.exit_code = exited["exit_code"]
        st.finished_at = exited["finished_at"]
        st.reason = exited.get("reason") or ("Completed" if st.exit_code == 0 else "Error")
        st.message = exited.get("message", "")
    elif started is not None:
        st.state = "running"
    return st


def resolve(config: dict, fallback_cwd: Path) -> tuple[str, dict[str, str], str]:
    """(executable, environment, working directory) of a container's argv on this host:
    argv[0] looked up on the host PATH, exactly the container's env, its working dir when the
    host has it. Raises ContainerError with runc's wording when there is nothing to run."""
    argv = config["argv"]
    if not argv:
        raise ContainerError("no command specified")
    env = dict(config["env"])
    exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=os.environ.get("PATH"))
    if exe is None or not os.path.isfile(exe):
        raise ContainerError(f'exec: "{argv[0]}": executable file not found in $PATH')
    if not os.access(exe, os.X_OK):
        raise ContainerError(f'exec: "{argv[0]}": permission denied')
    wd = config["working_dir"]
    cwd = wd if wd and os.path.isdir(wd) else str(fallback_cwd)
    os.makedirs(cwd, exist_ok=True)
    return exe, env, cwd


def exit_code_of(returncode: int) -> int:
    """A wait status as container runtimes report it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def rfc3339nano(ns: int) -> str:
    """UTC time with nanoseconds, the timestamp of CRI log records."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


class CriLog:
    """Appends output to a CRI-format log file: one record per line,
    `<RFC3339Nano time> <stdout|stderr> <F|P> <content>`; P marks a line continued in the next
    record (a line longer than MAX_LOG_LINE), F a complete one. A stream that ends without a
    newline has its last bytes written as an F record, as containerd does."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.fd = -1
        if path is not None:
            self.fd = self._open(path)
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    @staticmethod
    def _open(path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def reopen(self) -> None:
        """Write to a file at the log path from now on (the old one was renamed away to rotate
        it); a file still there is appended to. Raises OSError once closed or when the file
        cannot be made."""
        if self.path is None:
            return
        if self.fd < 0:
            raise OSError(f"the log {self.path} is closed")
        fd = self._open(self.path)
        self.fd, old = fd, self.fd
        os.close(old)

    def _record(self, stream: str, tag: str, content: bytes) -> bytes:
        return f"{rfc3339nano(time.time_ns())} {stream} {tag} ".encode() + content + b"\n"

    def write(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream] + data
        out = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl > MAX_LOG_LINE:
                if len(buf) >= MAX_LOG_LINE:
                    out.append(self._record(stream, "P", buf[:MAX_LOG_LINE]))
                    buf = buf[MAX_LOG_LINE:]
                    continue
                break
            out.append(self._record(stream, "F", buf[:nl]))
            buf = buf[nl + 1 :]
        self._pending[stream] = buf
        self._emit(b"".join(out))

    def flush_partial(self) -> None:
        out = b"".join(self._record(s, "F", b) for s, b in self._pending.items() if b)
        self._pending = {"stdout": b"", "stderr": b""}
        self._emit(out)

    def _emit(self, data: bytes) -> None:
        if data and self.fd >= 0:
            os.write(self.fd, data)

    def close(self) -> None:
        self.flush_partial()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
