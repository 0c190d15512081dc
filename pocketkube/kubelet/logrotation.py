"""Container log rotation, as the kubelet's container log manager does it
(pkg/kubelet/logs): the runtime only appends to a container's CRI log, and the agent keeps the
files bounded.

Every monitoring period (10 s) each running container's log is looked at; once it reaches
containerLogMaxSize it is renamed to `<log>.<YYYYmmdd-HHMMSS>` (UTC) and the runtime is asked
to reopen the log (CRI ReopenContainerLog), so the container goes on writing to a fresh file
at the same path, which `kubectl logs` keeps reading. Before that, the older rotated files are
gzipped (all but the newest, which a log reader may still be draining) and the oldest removed
so that at most containerLogMaxFiles files remain, the live one included. Leftovers of an
interrupted rotation (`.tmp` files, a file whose `.gz` already exists) are removed first.

The file work runs in worker threads so it never stalls the event loop; a rotation that fails
is logged and tried again next period. It is hand-written because the rotation must be
driven through the container runtime (reopen), which no logging library knows about.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pocketkube.api.validation.quantity import value as quantity_value
from pocketkube.kubelet.runtime.interface import ContainerStatus

log = logging.getLogger("pocketkube.kubelet.logrotation")

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"  # Go's "20060102-150405"
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"
DEFAULT_MAX_SIZE = "10Mi"
DEFAULT_MAX_FILES = 5
DEFAULT_PERIOD = 10.0
DEFAULT_WORKERS = 1


class LogRuntime(Protocol):
    """What the log manager needs of the container runtime."""

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def container_status(self, container_id: str) -> ContainerStatus | None: ...

    async def reopen_container_log(self, container_id: str) -> None: ...


class Clock(Protocol):
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class LogRotatePolicy:
    max_size: int  # bytes; negative disables rotation
    max_files: int  # files kept per container log, the live one included


def parse_policy(max_size: str | int, max_files: int) -> LogRotatePolicy:
    """The policy from the configuration (containerLogMaxSize as a quantity, e.g. "10Mi"),
    rejected with the kubelet's messages."""
    if max_files <= 1:
        raise ValueError(f"invalid MaxFiles {max_files}, must be > 1")
    amount = quantity_value(str(max_size))
    if amount is None or amount.denominator != 1:
        raise ValueError(f'failed to parse container log max size "{max_size}": '
                         "invalid max log size")  # fmt: skip
    return LogRotatePolicy(int(amount), max_files)


def rotated_name(log_path: str, now: float) -> str:
    """The name a live log is renamed to when it is rotated at `now` (unix seconds)."""
    return f"{log_path}.{time.strftime(TIMESTAMP_FORMAT, time.gmtime(now))}"


def filter_unused(logs: list[str]) -> tuple[list[str], list[str]]:
    """(in use, unused) among the rotated files of one log: temporary files of an interrupted
    compression, and uncompressed files whose compressed copy exists, are unused."""
    present = set(logs)
    inuse, unused = [], []
    for name in logs:
        temporary = name.endswith(TMP_SUFFIX)
        superseded = not name.endswith(COMPRESS_SUFFIX) and name + COMPRESS_SUFFIX in present
        (unused if temporary or superseded else inuse).append(name)
    return inuse, unused


def excess(logs: list[str], max_files: int) -> tuple[list[str], list[str]]:
    """(remove, keep) among the in-use rotated files before a rotation: the live log and the
    file about to be rotated take two places, so max_files - 2 older ones stay. Oldest first
    (the timestamp sorts by name), so an ongoing `kubectl logs` of a newer file is not cut."""
    ordered = sorted(logs)
    keep = max(max_files - 2, 0)
    cut = max(len(ordered) - keep, 0)
    return ordered[:cut], ordered[cut:]


def to_compress(logs: list[str]) -> list[str]:
    return [name for name in logs if not name.endswith(COMPRESS_SUFFIX)]


def rotated_logs(log_path: str) -> list[str]:
    """Every file next to the log named `<log>.<something>` (rotated, compressed, temporary)."""
    path = Path(log_path)
    prefix = path.name + "."
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    return sorted(str(path.parent / n) for n in names if n.startswith(prefix))


def all_logs(log_path: str) -> list[str]:
    """The in-use files of a container log, oldest first, the live one last (kube's
    GetAllLogs)."""
    inuse, _ = filter_unused(rotated_logs(log_path))
    return sorted(inuse) + [log_path]


