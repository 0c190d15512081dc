"""RuncRuntime: the node agent's container runtime on runc, conmon, overlayfs and CNI.

A pod sandbox is a pause container (registry.k8s.io/pause) holding the pod's network namespace
(made by the network plugin) and new IPC and UTS namespaces; app containers join them. Each
container runs under its own conmon, so the agent can stop and restart while containers keep
running: every sandbox and container is described by a state.json in its bundle directory under
`root`, and `start()` reads them back. Layout under root:

    runc/                   runc's own state (--root)
    exits/<id>              exit codes, written by conmon
    sockets/<id>            conmon's link to the bundle (attach socket)
    sandboxes/<id>/         bundle of a pause container: config.json, rootfs/, upper/, work/,
                            shm/ (the pod's /dev/shm), state.json
    containers/<id>/        bundle of an app container

Status is read from files (exit file, /proc) rather than by running `runc state`, since the pod
lifecycle loop asks for every container every second.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from pocketkube.kubelet.runtime import cgroups, conmon, ocispec, rootfs, runcexec, users
from pocketkube.kubelet.runtime.interface import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    ImageService,
    SandboxConfig,
    StreamSession,
)
from pocketkube.kubelet.runtime.runcbase import RuncError, SandboxNetwork, new_id
from pocketkube.kubelet.runtime.runcsandbox import PAUSE_IMAGE, RuncSandboxes
from pocketkube.kubelet.runtime.state import Record, load_all

log = logging.getLogger(__name__)

__all__ = ["PAUSE_IMAGE", "RuncError", "RuncRuntime"]


class RuncRuntime(RuncSandboxes):
    name = "runc"

    def __init__(
        self,
        root: Path,
        images: ImageService,
        network: SandboxNetwork,
        *,
        runc: str = "runc",
        conmon: str = "conmon",
    ) -> None:
        super().__init__(
            Path(root), runc=shutil.which(runc) or runc, conmon=shutil.which(conmon) or conmon
        )
        self.images = images
        self.network: SandboxNetwork = network
        self.version = "runc://"

    # --- lifecycle of the runtime --------------------------------------------------------

    async def start(self) -> None:
        for d in (
            self.paths.runc_root,
            self.paths.exit_dir,
            self.paths.socket_dir,
            self.root / "sandboxes",
            self.root / "containers",
        ):
            d.mkdir(parents=True, exist_ok=True)
        code, out = await self._run_runc("--version", root=False)
        if code == 0 and out.split():
            first = out.splitlines()[0].split()
            self.version = f"runc://{first[-1].split('+')[0]}"
        for kind in ("sandboxes", "containers"):
            for directory, record in await asyncio.to_thread(load_all, self.root / kind):
                self.records[record.id] = record
                self.dirs[record.id] = directory
        running = [r for r in self.records.values() if self._current(r) == "running"]
        if self.records:
            log.info(
                "runc runtime: adopted %d records (%d running)", len(self.records), len(running)
            )

    async def close(self) -> None:
        """Nothing to release: containers belong to their conmon and keep running."""

    async def remove_all(self) -> None:
        """Stop and remove every sandbox and container under root (the node is being deleted)."""
        for sid in [r.id for r in list(self.records.values()) if r.kind == "sandbox"]:
            await self.remove_sandbox(sid)
        for cid in list(self.records):
            await self.remove_container(cid)

    # --- containers ----------------------------------------------------------------------

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox: SandboxConfig
    ) -> str:
        srec = self.records.get(sandbox_id)
        if srec is None or srec.kind != "sandbox":
            raise RuncError(f"sandbox {sandbox_id} not found")
        await self._refresh(srec)
        if self._current(srec) != "running":
            raise RuncError(f"sandbox {sandbox_id} is not running")
        cid = new_id()
        directory = self.root / "containers" / cid
        parent = sandbox.cgroup_parent or cgroups.default_parent(srec.pod_uid)
        log_path = config.log_path or directory / "container.log"
        rec = Record(
            id=cid,
            kind="container",
            sandbox_id=sandbox_id,
            name=config.name,
            pod_uid=srec.pod_uid,
            namespace=srec.namespace,
            attempt=config.attempt,
            created_at=time.time(),
            image_id=config.image.id,
            image_ref=config.image_ref,
            log_path=str(log_path),
            labels=dict(config.labels),
            stop_signal=str(config.image.config.get("StopSignal") or ""),
            tty=config.tty,
            stdin=config.stdin,
            cgroups_path=f"{parent}/{cid}",
        )
        self.records[cid] = rec
        self.dirs[cid] = directory
        try:
            await self._save(rec)
            await rootfs.mount_overlay(
                config.image.layers, directory / "upper", directory / "work", directory / "rootfs"
            )
            sec = config.security
            user = await asyncio.to_thread(
                users.resolve,
                directory / "rootfs",
                str(config.image.config.get("User") or ""),
                sec.run_as_user,
                sec.run_as_group,
                sec.run_as_username,
                sec.supplemental_groups,
            )
            await asyncio.to_thread(self._prepare_files, config, log_path)
            spec = ocispec.container_spec(
                config,
                sandbox,
                rootfs=directory / "rootfs",
                user=user,
                sandbox_pid=srec.pid,
                shm=self.dirs[sandbox_id] / "shm",
                cgroups_path=rec.cgroups_path,
            )
            await self._create(
                rec,
                spec,
                f"k8s_{config.name}_{sandbox.name}_{sandbox.namespace}",
                log_path,
                tty=config.tty,
                stdin=config.stdin,
                stdin_once=config.stdin_once,
            )
        except BaseException as exc:
            await asyncio.shield(self._destroy(rec))
            if isinstance(exc, (rootfs.MountError, conmon.ConmonError, users.UserError, OSError)):
                raise RuncError(str(exc)) from exc
            raise
        return cid

    @staticmethod
    def _prepare_files(config: ContainerConfig, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if config.termination_message_host_path is not None:
            config.termination_message_host_path.parent.mkdir(parents=True, exist_ok=True)
            if not config.termination_message_host_path.exists():
                # Writable by any user the container runs as, as the kubelet makes it.
                config.termination_message_host_path.touch()
                config.termination_message_host_path.chmod(0o666)

    async def start_container(self, container_id: str) -> None:
        rec = self._container(container_id)
        await self._start(rec)

    async def remove_container(self, container_id: str) -> None:
        rec = self.records.get(container_id)
        if rec is None or rec.kind != "container":
            return
        await self._destroy(rec)

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        rec = self.records.get(container_id)
        if rec is None or rec.kind != "container":
            return None
        await self._refresh(rec)
        return ContainerStatus(
            id=rec.id,
            sandbox_id=rec.sandbox_id,
            name=rec.name,
            attempt=rec.attempt,
            state=self._current(rec),
            created_at=rec.created_at,
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            exit_code=rec.exit_code,
            reason=rec.reason,
            message=rec.message,
            image_id=rec.image_id,
            image_ref=rec.image_ref,
            log_path=rec.log_path,
            pid=rec.pid,
            labels=dict(rec.labels),
        )

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI ReopenContainerLog: conmon starts writing to a new file at the log path."""
        rec = self._container(container_id)
        await self._refresh(rec)
        if self._current(rec) != "running" or not self._conmon_alive(rec):
            raise RuncError("container is not running")
        try:
            await conmon.reopen_log(self.dirs[container_id], Path(rec.log_path))
        except OSError as exc:
            raise RuncError(f"failed to reopen the log of container {container_id}: {exc}"
                            ) from exc  # fmt: skip

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        ids = [
            r.id
            for r in self.records.values()
            if r.kind == "container" and (sandbox_id is None or r.sandbox_id == sandbox_id)
        ]
        statuses = [await self.container_status(cid) for cid in ids]
        return [s for s in statuses if s is not None]

    # --- exec, attach ----------------------------------------------------------------------

    def _target(self, container_id: str) -> runcexec.Target:
        self._container(container_id)
        return runcexec.Target(
            self.runc, self.paths.runc_root, container_id, self.dirs[container_id]
        )

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float) -> ExecResult:
        return await runcexec.exec_sync(self._target(container_id), argv, timeout)

    async def exec(
        self, container_id: str, argv: list[str], *, stdin: bool, tty: bool
    ) -> StreamSession:
        target = self._target(container_id)
        if tty:
            return await runcexec.exec_tty(target, argv, stdin)
        return await runcexec.exec_pipes(target, argv, stdin)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession:
        rec = self._container(container_id)
        return await runcexec.attach(
            self._target(container_id), stdin=stdin and rec.stdin, tty=rec.tty
        )
