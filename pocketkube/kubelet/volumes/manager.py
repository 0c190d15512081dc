"""The node agent's volume manager: sets up a pod's volumes under
`<agent root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>` (hostPath volumes are the host
path itself), keeps configMap/secret/downwardAPI/projected contents current and tears it all
down when the pod is gone.

Contents stay current on their own: the manager subscribes to the ObjectSource's change
notifications and rewrites the volumes of every pod that references a changed ConfigMap or
Secret within moments (kube's kubelet does it on its next periodic sync, up to a minute later),
and it renews projected service account tokens when 80% of their lifetime has passed. The pod
workers call `refresh(pod)` when the pod itself changes (labels and annotations feed downwardAPI
files). Every rewrite goes through the atomic writer, so an unchanged payload costs a compare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pocketkube.kubelet.runtime.interface import Mount
from pocketkube.kubelet.volumes import (
    atomicwriter,
    configmap,
    downwardapi,
    emptydir,
    hostpath,
    projected,
    secret,
)
from pocketkube.kubelet.volumes.common import (
    CONTENT_KINDS,
    PLUGIN_DIRS,
    SetupError,
    VolumeError,
    volume_kind,
)
from pocketkube.kubelet.volumes.fieldpath import machine_allocatable
from pocketkube.kubelet.volumes.mounts import container_mounts
from pocketkube.kubelet.volumes.tokens import TokenManager

log = logging.getLogger("pocketkube.kubelet.volumes")

# Content volumes whose files live in memory where tmpfs can be mounted (kube's wrappers).
MEMORY_BACKED = ("secret", "downwardAPI", "projected")


def referenced_objects(pod: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's volumes and env refer to."""
    spec = pod.get("spec") or {}
    refs: set[tuple[str, str]] = set()
    for v in spec.get("volumes") or []:
        if v.get("configMap"):
            refs.add(("ConfigMap", v["configMap"].get("name", "")))
        if v.get("secret"):
            refs.add(("Secret", v["secret"].get("secretName", "")))
        for s in (v.get("projected") or {}).get("sources") or []:
            if s.get("configMap"):
                refs.add(("ConfigMap", s["configMap"].get("name", "")))
            if s.get("secret"):
                refs.add(("Secret", s["secret"].get("name", "")))
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for ef in c.get("envFrom") or []:
                if ef.get("configMapRef"):
                    refs.add(("ConfigMap", ef["configMapRef"].get("name", "")))
                if ef.get("secretRef"):
                    refs.add(("Secret", ef["secretRef"].get("name", "")))
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                if vf.get("configMapKeyRef"):
                    refs.add(("ConfigMap", vf["configMapKeyRef"].get("name", "")))
                if vf.get("secretKeyRef"):
                    refs.add(("Secret", vf["secretKeyRef"].get("name", "")))
    for ps in spec.get("imagePullSecrets") or []:
        refs.add(("Secret", ps.get("name", "")))
    return refs


def _volume_refs(pod: dict[str, Any]) -> set[tuple[str, str]]:
    no_env = {**pod, "spec": {"volumes": (pod.get("spec") or {}).get("volumes") or []}}
    return referenced_objects(no_env)


