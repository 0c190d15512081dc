"""Static pods (kubelet's file source, pkg/kubelet/config/file.go and common.go): every Pod
manifest in the manifest directory runs on this node without the scheduler, named
`<name>-<node>`, with a uid hashed from the file and the node, so the same file always gives
the same pod and an edited file a new one. With an API server, each one is mirrored there as
a read-only "mirror pod" (annotation kubernetes.io/config.mirror, owned by the Node) so
`kubectl get pods` shows it; deleting the mirror pod does not stop the static pod (it is
recreated), removing the file does.

The directory is re-read every few seconds (kubelet's fileCheckFrequency is 20 s); reading
and parsing happen in a worker thread.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

log = logging.getLogger("pocketkube.kubelet.staticpods")
Obj = dict[str, Any]
CHECK_PERIOD = 2.0
SOURCE = "kubernetes.io/config.source"
HASH = "kubernetes.io/config.hash"
SEEN = "kubernetes.io/config.seen"
MIRROR = "kubernetes.io/config.mirror"


class StaticPodSink(Protocol):
    def add_static_pod(self, pod: Obj) -> Any: ...

    def remove_static_pod(self, uid: str) -> Any: ...


def apply_defaults(pod: Obj, source: str, content: bytes, node: str) -> Obj:
    """What kubelet's applyDefaults does to a pod read from a file."""
    pod = copy.deepcopy(pod)
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    if not meta.get("uid"):
        h = hashlib.md5(usedforsecurity=False)
        h.update(node.encode())
        h.update(source.encode())
        h.update(content)
        meta["uid"] = h.hexdigest()
    meta["name"] = f"{meta.get('name', '')}-{node.lower()}"
    meta.setdefault("namespace", "default")
    spec["nodeName"] = node
    annotations = meta.setdefault("annotations", {})
    annotations[HASH] = meta["uid"]
    annotations[SOURCE] = "file"
    annotations.setdefault(SEEN, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    # Static pods tolerate every NoExecute taint: the node lifecycle cannot evict them.
    tolerations = spec.setdefault("tolerations", [])
    if not any(t.get("operator") == "Exists" and t.get("effect") == "NoExecute" and
               not t.get("key") for t in tolerations):
        tolerations.append({"operator": "Exists", "effect": "NoExecute"})
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    pod.setdefault("status", {"phase": "Pending"})
    return pod


def read_manifests(directory: Path, node: str) -> dict[str, Obj]:
    """uid → pod for every valid manifest in `directory` (invalid ones are logged)."""
    pods: dict[str, Obj] = {}
    if not directory.is_dir():
        return pods
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            content = path.read_bytes()
            doc = yaml.safe_load(content)
        except (OSError, yaml.YAMLError) as e:
            log.warning("static pod %s: cannot read: %s", path, e)
            continue
        if not isinstance(doc, dict) or doc.get("kind", "Pod") != "Pod" or \
                not (doc.get("metadata") or {}).get("name"):
            log.warning("static pod %s: not a Pod manifest with a name", path)
            continue
        pod = apply_defaults(doc, str(path), content, node)
        pods[pod["metadata"]["uid"]] = pod
    return pods


def mirror_of(pod: Obj, node_uid: str = "") -> Obj:
    """The mirror pod the API server holds for a static pod."""
    mirror = copy.deepcopy(pod)
    meta = mirror["metadata"]
    meta.pop("uid", None)
    meta.pop("resourceVersion", None)
    meta["annotations"][MIRROR] = meta["annotations"][HASH]
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node",
                                    "name": pod["spec"]["nodeName"], "uid": node_uid,
                                    "controller": True}]
    mirror.pop("status", None)
    return mirror


class StaticPods:
    """Watches the manifest directory and hands pods to the pod workers."""

    def __init__(self, directory: Path, node: str, sink: StaticPodSink,
                 period: float = CHECK_PERIOD) -> None:
        self.directory = directory
        self.node = node
        self.sink = sink
        self.period = period
        self.pods: dict[str, Obj] = {}

    async def sync_once(self) -> None:
        found = await asyncio.to_thread(read_manifests, self.directory, self.node)
        for uid in [u for u in self.pods if u not in found]:
            log.info("static pod %s removed", self.pods[uid]["metadata"]["name"])
            del self.pods[uid]
            await _maybe_await(self.sink.remove_static_pod(uid))
        for uid, pod in found.items():
            if uid not in self.pods:
                log.info("static pod %s added", pod["metadata"]["name"])
                self.pods[uid] = pod
                await _maybe_await(self.sink.add_static_pod(pod))

    async def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                await self.sync_once()
            except Exception:
                log.exception("reading static pods from %s failed", self.directory)
            await asyncio.sleep(self.period)


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value
