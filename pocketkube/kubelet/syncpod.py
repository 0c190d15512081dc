"""Bringing one pod's containers to what its spec asks (kube's kuberuntime_manager.go
SyncPod), and stopping them all (killPodWithSyncResult).

PodSyncer carries out what podactions.compute_pod_actions decided: it kills what must go,
creates the sandbox, starts init containers in order and then the app containers, applying
the crash-loop backoff (kube's doBackOff), and remembers each container's last start failure
(kube's reasonCache: CrashLoopBackOff, ErrImagePull, ...) for the pod status.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pocketkube.kubelet import containers as ctr
from pocketkube.kubelet.backoff import Backoff, go_duration
from pocketkube.kubelet.imagepuller import ERR_IMAGE_PULL
from pocketkube.kubelet.lifecycle import Lifecycle
from pocketkube.kubelet.logrotation import remove_all_logs
from pocketkube.kubelet.pleg import PodRuntimeStatus
from pocketkube.kubelet.podactions import compute_pod_actions, is_sidecar
from pocketkube.kubelet.runtime.interface import ContainerStatus, Runtime, SandboxConfig
from pocketkube.kubelet.starter import ContainerStarter, StartError

log = logging.getLogger("pocketkube.kubelet.syncpod")
Obj = dict[str, Any]
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"
PULL_FAILED_RESYNC = 1.0
KEEP_DEAD = 2  # instances kept per container name (current + previous, for lastState/logs)


@dataclass
class SyncResult:
    retry_after: float | None = None  # seconds until a backed-off start may be tried
    errors: list[str] = field(default_factory=list)

    def wake(self, seconds: float) -> None:
        if seconds > 0 and (self.retry_after is None or seconds < self.retry_after):
            self.retry_after = seconds


class PodSyncer:
    def __init__(self, *, runtime: Runtime, starter: ContainerStarter, lifecycle: Lifecycle,
                 recorder: Any, backoff: Backoff, probes: Any) -> None:
        self.runtime = runtime
        self.starter = starter
        self.lifecycle = lifecycle
        self.recorder = recorder
        self.backoff = backoff
        self.probes = probes
        self.reasons: dict[tuple[str, str], tuple[str, str]] = {}  # kube's reasonCache

    def reason(self, uid: str, name: str) -> tuple[str, str] | None:
        return self.reasons.get((uid, name))

    def forget(self, uid: str) -> None:
        for key in [k for k in self.reasons if k[0] == uid]:
            del self.reasons[key]
        self.backoff.forget_prefix(f"{uid}_")

    def _backoff_key(self, pod: Obj, c: Obj) -> str:
        meta = pod["metadata"]
        return (f"{meta['uid']}_{c['name']}_{meta.get('namespace', '')}_{meta['name']}_"
                f"{ctr.container_hash(c)}")

    def _in_backoff(self, pod: Obj, c: Obj, status: PodRuntimeStatus,
                    result: SyncResult) -> bool:  # fmt: skip
        """kube's doBackOff: a container that exited waits out its restart delay."""
        dead = next((s for s in status.containers
                     if s.name == c["name"] and s.state == "exited"), None)
        if dead is None:
            return False
        key = self._backoff_key(pod, c)
        if self.backoff.is_in_backoff_since(key, dead.finished_at):
            who = ctr.format_pod(pod)
            ctr.record(self.recorder, pod, "Warning", "BackOff",
                       f"Back-off restarting failed container {c['name']} in pod {who}",
                       c["name"])
            delay = go_duration(self.backoff.get(key))
            self.reasons[(pod["metadata"]["uid"], c["name"])] = (
                CRASH_LOOP_BACKOFF,
                f"back-off {delay} restarting failed container={c['name']} pod={who}")
            result.wake(self.backoff.remaining(key, dead.finished_at))
            return True
        self.backoff.next(key, dead.finished_at)
        return False

    async def _start(self, pod: Obj, c: Obj, status: PodRuntimeStatus, ctx: dict,
                     result: SyncResult, init: bool) -> bool:  # fmt: skip
        uid = pod["metadata"]["uid"]
        if self._in_backoff(pod, c, status, result):
            return False
        try:
            await self.starter.start(pod, c, status=status, init=init, **ctx)
        except StartError as e:
            self.reasons[(uid, c["name"])] = (e.reason, e.message)
            result.errors.append(f"{c['name']}: {e.reason}: {e.message}")
            if e.reason == ERR_IMAGE_PULL:
                result.wake(PULL_FAILED_RESYNC)  # soon show ImagePullBackOff, as kube does
            else:
                result.wake(self.starter.puller.backoff_remaining(pod, c))
            return False
        self.reasons.pop((uid, c["name"]), None)
        return True

    async def sync(self, pod: Obj, status: PodRuntimeStatus, *, volume_dirs: dict[str, Path],
                   make_sandbox: Any) -> SyncResult:  # fmt: skip
        """One SyncPod pass. `make_sandbox(pod_ips)` returns the SandboxConfig (the DNS files
        written for those addresses)."""
        result = SyncResult()
        actions = compute_pod_actions(pod, status, self.probes)
        spec = pod.get("spec") or {}
        if actions.create_sandbox and actions.sandbox_id:
            ctr.record(self.recorder, pod, "Normal", "SandboxChanged",
                       "Pod sandbox changed, it will be killed and re-created.")
        if actions.kill_pod:
            await self.kill_pod(pod, status)
            if actions.create_sandbox:
                await self._remove(c for c in status.containers
                                   if c.labels.get(ctr.LABEL_INIT) == "true")
        else:
            for kill in actions.to_kill.values():
                await self.lifecycle.kill(pod, kill.container, kill.status,
                                          message=kill.message, reason=kill.reason,
                                          pod_ip=_first(status.ips))
        await self._prune(status)
        if not actions.create_sandbox and not actions.init_to_start and not actions.to_start:
            return result
        sandbox_id = status.sandboxes[0].id if status.sandboxes else ""
        pod_ips = status.ips
        sandbox: SandboxConfig = await make_sandbox(pod_ips)
        if actions.create_sandbox:
            try:
                sandbox_id = await self.runtime.run_sandbox(sandbox)
                created = await self.runtime.sandbox_status(sandbox_id)
            except Exception as e:
                ctr.record(self.recorder, pod, "Warning", "FailedCreatePodSandBox",
                           f"Failed to create pod sandbox: {e}")
                result.errors.append(f"sandbox: {e}")
                return result
            pod_ips = list(created.ips or ([created.ip] if created.ip else [])) if created else []
            sandbox = await make_sandbox(pod_ips)
            status = PodRuntimeStatus(status.uid, [created] if created else [],
                                      status.containers)
        ctx = {"sandbox_id": sandbox_id, "sandbox": sandbox, "pod_ip": _first(pod_ips),
               "volume_dirs": volume_dirs}
        inits = spec.get("initContainers") or []
        for idx in actions.init_to_start:
            c = inits[idx]
            if not await self._start(pod, c, status, ctx, result, init=True):
                if is_sidecar(c):
                    log.info("pod %s: sidecar %s did not start, skipping it",
                             ctr.format_pod(pod), c["name"])
                    continue
                return result
        for idx in actions.to_start:
            await self._start(pod, spec["containers"][idx], status, ctx, result, init=False)
        return result

    async def kill_pod(self, pod: Obj, status: PodRuntimeStatus,
                       grace_override: int | None = None) -> None:  # fmt: skip
        """Stop every running container (app containers together, then sidecars in reverse
        order, as kube's termination ordering does) and the sandboxes."""
        spec = pod.get("spec") or {}
        by_name = {c["name"]: c for c in [*(spec.get("initContainers") or []),
                                           *(spec.get("containers") or [])]}
        sidecars = [c["name"] for c in spec.get("initContainers") or [] if is_sidecar(c)]
        running = [s for s in status.containers if s.state in ("running", "unknown", "created")]
        first = [s for s in running if s.name not in sidecars]
        pod_ip = _first(status.ips)
        start = self.lifecycle.clock.now()

        async def stop(s: ContainerStatus, override: int | None) -> None:
            try:
                await self.lifecycle.kill(pod, by_name.get(s.name), s,
                                          grace_override=override, pod_ip=pod_ip)
            except Exception:
                log.exception("stopping container %s of pod %s failed", s.name,
                              ctr.format_pod(pod))

        await asyncio.gather(*(stop(s, grace_override) for s in first))
        for name in reversed(sidecars):
            for s in (s for s in running if s.name == name):
                left = grace_override
                if grace_override is not None:
                    left = max(0, grace_override - int(self.lifecycle.clock.now() - start))
                await stop(s, left)
        for sb in status.sandboxes:
            if sb.state == "ready":
                try:
                    await self.runtime.stop_sandbox(sb.id)
                except Exception:
                    log.exception("stopping the sandbox of pod %s failed", ctr.format_pod(pod))

    async def _remove(self, statuses: Any) -> None:
        """Remove container instances and their logs, rotated ones included (kube's
        removeContainer + removeContainerLog): a pod crash-looping for days keeps no more
        log files than instances."""
        for s in list(statuses):
            try:
                await self.runtime.remove_container(s.id)
                if s.log_path:
                    await asyncio.to_thread(remove_all_logs, s.log_path)
            except Exception:
                log.warning("removing container %s failed", s.id, exc_info=True)

    async def _prune(self, status: PodRuntimeStatus) -> None:
        """Remove exited instances beyond the newest few of each container (kube's
        container garbage collection keeps the last dead one per container)."""
        seen: dict[str, int] = {}
        old = []
        for s in status.containers:
            seen[s.name] = seen.get(s.name, 0) + 1
            if seen[s.name] > KEEP_DEAD and s.state == "exited":
                old.append(s)
        if old:
            await self._remove(old)
            status.containers = [s for s in status.containers if s not in old]


def _first(items: list[str]) -> str:
    return items[0] if items else ""
