"""The mechanics RuncRuntime applies to every container, pause containers included: creating one
under conmon, starting it, reading its state from files, signalling and stopping it, and
destroying it with everything it left (runc state, mounts, exit file, bundle).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Protocol

from pocketkube.kubelet.runtime import cgroups, conmon, rootfs
from pocketkube.kubelet.runtime.interface import PortMapping
from pocketkube.kubelet.runtime.state import Record, process_alive, process_start, save

log = logging.getLogger(__name__)

KILL_WAIT = 10.0  # how long a SIGKILLed container may take to be reported gone
POLL = 0.05


class SandboxNetwork(Protocol):
    """What the runtime needs of the pod network (network/cni.py's CniNetwork)."""

    async def create_netns(self, sandbox_id: str) -> str: ...

    async def setup(
        self, sandbox_id: str, netns: str, pod: tuple[str, str, str], ports: list[PortMapping]
    ) -> list[str]: ...

    async def teardown(self, sandbox_id: str, netns: str, ports: list[PortMapping]) -> None: ...

    async def connect(
        self, netns: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


class RuncError(Exception):
    """A runtime operation failed; the message is what the pod's events and status show."""


def new_id() -> str:
    """A container or sandbox id: 64 hex characters, like containerd's."""
    return secrets.token_hex(32)


def parse_signal(name: str) -> signal.Signals:
    """An image's StopSignal ("SIGQUIT", "QUIT", "3") as a signal; SIGTERM when unset."""
    name = name.strip().upper()
    if not name:
        return signal.SIGTERM
    if name.isdigit():
        with contextlib.suppress(ValueError):
            return signal.Signals(int(name))
        return signal.SIGTERM
    with contextlib.suppress(KeyError):
        return signal.Signals["SIG" + name.removeprefix("SIG")]
    return signal.SIGTERM


class RuncContainers:
    def __init__(self, root: Path, *, runc: str, conmon: str) -> None:
        self.root = root
        self.runc = runc
        self.conmon = conmon
        self.network: SandboxNetwork | None = None  # set by RuncRuntime
        self.paths = conmon_paths(root)
        self.records: dict[str, Record] = {}
        self.dirs: dict[str, Path] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, rid: str) -> asyncio.Lock:
        return self._locks.setdefault(rid, asyncio.Lock())

    async def _run_runc(self, *args: str, root: bool = True) -> tuple[int, str]:
        argv = [self.runc] + (["--root", str(self.paths.runc_root)] if root else []) + list(args)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace").strip()
        return proc.returncode or 0, conmon.error_text(text) if proc.returncode else text

    def _container(self, container_id: str) -> Record:
        rec = self.records.get(container_id)
        if rec is None or rec.kind != "container":
            raise RuncError(f"container {container_id} not found")
        return rec

    @staticmethod
    def _ports(rec: Record) -> list[PortMapping]:
        return [PortMapping(**p) for p in rec.ports]

    async def _save(self, rec: Record) -> None:
        await asyncio.to_thread(save, self.dirs[rec.id], rec)

    async def _create(
        self,
        rec: Record,
        spec: dict,
        name: str,
        log_path: Path,
        *,
        tty: bool,
        stdin: bool,
        stdin_once: bool,
    ) -> None:
        bundle = self.dirs[rec.id]
        await asyncio.to_thread((bundle / "config.json").write_text, json.dumps(spec, indent=1))
        rec.pid = await conmon.start(
            conmon=self.conmon,
            runc=self.runc,
            paths=self.paths,
            container_id=rec.id,
            name=name,
            bundle=bundle,
            log_path=log_path,
            tty=tty,
            stdin=stdin,
            stdin_once=stdin_once,
        )
        rec.pid_start = process_start(rec.pid)
        await self._save(rec)

    async def _start(self, rec: Record) -> None:
        async with self._lock(rec.id):
            if rec.state != "created":
                raise RuncError(f"container {rec.id} is {rec.state}, not created")
            # The process starts inside `runc start`, and may even finish before it returns:
            # the time before the call keeps startedAt <= finishedAt.
            begun = time.time()
            code, out = await self._run_runc("start", rec.id)
            if code != 0:
                raise RuncError(out or f"runc start exited with status {code}")
            rec.state = "running"
            rec.started_at = begun
            await self._save(rec)

    def _conmon_alive(self, rec: Record) -> bool:
        try:
            pid = int((self.dirs[rec.id] / "conmon.pid").read_text().strip())
        except (OSError, ValueError, KeyError):
            return False
        return process_alive(pid, 0)

    def _current(self, rec: Record) -> str:
        """The CRI state from the record and /proc (call _refresh first for exits)."""
        if rec.state in ("exited", "created"):
            return rec.state
        if process_alive(rec.pid, rec.pid_start) or self._conmon_alive(rec):
            return "running"
        return "unknown"

    async def _refresh(self, rec: Record) -> None:
        """Record the exit once conmon wrote it, with the reason (OOMKilled/Completed/Error)."""
        if rec.state == "exited":
            return
        result = conmon.exit_code(self.paths, rec.id)
        if result is None:
            return
        code, stamp = result
        bundle = self.dirs[rec.id]
        oom = conmon.oom_killed(bundle) or cgroups.oom_kills(rec.cgroups_path) > 0
        rec.state = "exited"
        rec.exit_code = code
        rec.finished_at = stamp
        rec.reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        await self._save(rec)

    def _signal(self, rec: Record, sig: signal.Signals) -> bool:
        if not process_alive(rec.pid, rec.pid_start):
            return False
        try:
            os.kill(rec.pid, sig)
        except ProcessLookupError:
            return False
        return True

    async def _wait_exit(self, rec: Record, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self._refresh(rec)
            if rec.state == "exited":
                return True
            if self._current(rec) == "unknown":
                return False  # nothing left that could report an exit
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(POLL)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """The image's StopSignal (or SIGTERM), SIGKILL after `timeout` seconds."""
        rec = self.records.get(container_id)
        if rec is None:
            return
        async with self._lock(container_id):
            await self._refresh(rec)
            if rec.state == "exited":
                return
            graceful = rec.state == "running" and timeout > 0
            sent = graceful and self._signal(rec, parse_signal(rec.stop_signal))
            if sent and await self._wait_exit(rec, timeout):
                return
            self._signal(rec, signal.SIGKILL)
            if not await self._wait_exit(rec, KILL_WAIT):
                log.warning("container %s did not report its exit after SIGKILL", container_id)

    async def _destroy(self, rec: Record) -> None:
        """Kill the container if needed and remove everything it has on the machine."""
        async with self._lock(rec.id):
            bundle = self.dirs.get(rec.id)
            if bundle is None:
                return
            if self._signal(rec, signal.SIGKILL):
                await self._wait_exit(rec, KILL_WAIT)
            code, out = await self._run_runc("delete", "--force", rec.id)
            if code != 0 and "does not exist" not in out:
                log.warning("runc delete %s: %s", rec.id, out)
            await rootfs.unmount(bundle / "rootfs")
            if rec.kind == "sandbox":
                await rootfs.unmount(bundle / "shm")
                if rec.netns and self.network is not None:
                    await self.network.teardown(rec.id, rec.netns, self._ports(rec))
            await asyncio.to_thread(conmon.cleanup, self.paths, rec.id)
            await rootfs.remove_tree(bundle)
            self.records.pop(rec.id, None)
            self.dirs.pop(rec.id, None)
        self._locks.pop(rec.id, None)


def conmon_paths(root: Path) -> conmon.ConmonPaths:
    return conmon.ConmonPaths(root / "runc", root / "exits", root / "sockets")
