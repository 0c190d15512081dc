"""What the runc runtime remembers about each sandbox and container, on disk.

One `state.json` per sandbox or container, in its bundle directory, holding its configuration
and what happened to it (pid, times, exit code, reason). An agent that restarts reads them back
and finds the containers still running under their conmon. Writes are atomic (temporary file and
rename) so a crash never leaves half a record.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

STATE_FILE = "state.json"


@dataclass
class Record:
    id: str
    kind: str  # "sandbox" | "container"
    sandbox_id: str
    name: str
    pod_uid: str
    namespace: str
    state: str = "created"  # created | running | exited
    attempt: int = 0
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image_id: str = ""
    image_ref: str = ""
    log_path: str = ""
    pid: int = 0
    pid_start: int = 0  # the process's start time (/proc/<pid>/stat), guards against pid reuse
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    tty: bool = False
    stdin: bool = False
    cgroups_path: str = ""
    # sandboxes only
    netns: str = ""
    ips: list[str] = field(default_factory=list)
    host_network: bool = False
    ports: list[dict] = field(default_factory=list)
    sandbox_config: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def save(directory: Path, record: Record) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{STATE_FILE}.tmp"
    tmp.write_text(record.to_json())
    os.replace(tmp, directory / STATE_FILE)


def load_all(parent: Path) -> list[tuple[Path, Record]]:
    """Every record under `parent/<id>/state.json` (unreadable ones are skipped)."""
    result = []
    if not parent.is_dir():
        return result
    for directory in sorted(parent.iterdir()):
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads((directory / STATE_FILE).read_text())
            result.append((directory, Record.from_dict(data)))
    return result


def process_start(pid: int) -> int:
    """The start time of `pid` in clock ticks since boot, 0 if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, start: int) -> bool:
    """Whether `pid` is still the process that started at `start` and not a zombie."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    rest = stat.rsplit(")", 1)[1].split()
    return rest[0] != "Z" and (start == 0 or int(rest[19]) == start)
