"""What a pod worker does at each step of a pod's life (kube's kubelet.go SyncPod,
SyncTerminatingPod, SyncTerminatedPod and the pod cleanup of HandlePodCleanups):

- sync: look at the runtime, report the status, stop there if the pod is finished; otherwise
  set up volumes (FailedMount when that fails), and let the PodSyncer start/kill containers;
  report the status again when something changed.
- terminating: stop probes, stop every container within the grace period and the sandbox,
  report the final status (phase Succeeded or Failed).
- terminated: tear the volumes down and tell the status manager the pod may be deleted.
- cleanup (the pod left the API): remove containers, sandboxes, the pod's directories, and
  forget it everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketkube.kubelet import containers as ctr
from pocketkube.kubelet.pleg import PodRuntimeStatus, pod_status
from pocketkube.kubelet.podactions import sandbox_changed
from pocketkube.kubelet.podstatus import TERMINAL, StatusInputs, generate
from pocketkube.kubelet.runtime.interface import ContainerStatus, PortMapping, SandboxConfig
from pocketkube.kubelet.statusmanager import StatusManager
from pocketkube.kubelet.syncpod import PodSyncer
from pocketkube.kubelet.termination import termination_message

log = logging.getLogger("pocketkube.kubelet")
Obj = dict[str, Any]
VOLUME_RETRY = 2.0


def port_mappings(pod: Obj) -> list[PortMapping]:
    spec = pod.get("spec") or {}
    out = []
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(PortMapping(container_port=int(p["containerPort"]),
                                       host_port=int(p["hostPort"]),
                                       protocol=p.get("protocol") or "TCP",
                                       host_ip=p.get("hostIP") or ""))
    return out


def with_override(status: Obj, override: Obj) -> Obj:
    """`status` with the fields the node agent decided (phase, reason, message) replaced and
    its conditions (e.g. DisruptionTarget) added, as kube's podStatusFn of an eviction."""
    extra = {c["type"]: c for c in override.get("conditions") or []}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") not in extra]
    return {**status, **{k: v for k, v in override.items() if k != "conditions"},
            "conditions": conditions + list(extra.values())}


