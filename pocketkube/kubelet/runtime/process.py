"""ProcessRuntime: the Runtime interface with plain host processes, for machines without root
or runc. No namespaces, no cgroups, no images on disk: a container is its argv run on the host
(argv[0] found on the host PATH) with exactly the container's environment, in its working
directory when the host has it (else a directory of its own). The pod IP is the host's address
and container ports are host ports.

Each container runs under a small supervisor (process_shim.py) that owns its pipes, writes the
CRI log and records the exit code, and survives the agent; every fact lives in the container's
directory (process_state.py), so a restarted agent adopts running containers just by reading
them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pocketkube
from pocketkube.kubelet.runtime.interface import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    ImageService,
    SandboxConfig,
    SandboxStatus,
    StreamSession,
)
from pocketkube.kubelet.runtime.process_state import (
    ContainerError,
    alive,
    read_json,
    read_status,
    resolve,
    write_json,
)
from pocketkube.kubelet.runtime.process_streams import (
    attach_session,
    exec_session,
    reopen_log,
    run_sync,
    wait_pid,
)

log = logging.getLogger(__name__)

__all__ = ["ContainerError", "ProcessRuntime"]


def _signal_number(name: str) -> int:
    name = name.strip().upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(signal, name, signal.SIGTERM))


class ProcessRuntime:
    """Containers as host processes under `root` (`<agent root>/process`)."""

    name = "process"

    def __init__(self, root: Path, images: ImageService, *, host_ip: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.images = images
        self.host_ip = host_ip
        self.version = f"process://{pocketkube.__version__}"
        self._sandboxes = self.root / "sandboxes"
        self._containers = self.root / "containers"
        self._children: dict[str, subprocess.Popen] = {}

    # --- state ---------------------------------------------------------------------------------

    def _cdir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid.startswith("."):
            raise ValueError(f"invalid container id {cid!r}")
        return self._containers / cid

    def _status_sync(self, cid: str) -> ContainerStatus | None:
        return read_status(self._cdir(cid), cid)

    async def _status(self, cid: str) -> ContainerStatus | None:
        return await asyncio.to_thread(self._status_sync, cid)

    def _ids(self, directory: Path, suffix: str = "") -> list[str]:
        if not directory.is_dir():
            return []
        return sorted(p.name.removesuffix(suffix) for p in directory.iterdir()
                      if not p.name.startswith(".") and p.name.endswith(suffix))  # fmt: skip

    def _spec(self, cid: str) -> dict:
        config = read_json(self._cdir(cid) / "config.json")
        if config is None:
            raise ContainerError(f"container {cid} not found")
        return config

    def _resolve(self, config: dict) -> tuple[str, dict[str, str], str]:
        return resolve(config, self._cdir(config["id"]) / "work")

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        def prepare() -> list[str]:
            self._sandboxes.mkdir(parents=True, exist_ok=True)
            self._containers.mkdir(parents=True, exist_ok=True)
            return [c for c in self._ids(self._containers)
                    if (s := self._status_sync(c)) and s.state == "running"]  # fmt: skip

        running = await asyncio.to_thread(prepare)
        if running:
            log.info("adopted %d running container(s) from %s", len(running), self.root)

    async def close(self) -> None:
        # Supervisors keep running; children not reaped yet are left to init after we exit.
        self._children.clear()

    async def run_sandbox(self, config: SandboxConfig) -> str:
        sid = secrets.token_hex(32)
        record = {"id": sid, "pod_uid": config.pod_uid, "name": config.name,
                  "namespace": config.namespace, "labels": config.labels,
                  "hostname": config.hostname, "created_at": time.time(), "state": "ready"}  # fmt: skip
        await asyncio.to_thread(self._sandboxes.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(write_json, self._sandboxes / f"{sid}.json", record)
        return sid

    def _sandbox_status(self, record: dict) -> SandboxStatus:
        return SandboxStatus(id=record["id"], pod_uid=record["pod_uid"], name=record["name"],
                             namespace=record["namespace"], state=record["state"],
                             ip=self.host_ip, ips=[self.host_ip],
                             created_at=record["created_at"], labels=record["labels"])  # fmt: skip

    async def stop_sandbox(self, sandbox_id: str) -> None:
        for st in await self.list_containers(sandbox_id):
            if st.state == "running":
                await self.stop_container(st.id, 0)
        path = self._sandboxes / f"{sandbox_id}.json"
        record = await asyncio.to_thread(read_json, path)
        if record is not None and record["state"] != "notready":
            record["state"] = "notready"
            await asyncio.to_thread(write_json, path, record)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        await self.stop_sandbox(sandbox_id)
        for st in await self.list_containers(sandbox_id):
            await self.remove_container(st.id)
        await asyncio.to_thread((self._sandboxes / f"{sandbox_id}.json").unlink, True)

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        if "/" in sandbox_id:
            return None
        record = await asyncio.to_thread(read_json, self._sandboxes / f"{sandbox_id}.json")
        return self._sandbox_status(record) if record else None

    async def list_sandboxes(self) -> list[SandboxStatus]:
        def scan() -> list[SandboxStatus]:
            records = (read_json(self._sandboxes / f"{s}.json")
                       for s in self._ids(self._sandboxes, ".json"))  # fmt: skip
            return [self._sandbox_status(r) for r in records if r]

        return await asyncio.to_thread(scan)

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:  # fmt: skip
        if await self.sandbox_status(sandbox_id) is None:
            raise ContainerError(f"sandbox {sandbox_id} not found")
        cid = secrets.token_hex(32)
        record = {
            "id": cid, "sandbox_id": sandbox_id, "name": config.name, "attempt": config.attempt,
            "argv": list(config.argv), "env": [list(kv) for kv in config.env],
            "working_dir": config.working_dir, "tty": config.tty, "stdin": config.stdin,
            "stdin_once": config.stdin_once,
            "log_path": str(config.log_path) if config.log_path else "",
            "image_id": config.image.id, "image_ref": config.image_ref, "labels": config.labels,
            "stop_signal": (config.image.config or {}).get("StopSignal", ""),
            "created_at": time.time(),
        }  # fmt: skip
        cdir = self._cdir(cid)
        await asyncio.to_thread(cdir.mkdir, parents=True)
        await asyncio.to_thread(write_json, cdir / "config.json", record)
        return cid

    def _record_start_error(self, cid: str, message: str) -> None:
        write_json(self._cdir(cid) / "exit.json", {"exit_code": 128, "finished_at": time.time(),
                                                   "reason": "StartError", "message": message})  # fmt: skip

    def _spawn_shim(self, cdir: Path) -> subprocess.Popen:
        env = dict(os.environ)
        package_parent = str(Path(pocketkube.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        with open(cdir / "shim.log", "ab") as shim_log:
            return subprocess.Popen(
                [sys.executable, "-m", "pocketkube.kubelet.runtime.process_shim", str(cdir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=shim_log,
                cwd=cdir, env=env, start_new_session=True, close_fds=True,
            )  # fmt: skip

    async def start_container(self, container_id: str) -> None:
        cdir = self._cdir(container_id)
        config = await asyncio.to_thread(self._spec, container_id)
        if await asyncio.to_thread(os.path.exists, cdir / "started.json"):
            raise ContainerError(f"container {container_id} was already started")
        try:
            exe, env, cwd = await asyncio.to_thread(self._resolve, config)
        except ContainerError as exc:
            await asyncio.to_thread(self._record_start_error, container_id, str(exc))
            raise
        spec = {"exe": exe, "argv": config["argv"], "env": env, "cwd": cwd,
                "log_path": config["log_path"], "tty": config["tty"], "stdin": config["stdin"],
                "stdin_once": config["stdin_once"]}  # fmt: skip
        await asyncio.to_thread(write_json, cdir / "spec.json", spec)
        shim = await asyncio.to_thread(self._spawn_shim, cdir)
        self._children[container_id] = shim
        asyncio.get_running_loop().create_task(self._reap(container_id, shim))
        assert shim.stdout is not None
        report = (await asyncio.to_thread(shim.stdout.read)).decode(errors="replace").strip()
        shim.stdout.close()
        if not report.startswith("started "):
            if not report.startswith("error "):
                tail = await asyncio.to_thread(self._shim_log_tail, cdir)
                report = "error the container's supervisor failed" + (f": {tail}" if tail else "")
            message = report.removeprefix("error ")
            await asyncio.to_thread(self._record_start_error, container_id, message)
            raise ContainerError(message)

    @staticmethod
    def _shim_log_tail(cdir: Path) -> str:
        try:
            lines = (cdir / "shim.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    async def _reap(self, cid: str, shim: subprocess.Popen) -> None:
        """Collect our own supervisor's exit status so it does not linger as a zombie."""
        await wait_pid(shim.pid, lambda: shim.poll() is None, None)
        await asyncio.to_thread(shim.wait)
        self._children.pop(cid, None)

    async def wait_container(self, cid: str, timeout: float | None) -> bool:
        """Wait for the container's end (its supervisor's, or the process's when the supervisor
        is gone): True if it ended within `timeout`."""
        started = await asyncio.to_thread(read_json, self._cdir(cid) / "started.json")
        if not started:
            return True
        for pid_key, ticks_key in (("shim_pid", "shim_start_ticks"), ("pid", "start_ticks")):
            pid, ticks = started[pid_key], started.get(ticks_key)
            if alive(pid, ticks):
                return await wait_pid(pid, lambda p=pid, t=ticks: alive(p, t), timeout)
        return True

    def _signal_group(self, cid: str, sig: int) -> None:
        started = read_json(self._cdir(cid) / "started.json")
        if started and alive(started["pid"], started.get("start_ticks")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(started["pid"], sig)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        st = await self._status(container_id)
        if st is None or st.state != "running":
            return
        config = await asyncio.to_thread(self._spec, container_id)
        if timeout > 0:
            sig = _signal_number(config.get("stop_signal") or "SIGTERM")
            await asyncio.to_thread(self._signal_group, container_id, sig)
            if await self.wait_container(container_id, timeout):
                await self._status(container_id)
                return
        await asyncio.to_thread(self._signal_group, container_id, signal.SIGKILL)
        if not await self.wait_container(container_id, 10):
            log.warning("container %s did not end after SIGKILL", container_id[:12])
        await self._status(container_id)

    async def remove_container(self, container_id: str) -> None:
        st = await self._status(container_id)
        if st is None:
            return
        if st.state == "running":
            await self.stop_container(container_id, 0)
        await asyncio.to_thread(shutil.rmtree, self._cdir(container_id), True)

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        try:
            return await self._status(container_id)
        except ValueError:
            return None

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        def scan() -> list[ContainerStatus]:
            out = []
            for cid in self._ids(self._containers):
                st = self._status_sync(cid)
                if st is not None and (sandbox_id is None or st.sandbox_id == sandbox_id):
                    out.append(st)
            return out

        return await asyncio.to_thread(scan)

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI ReopenContainerLog, through the supervisor's socket (`reopen-log`)."""
        st = await self.container_status(container_id)
        if st is None:
            raise ContainerError(f"container {container_id} not found")
        if st.state != "running":
            raise ContainerError("container is not running")
        try:
            await reopen_log(self._cdir(container_id))
        except OSError as exc:
            raise ContainerError(f"failed to reopen the log of container {container_id}: "
                                 f"{exc.strerror or exc}") from exc  # fmt: skip

    # --- exec, attach, port-forward -------------------------------------------------------------

    async def _exec_context(self, cid: str) -> tuple[dict, str, dict[str, str], str]:
        st = await self._status(cid)
        if st is None:
            raise ContainerError(f"container {cid} not found")
        if st.state != "running":
            raise ContainerError(f"container {cid} is not running")
        config = await asyncio.to_thread(self._spec, cid)
        exe, env, cwd = await asyncio.to_thread(self._resolve, config)
        return config, exe, env, cwd

    async def _exec_target(self, cid: str, argv: list[str]) -> tuple[str, dict[str, str], str]:
        config, _, env, cwd = await self._exec_context(cid)
        exe = await asyncio.to_thread(self._resolve, {**config, "argv": argv})
        return exe[0], env, cwd

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float) -> ExecResult:
        exe, env, cwd = await self._exec_target(container_id, argv)
        return await run_sync(exe, argv, env, cwd, timeout)

    async def exec(self, container_id: str, argv: list[str], *, stdin: bool, tty: bool
                   ) -> StreamSession:  # fmt: skip
        exe, env, cwd = await self._exec_target(container_id, argv)
        return await exec_session(exe, argv, env, cwd, stdin=stdin, tty=tty)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession:
        config, *_ = await self._exec_context(container_id)

        async def ended() -> None:
            await self.wait_container(container_id, None)

        return await attach_session(self._cdir(container_id), stdin=stdin and config["stdin"],
                                    tty=config["tty"], ended=ended)  # fmt: skip

    async def port_forward(self, sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
        if await self.sandbox_status(sandbox_id) is None:
            raise ContainerError(f"sandbox {sandbox_id} not found")
        return await asyncio.open_connection("127.0.0.1", port)
