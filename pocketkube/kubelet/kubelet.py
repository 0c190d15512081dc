"""The node agent's pod side (kube's pkg/kubelet/kubelet.go syncLoop and HandlePod*): it
watches the pods bound to this node, admits each new one (resources, host ports), hands every
pod to its own worker, runs the relisting event generator and the status manager, keeps
static pods (from the manifest directory) mirrored in the API, removes what the runtime still
holds for pods the API no longer knows, and answers the streaming server's lookups.

The parts it drives (runtime, images, volumes, probes, DNS files, environment) come in
through the constructor, so the whole of it runs in tests against in-memory fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.informer import Informer
from pocketkube.client.rest import resource
from pocketkube.client.workqueue import Clock
from pocketkube.kubelet import admission
from pocketkube.kubelet import containers as ctr
from pocketkube.kubelet.backoff import Backoff
from pocketkube.kubelet.imagepuller import ImagePuller
from pocketkube.kubelet.lifecycle import Lifecycle
from pocketkube.kubelet.pleg import RELIST_PERIOD, Pleg, PodRuntimeStatus
from pocketkube.kubelet.podsync import PodSync
from pocketkube.kubelet.podworkers import RESYNC_PERIOD, TERMINAL, PodWorkers
from pocketkube.kubelet.runtime.interface import ContainerStatus, Runtime, SandboxStatus
from pocketkube.kubelet.starter import ContainerStarter
from pocketkube.kubelet.statusmanager import StatusManager
from pocketkube.kubelet.syncpod import PodSyncer

log = logging.getLogger("pocketkube.kubelet")
Obj = dict[str, Any]
PODS = resource("", "pods")
NODES = resource("", "nodes")
HOUSEKEEPING_PERIOD = 10.0
MIRROR = "kubernetes.io/config.mirror"
HASH = "kubernetes.io/config.hash"


def _key(pod: Obj) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _differs(old: Obj, pod: Obj) -> bool:
    """Whether an update needs a sync (kube's podsDifferSemantically): our own status
    patches come back as updates and must not resync the pod each time. Readiness gates are
    set by others in the status, so those pods resync on any change."""
    if (pod.get("spec") or {}).get("readinessGates"):
        return True
    keys = ("labels", "annotations", "deletionTimestamp", "deletionGracePeriodSeconds")
    return old.get("spec") != pod.get("spec") or any(
        old["metadata"].get(k) != pod["metadata"].get(k) for k in keys)


def _is_mirror(pod: Obj) -> bool:
    return MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


class Kubelet:
    def __init__(self, client: Any, node_name: str, *, root: Path, runtime: Runtime,
                 images: Any, volumes: Any, objects: Any, recorder: Any, clock: Clock,
                 cluster_dns: list[str], cluster_domain: str, node_ip: str,
                 probes_factory: Callable[[Callable[[str], None]], Any] | None = None,
                 wall: Callable[[], float] | None = None, envvars: Any = None,
                 dnsconfig: Any = None, resync: float = RESYNC_PERIOD,
                 relist: float = RELIST_PERIOD) -> None:
        self.client = client
        self.node_name = node_name
        self.root = root
        self.runtime = runtime
        self.objects = objects
        self.volumes = volumes
        self.clock = clock
        self.recorder = recorder
        if wall is None:
            offset = time.time() - clock.now()
            wall = lambda: clock.now() + offset  # noqa: E731 - wall time moving with clock
        self.wall = wall
        if envvars is None:
            from pocketkube.kubelet import envvars
        if dnsconfig is None:
            from pocketkube.kubelet import dnsconfig
        if probes_factory is None:
            from pocketkube.kubelet.prober.manager import ProbeManager

            def probes_factory(on_change: Callable[[str], None]) -> Any:
                return ProbeManager(runtime, recorder, clock=clock, on_change=on_change)
        self.probes = probes_factory(self._probe_changed)
        self.lifecycle = Lifecycle(runtime, recorder, clock)
        self.puller = ImagePuller(images, recorder, wall)
        starter = ContainerStarter(runtime=runtime, puller=self.puller, lifecycle=self.lifecycle,
                                   recorder=recorder, root=root, env=envvars, volumes=volumes,
                                   objects=objects, node_name=node_name, node_ip=node_ip)
        self.syncer = PodSyncer(runtime=runtime, starter=starter, lifecycle=self.lifecycle,
                                recorder=recorder, backoff=Backoff(wall), probes=self.probes)
        self.status = StatusManager(client, clock=clock, wall=wall, target=self._api_pod)
        self.podsync = PodSync(runtime=runtime, images=images, volumes=volumes, dns=dnsconfig,
                               probes=self.probes, syncer=self.syncer, status=self.status,
                               recorder=recorder, root=root, node_ip=node_ip,
                               cluster_dns=cluster_dns, cluster_domain=cluster_domain)
        self.workers = PodWorkers(self.podsync, clock, resync)
        self.pleg = Pleg(runtime, clock, self._pleg_event, relist)
        self.podsync.observe = lambda rt: self.pleg.pods.__setitem__(rt.uid, rt)
        self.api_pods: dict[str, Obj] = {}  # uid -> pod as the API has it
        self.static: dict[str, Obj] = {}  # uid -> static pod
        self.mirrors: dict[tuple[str, str], Obj] = {}
        self.rejected: dict[str, Obj] = {}
        self.node: Obj | None = None
        self.synced = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._informers: list[Informer] = []

    # --- pods from the API --------------------------------------------------------------------

    def pod_added(self, pod: Obj) -> None:
        self._pod_changed(None, pod)

    def pod_updated(self, old: Obj, pod: Obj) -> None:
        self._pod_changed(old, pod)

    def _pod_changed(self, old: Obj | None, pod: Obj) -> None:
        if _is_mirror(pod):
            self.mirrors[_key(pod)] = pod
            static = self._static_by_key(_key(pod))
            if static is not None:
                self.status.resync(static["metadata"]["uid"])
                # A mirror pod being deleted is removed at once and made again (kube's
                # syncPod), so deleting it with a grace period never stops the static pod.
                if (pod["metadata"].get("annotations") or {}).get(MIRROR) != \
                        static["metadata"]["annotations"].get(HASH) or \
                        pod["metadata"].get("deletionTimestamp"):
                    self._spawn(self._ensure_mirror(static))
            return
        uid = pod["metadata"]["uid"]
        first = uid not in self.api_pods
        self.api_pods[uid] = pod
        if uid in self.rejected:
            if pod["metadata"].get("deletionTimestamp"):
                self.workers.update({**pod, "status": self.rejected[uid]})
            return
        phase = (pod.get("status") or {}).get("phase")
        if first and self.workers.state(uid) is None and phase not in (*TERMINAL, "Running") \
                and not pod["metadata"].get("deletionTimestamp"):
            rejection = admission.check(pod, self.workers.active_pods(), self.node)
            if rejection is not None:
                self._reject(pod, *rejection)
                return
        self.workers.update(pod, sync=old is None or _differs(old, pod))
        if self.workers.state(uid) == "finished" and pod["metadata"].get("deletionTimestamp"):
            self.status.finished(uid)  # finished earlier: the deletion can complete now
        if old is not None and self.workers.state(uid) == "syncing":
            changed = any((old["metadata"].get(k) or {}) != (pod["metadata"].get(k) or {})
                          for k in ("labels", "annotations"))
            if changed and any(v.get("downwardAPI") or v.get("projected")
                               for v in (pod.get("spec") or {}).get("volumes") or []):
                self._spawn(self.volumes.refresh(pod))

    def pod_deleted(self, pod: Obj) -> None:
        if _is_mirror(pod):
            if self.mirrors.get(_key(pod), {}).get("metadata", {}).get("uid") == \
                    pod["metadata"].get("uid"):
                self.mirrors.pop(_key(pod), None)
            static = self._static_by_key(_key(pod))
            if static is not None:
                self._spawn(self._ensure_mirror(static))
            return
        uid = pod["metadata"]["uid"]
        self.api_pods.pop(uid, None)
        self.rejected.pop(uid, None)
        self.podsync.overrides.pop(uid, None)
        self.workers.update(pod, removed=True)

    async def evict(self, pod: Obj, status: Obj, grace_period: int) -> None:
        """Stop `pod` within `grace_period` seconds and report it with `status` (phase Failed,
        reason Evicted): the node-pressure eviction manager's kill function."""
        uid = pod["metadata"]["uid"]
        self.podsync.overrides[uid] = status
        self.workers.update(self.api_pods.get(uid, pod), grace_override=grace_period)

    def _reject(self, pod: Obj, reason: str, message: str) -> None:
        log.info("pod %s rejected: %s", ctr.format_pod(pod), message)
        ctr.record(self.recorder, pod, "Warning", reason, message)
        status = admission.rejected_status(pod, reason, message)
        self.rejected[pod["metadata"]["uid"]] = status
        self.status.set_pod_status(pod, status)

    def _api_pod(self, uid: str) -> Obj | None:
        static = self.static.get(uid)
        if static is not None:
            return self.mirrors.get(_key(static))
        return self.api_pods.get(uid)

    # --- static pods --------------------------------------------------------------------------

    def add_static_pod(self, pod: Obj) -> None:
        self.static[pod["metadata"]["uid"]] = pod
        self.workers.update(pod)
        self._spawn(self._ensure_mirror(pod))

    def remove_static_pod(self, uid: str) -> None:
        pod = self.static.pop(uid, None)
        if pod is None:
            return
        self.workers.update(pod, removed=True)
        mirror = self.mirrors.get(_key(pod))
        if mirror is not None:
            self._spawn(self._delete_mirror(mirror))

    def _static_by_key(self, key: tuple[str, str]) -> Obj | None:
        return next((p for p in self.static.values() if _key(p) == key), None)

    async def _ensure_mirror(self, pod: Obj) -> None:
        from pocketkube.kubelet.staticpods import mirror_of

        mirror = self.mirrors.get(_key(pod))
        want = pod["metadata"]["annotations"].get(HASH)
        if mirror is not None:
            if mirror["metadata"]["annotations"].get(MIRROR) == want and \
                    not mirror["metadata"].get("deletionTimestamp"):
                return
            await self._delete_mirror(mirror)
        node_uid = ((self.node or {}).get("metadata") or {}).get("uid", "")
        try:
            created = await self.client.create(PODS, mirror_of(pod, node_uid),
                                               pod["metadata"].get("namespace"))
            self.mirrors[_key(pod)] = created
            self.status.resync(pod["metadata"]["uid"])
        except StatusError as e:
            if e.code != 409:
                log.warning("mirror pod %s/%s: %s", *_key(pod), e.message)

    async def _delete_mirror(self, mirror: Obj) -> None:
        meta = mirror["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"),
                                     gracePeriodSeconds=0, preconditions={"uid": meta["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):
                log.warning("mirror pod %s/%s: %s", meta.get("namespace"), meta["name"],
                            e.message)

    # --- events from the runtime, probes and objects ------------------------------------------

    def _pleg_event(self, uid: str, event: str, container_id: str) -> None:
        self.workers.notify(uid)

    def _probe_changed(self, uid: str) -> None:
        self.workers.notify(uid)

    def _node_changed(self, node: Obj) -> None:
        self.node = node

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- housekeeping ---------------------------------------------------------------------------

    async def housekeeping(self) -> None:
        """Stop and remove what the runtime holds for pods nobody knows (after an agent
        restart or a missed deletion), keep mirror pods, and re-check written statuses."""
        known = set(self.api_pods) | set(self.static) | set(self.workers.workers)
        for uid, rt in list(self.pleg.pods.items()):
            if uid in known or not self.synced:
                continue
            orphan = _orphan_pod(rt)
            log.info("removing pod %s that this node no longer runs", ctr.format_pod(orphan))
            await self.syncer.kill_pod(orphan, rt)
            await self.podsync.cleanup(orphan)
        for pod in list(self.static.values()):
            if self.mirrors.get(_key(pod)) is None:
                await self._ensure_mirror(pod)
        for uid in list(self.status.statuses):
            self.status.resync(uid)
        self.syncer.backoff.gc()

    async def _housekeeping_loop(self) -> None:
        while True:
            await self.clock.sleep(HOUSEKEEPING_PERIOD)
            try:
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        pods = Informer(self.client, PODS, field_selector=f"spec.nodeName={self.node_name}")
        pods.on(add=self.pod_added, update=self.pod_updated, delete=self.pod_deleted)
        nodes = Informer(self.client, NODES, field_selector=f"metadata.name={self.node_name}")
        nodes.on(add=self._node_changed, update=lambda _o, n: self._node_changed(n))
        self._informers = [nodes, pods]
        try:
            running = [nodes.start()]
            await nodes.synced.wait()
            running.append(pods.start())
            await pods.synced.wait()
            await self.pleg.relist()
            self.synced = True
            self.pleg.start()
            running.append(asyncio.create_task(self._housekeeping_loop(), name="housekeeping"))
            await asyncio.gather(*running)
        finally:
            await self.close()

    async def close(self) -> None:
        for inf in self._informers:
            await inf.stop()
        self._informers = []
        await self.pleg.close()
        await self.workers.close()
        await self.status.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        close = getattr(self.probes, "close", None)
        if close is not None:
            close()

    # --- PodLookup for the streaming server -------------------------------------------------------

    def _runtime_pod(self, ns: str, name: str) -> PodRuntimeStatus | None:
        for pods in (self.api_pods, self.static):
            for uid, pod in pods.items():
                if _key(pod) == (ns, name):
                    return self.pleg.pods.get(uid)
        return None

    def container(self, ns: str, pod: str, container: str
                  ) -> tuple[Runtime, ContainerStatus] | None:  # fmt: skip
        rt = self._runtime_pod(ns, pod)
        if rt is None:
            return None
        found = [c for c in rt.containers if c.name == container]
        running = [c for c in found if c.state == "running"]
        chosen = (running or found or [None])[0]
        return (self.runtime, chosen) if chosen is not None else None

    def sandbox(self, ns: str, pod: str) -> tuple[Runtime, SandboxStatus] | None:
        rt = self._runtime_pod(ns, pod)
        ready = [s for s in (rt.sandboxes if rt else []) if s.state == "ready"]
        return (self.runtime, ready[0]) if ready else None

    def log_path(self, ns: str, pod: str, container: str, previous: bool) -> Path | None:
        rt = self._runtime_pod(ns, pod)
        found = [c for c in (rt.containers if rt else []) if c.name == container]
        index = 1 if previous else 0
        if len(found) <= index or not found[index].log_path:
            return None
        return Path(found[index].log_path)


def _orphan_pod(rt: PodRuntimeStatus) -> Obj:
    """The little known about a pod from its runtime labels."""
    labels = next((c.labels for c in rt.containers if c.labels), {})
    if not labels and rt.sandboxes:
        labels = rt.sandboxes[0].labels
    name = labels.get(ctr.LABEL_POD_NAME) or (rt.sandboxes[0].name if rt.sandboxes else rt.uid)
    ns = labels.get(ctr.LABEL_POD_NAMESPACE) or (rt.sandboxes[0].namespace if rt.sandboxes
                                                 else "")
    return {"metadata": {"uid": rt.uid, "name": name, "namespace": ns}, "spec": {}}
