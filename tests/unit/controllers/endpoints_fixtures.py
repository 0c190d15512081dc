"""Builders for the Endpoints and EndpointSlice controller tests: services, pods, nodes, and an
in-memory API whose writes reach the shared informers' caches at once, or only when the test
says so (`lag=True`), to play a watch that trails the writes."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pocketkube.api import errors
from pocketkube.controllers.base import InformerFactory

Obj = dict[str, Any]
_uid = itertools.count(1)


def svc(name: str = "web", selector: dict[str, str] | None = None, ports: Any = None,
        ns: str = "default", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    body: Obj = {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"],
                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
                 if ports is None else ports, **spec}
    body["selector"] = {"app": name} if selector is None else selector
    if body["selector"] == "none":
        del body["selector"]
    meta: Obj = {"name": name, "namespace": ns, "uid": f"svc-uid-{name}",
                 "creationTimestamp": "2025-01-01T00:00:00Z", "resourceVersion": "1"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body}


def pod(name: str, ip: str | None = "10.244.0.1", labels: dict[str, str] | None = None,
        ready: bool = True, node: str = "sim-0", ns: str = "default",
        ports: list[Obj] | None = None, terminating: bool = False, phase: str = "Running",
        ready_since: str = "2025-01-01T00:01:00Z", **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "uid": f"uid-{name}",
                 "labels": {"app": "web"} if labels is None else labels,
                 "resourceVersion": str(next(_uid))}
    if terminating:
        meta["deletionTimestamp"] = "2025-01-01T00:05:00Z"
    status: Obj = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": ready_since}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node,
                     "containers": [{"name": "app", "image": "x", "ports": ports or []}],
                     **spec},
            "status": status}


def node(name: str, zone: str | None = None) -> Obj:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


class FakeApi:
    """create/update/delete on dicts with resourceVersion preconditions and generateName."""

    def __init__(self, informers: InformerFactory, lag: bool = False) -> None:
        self.informers = informers
        self.lag = lag
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.pending: list[tuple[Any, Obj, bool]] = []
        self._rv = itertools.count(100)
        self._names = itertools.count(1)

    def seed(self, r: Any, *objs: Obj) -> None:
        """Objects that exist already, in the store and in the cache."""
        for o in objs:
            self.objects[(r.plural, o["metadata"].get("namespace"), o["metadata"]["name"])] = o
            self._inform(r, o, False)

    def _inform(self, r: Any, obj: Obj, deleted: bool) -> None:
        inf = self.informers.informer(r)
        if deleted:
            inf._remove(copy.deepcopy(obj))
        else:
            inf._put(copy.deepcopy(obj))

    def _changed(self, r: Any, obj: Obj, deleted: bool = False) -> None:
        if self.lag:
            self.pending.append((r, copy.deepcopy(obj), deleted))
        else:
            self._inform(r, obj, deleted)

    def deliver(self) -> None:
        """The watch catches up."""
        for r, obj, deleted in self.pending:
            self._inform(r, obj, deleted)
        self.pending.clear()

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._names):05d}"
        key = (r.plural, namespace or meta.get("namespace"), meta["name"])
        self.calls.append(("create", r.plural, meta["name"]))
        if key in self.objects:
            raise errors.StatusError(409, "AlreadyExists", f'"{meta["name"]}" already exists')
        meta["namespace"] = key[1]
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        self._changed(r, obj)
        return copy.deepcopy(obj)

    async def update(self, r: Any, obj: Obj, **_: Any) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        key = (r.plural, meta.get("namespace"), meta["name"])
        self.calls.append(("update", r.plural, meta["name"]))
        cur = self.objects.get(key)
        if cur is None:
            raise errors.StatusError(404, "NotFound", "not found")
        if meta.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise errors.StatusError(409, "Conflict", "the object has been modified")
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        self._changed(r, obj)
        return copy.deepcopy(obj)

    async def delete(self, r: Any, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("delete", r.plural, name))
        cur = self.objects.pop((r.plural, namespace, name), None)
        if cur is None:
            raise errors.StatusError(404, "NotFound", f'"{name}" not found')
        self._changed(r, cur, deleted=True)
        return {}

    def of(self, plural: str) -> list[Obj]:
        return [o for (p, _, _), o in sorted(self.objects.items()) if p == plural]

    def writes(self) -> list[tuple[str, str, str]]:
        out = list(self.calls)
        self.calls.clear()
        return out


class NoEvents:
    """An EventRecorder stand-in that keeps what it was asked to record."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj: Obj, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((type_, reason, message))
