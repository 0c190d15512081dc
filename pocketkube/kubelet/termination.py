"""Reading a finished container's termination message (kube's kuberuntime_container.go
getTermMessage / readLastStringFromContainerLogs): the file the container wrote at its
terminationMessagePath (at most 4096 bytes), or, with terminationMessagePolicy
FallbackToLogsOnError and a failure exit, the tail of its log (last 80 lines, at most 2048
bytes). Blocking file reads: callers run these in a worker thread.
"""

from __future__ import annotations

from pathlib import Path

from pocketkube.kubelet.containers import (
    LABEL_TERMINATION_HOST_PATH,
    LABEL_TERMINATION_POLICY,
)
from pocketkube.kubelet.runtime.interface import ContainerStatus

MAX_MESSAGE = 4096
MAX_LOG_LINES = 80
MAX_LOG_BYTES = 2048


def _read_tail(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - limit))
        return f.read()


def log_tail(path: Path, lines: int = MAX_LOG_LINES, limit: int = MAX_LOG_BYTES) -> str:
    """The last `lines` lines of a CRI-format log ("<time> <stream> <P|F> <text>"), joined as
    the container wrote them, cut to the last `limit` bytes."""
    try:
        raw = _read_tail(path, 256 * 1024)
    except OSError as e:
        return f"Error on reading termination message from logs: {e}"
    out: list[str] = []
    partial = ""
    for line in raw.decode(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else ""
        if parts[2] == "P":
            partial += text
            continue
        out.append(partial + text + "\n")
        partial = ""
    if partial:
        out.append(partial)
    data = "".join(out[-lines:]).encode()
    return data[-limit:].decode(errors="replace")


def termination_message(status: ContainerStatus) -> str:
    policy = status.labels.get(LABEL_TERMINATION_POLICY, "File")
    fallback = policy == "FallbackToLogsOnError" and status.exit_code != 0
    host_path = status.labels.get(LABEL_TERMINATION_HOST_PATH)
    message = ""
    if host_path:
        path = Path(host_path)
        try:
            message = _read_tail(path, MAX_MESSAGE).decode(errors="replace")
        except FileNotFoundError:
            message = ""
        except OSError as e:
            return f"Error on reading termination log {path}: {e}"
    if not message and fallback and status.log_path:
        message = log_tail(Path(status.log_path))
    return message