class VolumeManager:
    def __init__(self, root: Path, source: Any, *, node_name: str, tmpfs: bool | None = None,
                 allocatable: dict[str, str] | None = None) -> None:
        """root: `<agent root>/pods`. tmpfs: memory-backed volumes as tmpfs mounts (default:
        when running as root); without it they are plain directories."""
        self.root = root
        self.source = source
        self.node_name = node_name
        self.tmpfs = os.geteuid() == 0 if tmpfs is None else tmpfs
        self.allocatable = allocatable
        self.tokens = TokenManager(source)
        self._pods: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        if hasattr(source, "on_change"):
            source.on_change(self._object_changed)

    # -- paths ---------------------------------------------------------------------------------
    def pod_dir(self, uid: str) -> Path:
        return self.root / uid

    def volume_dir(self, uid: str, kind: str, name: str) -> Path:
        return self.root / uid / "volumes" / PLUGIN_DIRS[kind] / name

    def _alloc_memory(self) -> int:
        alloc = self.allocatable or machine_allocatable()
        return emptydir._bytes(alloc.get("memory"))

    # -- setup ---------------------------------------------------------------------------------
    async def setup(self, pod: dict[str, Any]) -> dict[str, Path]:
        """Every volume of the pod ready on disk: volume name → host directory. Raises
        VolumeError (the first failing volume's FailedMount message) after trying them all."""
        uid = pod["metadata"]["uid"]
        async with self._lock(uid):
            self._pods[uid] = pod
            dirs, first_error = await self._setup_all(pod, content_only=False)
            self._schedule_token_refresh(uid)
        if first_error is not None:
            raise first_error
        return dirs

    async def refresh(self, pod: dict[str, Any]) -> None:
        """Rewrite the pod's configMap/secret/downwardAPI/projected volumes from current data
        (atomically; unchanged content is left alone). Raises VolumeError like setup."""
        uid = pod["metadata"]["uid"]
        async with self._lock(uid):
            if uid not in self._pods:
                return  # never set up or already torn down
            self._pods[uid] = pod
            _, first_error = await self._setup_all(pod, content_only=True)
            self._schedule_token_refresh(uid)
        if first_error is not None:
            raise first_error

    async def _setup_all(self, pod: dict[str, Any], *, content_only: bool
                         ) -> tuple[dict[str, Path], VolumeError | None]:  # fmt: skip
        dirs: dict[str, Path] = {}
        first: VolumeError | None = None
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol.get("name", "")
            kind = volume_kind(vol)
            if content_only and kind not in CONTENT_KINDS:
                continue
            try:
                dirs[name] = await self._setup_one(pod, vol, kind)
            except SetupError as e:
                err = VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}')
                log.warning("pod %s/%s: %s", pod["metadata"].get("namespace"),
                            pod["metadata"].get("name"), err.message)
                first = first or err
            except OSError as e:
                err = VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}')
                first = first or err
        return dirs, first

    async def _setup_one(self, pod: dict[str, Any], vol: dict[str, Any], kind: str) -> Path:
        meta = pod["metadata"]
        uid, ns = meta["uid"], meta.get("namespace", "")
        if kind == "hostPath":
            return await asyncio.to_thread(hostpath.setup, vol)
        if kind not in PLUGIN_DIRS:
            raise SetupError(f"volume type {kind} is not supported by this node")
        path = self.volume_dir(uid, kind, vol.get("name", ""))
        if kind == "emptyDir":
            await emptydir.setup(vol, pod, path, tmpfs=self.tmpfs,
                                 allocatable_memory=self._alloc_memory())
            return path
        if kind == "configMap":
            payload = await configmap.payload(vol["configMap"], ns, self.source)
        elif kind == "secret":
            payload = await secret.payload(vol["secret"], ns, self.source)
        elif kind == "downwardAPI":
            payload = downwardapi.payload(vol["downwardAPI"], pod, self.allocatable)
        else:
            payload = await projected.payload(vol["projected"], pod, self.source, self.tokens,
                                              self.allocatable)
        if kind in MEMORY_BACKED and self.tmpfs:
            await emptydir.mount_tmpfs(path, emptydir.memory_size(pod, None,
                                                                  self._alloc_memory()))
        else:
            await asyncio.to_thread(self._make_dir, path)
        await asyncio.to_thread(atomicwriter.write, path, payload)
        return path

    @staticmethod
    def _make_dir(path: Path) -> None:
        if not path.exists():
            path.mkdir(parents=True)
            path.chmod(0o777)

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    # -- keeping contents current --------------------------------------------------------------
    def _object_changed(self, kind: str, ns: str, name: str) -> None:
        for uid, pod in list(self._pods.items()):
            if pod["metadata"].get("namespace") == ns and (kind, name) in _volume_refs(pod):
                self._spawn(uid)

    def _spawn(self, uid: str) -> None:
        async def run() -> None:
            pod = self._pods.get(uid)
            if pod is None:
                return
            try:
                await self.refresh(pod)
            except VolumeError as e:
                log.warning("refreshing volumes of pod %s: %s", uid, e.message)

        task = asyncio.get_running_loop().create_task(run(), name=f"volumes-refresh-{uid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_token_refresh(self, uid: str) -> None:
        old = self._timers.pop(uid, None)
        if old is not None:
            old.cancel()
        due = self.tokens.next_refresh(uid)
        if due is None:
            return
        delay = max(due - time.time(), 1.0)
        self._timers[uid] = asyncio.get_running_loop().call_later(delay, self._spawn, uid)

    # -- teardown ------------------------------------------------------------------------------
    async def teardown(self, uid: str) -> None:
        """Unmount the pod's tmpfs volumes and remove its directory (idempotent)."""
        async with self._lock(uid):
            self._pods.pop(uid, None)
            timer = self._timers.pop(uid, None)
            if timer is not None:
                timer.cancel()
            self.tokens.forget(uid)
            pod_dir = self.pod_dir(uid)
            for mp in sorted(await asyncio.to_thread(_mounts_under, pod_dir), reverse=True):
                try:
                    await emptydir.unmount(Path(mp))
                except SetupError as e:
                    raise VolumeError(f'UnmountVolume.TearDown failed for pod "{uid}" : '
                                      f"{e}") from None
            if await asyncio.to_thread(_mounts_under, pod_dir):
                raise VolumeError(f'orphaned pod "{uid}" found, but volumes are still mounted')
            await asyncio.to_thread(shutil.rmtree, pod_dir, True)
        self._locks.pop(uid, None)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- mounts --------------------------------------------------------------------------------
    def mounts(self, pod: dict[str, Any], container: dict[str, Any],
               volume_dirs: dict[str, Path],
               env: list[tuple[str, str]] | None = None) -> list[Mount]:
        """Runtime mounts for the container's volumeMounts. `env` (the built environment)
        feeds subPathExpr; without it, literal and pod-field variables are used. Raises
        ContainerConfigError."""
        return container_mounts(pod, container, volume_dirs, env)


def _unescape_mountinfo(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def _mounts_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root).rstrip("/") + "/"
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = _unescape_mountinfo(line.split()[4])
                if mp.startswith(prefix):
                    out.append(mp)
    except OSError:
        return []
    return out