def compress(path: str) -> None:
    """`path` → `path.gz` through a temporary file, then the original is removed."""
    tmp = path + TMP_SUFFIX
    with open(path, "rb") as src:
        mode = os.fstat(src.fileno()).st_mode & 0o777
        try:
            with (os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as raw,
                  gzip.GzipFile(fileobj=raw, mode="wb", filename="") as dst):  # fmt: skip
                shutil.copyfileobj(src, dst, 1024 * 1024)
            os.replace(tmp, path + COMPRESS_SUFFIX)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    os.unlink(path)


def prepare_rotation(log_path: str, max_files: int) -> None:
    """Everything before the rename, in a worker thread: remove leftovers and excess files,
    compress the rotated files that are left."""
    inuse, unused = filter_unused(rotated_logs(log_path))
    for name in unused:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    remove, keep = excess(inuse, max_files)
    for name in remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    for name in to_compress(keep):
        compress(name)


class ContainerLogManager:
    """Rotates the logs of the runtime's running containers under a LogRotatePolicy."""

    def __init__(self, runtime: LogRuntime, policy: LogRotatePolicy, *, clock: Clock,
                 period: float = DEFAULT_PERIOD, workers: int = DEFAULT_WORKERS,
                 now: Callable[[], float] = time.time) -> None:  # fmt: skip
        """`clock` paces the periods; `now` is the wall time (unix seconds) that names the
        rotated files."""
        self.runtime = runtime
        self.policy = policy
        self.clock = clock
        self.now = now
        self.period = period
        self._workers = asyncio.Semaphore(max(workers, 1))
        self._lock = asyncio.Lock()  # one rotation sequence (or clean) at a time

    async def run(self) -> None:
        """Rotate every period until cancelled; disabled by a negative max size."""
        if self.policy.max_size < 0:
            log.info("container log rotation disabled")
            return
        log.info("container log rotation: max size %d bytes, max files %d, every %gs",
                 self.policy.max_size, self.policy.max_files, self.period)  # fmt: skip
        while True:
            try:
                await self.rotate_logs()
            except Exception:
                log.exception("failed to rotate container logs")
            await self.clock.sleep(self.period)

    async def rotate_logs(self) -> None:
        """One pass over the running containers (kube's rotateLogs + processContainer)."""
        async with self._lock:
            containers = await self.runtime.list_containers()
            running = [c.id for c in containers if c.state == "running"]
            await asyncio.gather(*(self._process(cid) for cid in running))

    async def _process(self, cid: str) -> None:
        async with self._workers:
            try:
                await self.process_container(cid)
            except Exception as exc:
                log.error("failed to rotate the log of container %s: %s", cid[:12], exc)

    async def process_container(self, cid: str) -> None:
        """Rotate the container's log if it reached the max size. Raises on failure."""
        status = await self.runtime.container_status(cid)
        if status is None or not status.log_path:
            return
        path = status.log_path
        try:
            size = (await asyncio.to_thread(os.stat, path)).st_size
        except FileNotFoundError:
            # Renamed away without a reopen (an agent that stopped mid-rotation): reopen now.
            await self.runtime.reopen_container_log(cid)
            size = (await asyncio.to_thread(os.stat, path)).st_size
        if size < self.policy.max_size:
            return
        await self.rotate_log(cid, path)

    async def rotate_log(self, cid: str, path: str) -> None:
        await asyncio.to_thread(prepare_rotation, path, self.policy.max_files)
        rotated = rotated_name(path, self.now())
        if await asyncio.to_thread(_taken, rotated):
            # Rotated twice within a second: renaming now would overwrite (or, next to its
            # .gz, later lose) the earlier file; the next period rotates it.
            log.debug("%s exists; rotating %s later", rotated, path)
            return
        await asyncio.to_thread(os.rename, path, rotated)
        try:
            await self.runtime.reopen_container_log(cid)
        except Exception:
            # Put it back so the next period tries again; without a reopen the container
            # still writes to the renamed file.
            try:
                await asyncio.to_thread(os.rename, rotated, path)
            except OSError as exc:
                log.error("failed to rename the rotated log %s back to %s: %s",
                          rotated, path, exc)  # fmt: skip
            raise
        log.debug("rotated the log of container %s to %s", cid[:12], rotated)

    async def clean(self, cid: str) -> None:
        """Remove every log file of a container, rotated ones included (kube's Clean)."""
        async with self._lock:
            status = await self.runtime.container_status(cid)
            if status is None or not status.log_path:
                return
            await asyncio.to_thread(remove_all_logs, status.log_path)


def _taken(rotated: str) -> bool:
    return os.path.lexists(rotated) or os.path.lexists(rotated + COMPRESS_SUFFIX)


def remove_all_logs(log_path: str) -> None:
    path = Path(log_path)
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(path.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.parent / name)