class PodSync:
    def __init__(self, *, runtime: Any, images: Any, volumes: Any, dns: Any, probes: Any,
                 syncer: PodSyncer, status: StatusManager, recorder: Any, root: Path,
                 node_ip: str, cluster_dns: list[str], cluster_domain: str) -> None:
        self.overrides: dict[str, Obj] = {}  # uid -> status set by an eviction
        self.runtime = runtime
        self.images = images
        self.volumes = volumes
        self.dns = dns
        self.probes = probes
        self.syncer = syncer
        self.status = status
        self.recorder = recorder
        self.root = root
        self.node_ip = node_ip
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        self.volume_dirs: dict[str, dict[str, Path]] = {}
        self._messages: dict[str, str] = {}  # container id -> termination message
        self._images: dict[str, tuple[str, str]] = {}  # image id -> (name, digest ref)
        self.observe: Callable[[PodRuntimeStatus], None] = lambda rt: None

    # --- the status ----------------------------------------------------------------------------

    async def _inputs(self, pod: Obj, rt: PodRuntimeStatus) -> StatusInputs:
        for c in rt.containers:
            if c.state == "exited" and c.id not in self._messages:
                self._messages[c.id] = await asyncio.to_thread(termination_message, c)
            if c.image_id and c.image_id not in self._images:
                self._images[c.image_id] = await self._image_names(c)
        images = self._images

        def image(c: ContainerStatus) -> tuple[str, str]:
            return images.get(c.image_id) or (c.image_ref, c.image_id)

        return StatusInputs(
            runtime_name=self.runtime.name, node_ip=self.node_ip,
            reason=self.syncer.reason, ready=self.probes.ready, started=self.probes.started,
            image=image, messages=self._messages,
            sandbox_ready=not sandbox_changed(pod, rt)[0])

    async def _image_names(self, c: ContainerStatus) -> tuple[str, str]:
        """(image as the runtime names it, image id as a repo digest) — containerd's words."""
        try:
            img = await self.images.get(c.image_ref)
        except Exception:
            img = None
        if img is None or img.id != c.image_id:
            return c.image_ref, c.image_id
        name = img.repo_tags[0] if img.repo_tags else c.image_ref
        return name, img.repo_digests[0] if img.repo_digests else img.id

    async def report(self, pod: Obj, rt: PodRuntimeStatus, terminal: bool) -> Obj:
        self.observe(rt)
        running = {}
        for c in rt.containers:  # newest first: the current instance of each name
            running.setdefault(c.name, c)
        if not terminal:
            self.probes.sync(pod, rt.ips[0] if rt.ips else "", running)
        uid = pod["metadata"]["uid"]
        old = self.status.get(uid) or (pod.get("status") or {})
        status = generate(pod, rt, old, await self._inputs(pod, rt), terminal)
        if uid in self.overrides:  # the node evicted it: Failed, with the eviction's reason
            status = with_override(status, self.overrides[uid])
        self.status.set_pod_status(pod, status)
        return status

    # --- the worker's steps --------------------------------------------------------------------

    async def sync_pod(self, pod: Obj) -> tuple[bool, float | None]:
        uid = pod["metadata"]["uid"]
        rt = await pod_status(self.runtime, uid)
        status = await self.report(pod, rt, terminal=False)
        if status["phase"] in TERMINAL:
            return True, None
        dirs = await self._volumes(pod)
        if dirs is None:
            return False, VOLUME_RETRY
        result = await self.syncer.sync(
            pod, rt, volume_dirs=dirs,
            make_sandbox=lambda ips: self.sandbox_config(pod, ips))
        rt = await pod_status(self.runtime, uid)
        status = await self.report(pod, rt, terminal=False)
        return status["phase"] in TERMINAL, result.retry_after

    async def _volumes(self, pod: Obj) -> dict[str, Path] | None:
        uid = pod["metadata"]["uid"]
        if uid in self.volume_dirs:
            return self.volume_dirs[uid]
        try:
            dirs = await self.volumes.setup(pod)
        except Exception as e:
            message = getattr(e, "message", None) or str(e)
            ctr.record(self.recorder, pod, "Warning", "FailedMount", message)
            log.warning("pod %s: %s", ctr.format_pod(pod), message)
            return None
        self.volume_dirs[uid] = dirs
        return dirs

    async def sandbox_config(self, pod: Obj, pod_ips: list[str]) -> SandboxConfig:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        pod_dir = self.root / "pods" / meta["uid"]
        await asyncio.to_thread(pod_dir.mkdir, parents=True, exist_ok=True)
        ips = [self.node_ip] if spec.get("hostNetwork") else pod_ips
        hosts, resolv, hostname = await asyncio.to_thread(
            self.dns.write_pod_files, pod, pod_dir, pod_ips=ips, cluster_dns=self.cluster_dns,
            cluster_domain=self.cluster_domain)
        labels = dict(meta.get("labels") or {})
        labels.update({ctr.LABEL_POD_NAME: meta["name"],
                       ctr.LABEL_POD_NAMESPACE: meta.get("namespace", ""),
                       ctr.LABEL_POD_UID: meta["uid"]})
        return SandboxConfig(
            pod_uid=meta["uid"], name=meta["name"], namespace=meta.get("namespace", ""),
            hostname=self.dns.kernel_hostname(pod, self.cluster_domain), host_network=bool(spec.get("hostNetwork")),
            port_mappings=port_mappings(pod), labels=labels, hosts_path=hosts,
            resolv_path=resolv, hostname_path=hostname,
            log_dir=ctr.pod_log_dir(self.root, pod))

    async def sync_terminating_pod(self, pod: Obj, grace: int) -> None:
        uid = pod["metadata"]["uid"]
        self.probes.remove_pod(uid)
        rt = await pod_status(self.runtime, uid)
        await self.syncer.kill_pod(pod, rt, grace_override=grace)
        rt = await pod_status(self.runtime, uid)
        still = [c.name for c in rt.running()]
        if still:
            raise RuntimeError(f"containers still running: {', '.join(still)}")
        await self.report(pod, rt, terminal=True)

    async def sync_terminated_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        rt = await pod_status(self.runtime, uid)
        await self.report(pod, rt, terminal=True)
        await self.volumes.teardown(uid)
        self.volume_dirs.pop(uid, None)
        self.status.finished(uid)

    async def cleanup(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        rt = await pod_status(self.runtime, uid)
        for c in rt.containers:
            self._messages.pop(c.id, None)
            try:
                if c.state == "running":
                    await self.runtime.stop_container(c.id, 0)
                await self.runtime.remove_container(c.id)
            except Exception:
                log.warning("removing container %s failed", c.id, exc_info=True)
        for s in rt.sandboxes:
            try:
                await self.runtime.stop_sandbox(s.id)
                await self.runtime.remove_sandbox(s.id)
            except Exception:
                log.warning("removing sandbox %s failed", s.id, exc_info=True)
        self.probes.remove_pod(uid)
        self.syncer.forget(uid)
        self.status.forget(uid)
        self.volume_dirs.pop(uid, None)
        for path in (self.root / "pods" / uid, ctr.pod_log_dir(self.root, pod)):
            await asyncio.to_thread(shutil.rmtree, path, True)
