"""Pod sandboxes of the runc runtime: the pause container in the pod's network namespace.

The sandbox is created in this order: network namespace and CNI setup (so a failing plugin
leaves no container behind), the pause rootfs and the pod's /dev/shm tmpfs, then the pause
container under conmon. Any failure undoes every step already taken. Stopping a sandbox kills
its containers and the pause container and tears the network down; removing it also deletes
the pod's cgroup parent when the runtime chose it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from pathlib import Path

from pocketkube.kubelet.images.builtin import PAUSE
from pocketkube.kubelet.runtime import cgroups, conmon, ocispec, rootfs
from pocketkube.kubelet.runtime.interface import ImageService, SandboxConfig, SandboxStatus
from pocketkube.kubelet.runtime.runcbase import RuncContainers, RuncError, SandboxNetwork, new_id
from pocketkube.kubelet.runtime.state import Record

log = logging.getLogger(__name__)

PAUSE_IMAGE = PAUSE  # built by images/builtin.py at first start, so no pull is needed


def _sandbox_dict(config: SandboxConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


class RuncSandboxes(RuncContainers):
    images: ImageService
    network: SandboxNetwork

    async def run_sandbox(self, config: SandboxConfig) -> str:
        image = await self.images.get(PAUSE_IMAGE)
        if image is None:
            raise RuncError(f'the pause image "{PAUSE_IMAGE}" is not present')
        sid = new_id()
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
        return await self.pod_sandboxes(None)

    async def pod_sandboxes(self, pod_uid: str | None) -> list[SandboxStatus]:
        """The sandboxes of one pod (all with None): a pod's sync looks at its own without
        reading every other sandbox's exit file and /proc entry."""
        result = []
        for sid in [
            r.id
            for r in self.records.values()
            if r.kind == "sandbox" and (pod_uid is None or r.pod_uid == pod_uid)
        ]:
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
