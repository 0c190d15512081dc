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
import secrets
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from pocketkube.kubelet.runtime import cgroups, conmon, ocispec, rootfs, runcexec, users
from pocketkube.kubelet.runtime.interface import (
    ContainerConfig,
    ContainerStatus,
    ExecResult,
    ImageService,
    SandboxConfig,
    SandboxStatus,
    StreamSession,
)
from pocketkube.kubelet.runtime.runcbase import RuncContainers, RuncError
from pocketkube.kubelet.runtime.state import Record, load_all

log = logging.getLogger(__name__)

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # images/builtin.py builds it at first start

__all__ = ["RuncError", "RuncRuntime"]


def _new_id() -> str:
    return secrets.token_hex(32)


def _sandbox_dict(config: SandboxConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


class RuncRuntime(RuncContainers):
    name = "runc"

    def __init__(
        self,
        root: Path,
        images: ImageService,
        network,
        *,
        runc: str = "runc",
        conmon: str = "conmon",
    ) -> None:
        super().__init__(
            Path(root), runc=shutil.which(runc) or runc, conmon=shutil.which(conmon) or conmon
        )
        self.images = images
        self.network = network  # CniNetwork: create_netns, setup, teardown, connect
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

    # --- sandboxes -----------------------------------------------------------------------

    async def run_sandbox(self, config: SandboxConfig) -> str:
        image = await self.images.get(PAUSE_IMAGE)
        if image is None:
            raise RuncError(f'the pause image "{PAUSE_IMAGE}" is not present')
        sid = _new_id()
        directory = self.root / "sandboxes" / sid
        parent = config.cgroup_parent or cgroups.default_parent(config.pod_uid)
        rec = Record(
            id=sid,
            kind="sandbox",
            sandbox_id=sid,
            name=config.name,
            pod_uid=config.pod_uid,
            namespace=config.namespace,
            created_at=time.time(),
            image_id=image.id,
            image_ref=PAUSE_IMAGE,
            labels=dict(config.labels),
            cgroups_path=f"{parent}/{sid}",
            host_network=config.host_network,
            ports=[asdict(p) for p in config.port_mappings],
            sandbox_config=_sandbox_dict(config),
        )
        self.records[sid] = rec
        self.dirs[sid] = directory
        try:
            await self._save(rec)
            if not config.host_network:
                rec.netns = await self.network.create_netns(sid)
                await self._save(rec)
                rec.ips = list(
                    await self.network.setup(
                        sid,
                        rec.netns,
                        (config.namespace, config.name, config.pod_uid),
                        config.port_mappings,
                    )
                )
            await rootfs.mount_overlay(
                image.layers, directory / "upper", directory / "work", directory / "rootfs"
            )
            await rootfs.mount_tmpfs(directory / "shm")
            spec = ocispec.sandbox_spec(
                config,
                image,
                rootfs=directory / "rootfs",
                netns=rec.netns or None,
                shm=directory / "shm",
                cgroups_path=rec.cgroups_path,
            )
            await self._create(
                rec,
                spec,
                f"k8s_POD_{config.name}_{config.namespace}",
                directory / "pause.log",
                tty=False,
                stdin=False,
                stdin_once=False,
            )
            await self._start(rec)
        except BaseException as exc:
            await asyncio.shield(self._destroy(rec))
            if isinstance(exc, (rootfs.MountError, conmon.ConmonError, OSError)):
                raise RuncError(f"failed to start the pod sandbox: {exc}") from exc
            raise
        log.info(
            "sandbox %s for pod %s/%s started (pid %d)",
            sid[:12],
            config.namespace,
            config.name,
            rec.pid,
        )
        return sid

    async def stop_sandbox(self, sandbox_id: str) -> None:
        rec = self.records.get(sandbox_id)
        if rec is None or rec.kind != "sandbox":
            return
        members = [
            r.id
            for r in list(self.records.values())
            if r.kind == "container" and r.sandbox_id == sandbox_id
        ]
        await asyncio.gather(*(self.stop_container(cid, 0) for cid in members))
        await self.stop_container(sandbox_id, 0)
        if rec.netns:
            await self.network.teardown(sandbox_id, rec.netns, self._ports(rec))

    async def remove_sandbox(self, sandbox_id: str) -> None:
        rec = self.records.get(sandbox_id)
        if rec is None or rec.kind != "sandbox":
            return
        await self.stop_sandbox(sandbox_id)
        members = [
            r.id
            for r in list(self.records.values())
            if r.kind == "container" and r.sandbox_id == sandbox_id
        ]
        await asyncio.gather(*(self.remove_container(cid) for cid in members))
        await self._destroy(rec)
        if not rec.sandbox_config.get("cgroup_parent"):
            await asyncio.to_thread(cgroups.remove_parent, cgroups.default_parent(rec.pod_uid))

    async def sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        rec = self.records.get(sandbox_id)
        if rec is None or rec.kind != "sandbox":
            return None
        await self._refresh(rec)
        return SandboxStatus(
            id=rec.id,
            pod_uid=rec.pod_uid,
            name=rec.name,
            namespace=rec.namespace,
            state="ready" if self._current(rec) == "running" else "notready",
            ip=rec.ips[0] if rec.ips else "",
            ips=list(rec.ips),
            created_at=rec.created_at,
            netns=rec.netns,
            labels=dict(rec.labels),
        )

    async def list_sandboxes(self) -> list[SandboxStatus]:
        result = []
        for sid in [r.id for r in self.records.values() if r.kind == "sandbox"]:
            status = await self.sandbox_status(sid)
            if status is not None:
                result.append(status)
        return result

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        rec = self.records.get(sandbox_id)
        if rec is None or rec.kind != "sandbox":
            raise RuncError(f"sandbox {sandbox_id} not found")
        if not rec.netns:
            return await asyncio.open_connection("127.0.0.1", port)
        return await self.network.connect(rec.netns, port)

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
        cid = _new_id()
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
            config.termination_message_host_path.touch(exist_ok=True)

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
