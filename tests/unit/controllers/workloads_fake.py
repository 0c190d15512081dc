"""An in-memory API for the StatefulSet and DaemonSet controller tests: create (with
generateName, uid, creation time, pods starting Pending), get, merge patch (status too), update
and delete on dicts, every change fed at once to the shared informers' caches, as a watch would.
Also an event recorder that keeps what it is given, and helpers to play the node agent."""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

from pocketkube.api import errors
from pocketkube.controllers.base import InformerFactory

Obj = dict[str, Any]
_stamp = itertools.count(1)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def record(self, obj: Obj, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))

    def messages(self, reason: str) -> list[str]:
        return [m for _, _, r, m in self.events if r == reason]


class FakeApi:
    def __init__(self) -> None:
        self.informers = InformerFactory(self)  # type: ignore[arg-type]
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._rv = itertools.count(1)
        self._names = itertools.count(1)
        self.held: dict[str, list[tuple[Any, Obj, bool]]] = {}  # plural -> delayed changes

    def hold(self, plural: str) -> None:
        """Delay what the informers see of `plural`, as a lagging watch would."""
        self.held.setdefault(plural, [])

    def release(self, plural: str) -> None:
        for r, obj, deleted in self.held.pop(plural, []):
            self._notify(r, obj, deleted)

    def _key(self, r: Any, ns: str | None, name: str) -> tuple[str, str | None, str]:
        return (r.plural, ns if r.namespaced else None, name)

    def _notify(self, r: Any, obj: Obj, deleted: bool = False) -> None:
        if r.plural in self.held:
            self.held[r.plural].append((r, copy.deepcopy(obj), deleted))
            return
        inf = self.informers._informers.get((r.group, r.plural))
        if inf is not None:
            (inf._remove if deleted else inf._put)(copy.deepcopy(obj))

    def _store(self, r: Any, obj: Obj) -> Obj:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[self._key(r, meta.get("namespace"), meta["name"])] = obj
        self._notify(r, obj)
        return copy.deepcopy(obj)

    def _current(self, r: Any, ns: str | None, name: str) -> Obj:
        obj = self.objects.get(self._key(r, ns, name))
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        return obj

    def all(self, r: Any) -> list[Obj]:
        return sorted((o for (p, _, _), o in self.objects.items() if p == r.plural),
                      key=lambda o: o["metadata"]["name"])

    def find_pod(self, name: str, namespace: str = "ns") -> Obj:
        return self.objects[("pods", namespace, name)]

    def names(self, r: Any) -> list[str]:
        return [o["metadata"]["name"] for o in self.all(r)]

    # -- verbs ----------------------------------------------------------------------------------
    async def get(self, r: Any, name: str, namespace: str | None = None, **_: Any) -> Obj:
        return copy.deepcopy(self._current(r, namespace, name))

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._names):05d}"
        self.calls.append(("create", r.plural, meta["name"]))
        if self._key(r, meta.get("namespace"), meta["name"]) in self.objects:
            raise errors.StatusError(409, "AlreadyExists",
                                     f'{r.plural} "{meta["name"]}" already exists')
        meta["uid"] = str(uuid.uuid4())
        n = next(_stamp)  # creation order shows in the timestamps
        meta["creationTimestamp"] = f"2024-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:" \
                                    f"{n % 60:02d}Z"
        if r.kind in ("StatefulSet", "DaemonSet"):
            meta["generation"] = 1
        if r.kind == "Pod":
            obj["status"] = {"phase": "Pending"}
        return self._store(r, obj)

    async def update(self, r: Any, obj: Obj, subresource: str = "", **_: Any) -> Obj:
        meta = obj["metadata"]
        self.calls.append(("update", r.plural, meta["name"]))
        cur = self._current(r, meta.get("namespace"), meta["name"])
        new = copy.deepcopy(obj)
        if subresource == "status":
            new = dict(copy.deepcopy(cur), status=new.get("status"))
        elif new.get("spec") != cur.get("spec") and "generation" in cur["metadata"]:
            new["metadata"]["generation"] = cur["metadata"]["generation"] + 1
        return self._store(r, new)

    async def patch(self, r: Any, name: str, patch: Obj, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "", **_: Any) -> Obj:
        self.calls.append(("patch" + (f"/{subresource}" if subresource else ""), r.plural, name))
        cur = self._current(r, namespace, name)
        new = _merge(copy.deepcopy(cur), patch)
        new["metadata"]["uid"] = cur["metadata"]["uid"]
        return self._store(r, new)

    async def delete(self, r: Any, name: str, namespace: str | None = None,
                     **_: Any) -> Obj:
        """Pods go Terminating (the node agent finishes them: `remove`); others go at once."""
        self.calls.append(("delete", r.plural, name))
        cur = copy.deepcopy(self._current(r, namespace, name))
        if r.kind == "Pod":
            cur["metadata"]["deletionTimestamp"] = "2024-01-01T01:00:00Z"
            return self._store(r, cur)
        del self.objects[self._key(r, namespace, name)]
        self._notify(r, cur, deleted=True)
        return cur

    # -- playing the node agent -------------------------------------------------------------------
    def remove(self, r: Any, name: str, namespace: str | None) -> None:
        obj = self.objects.pop(self._key(r, namespace, name))
        self._notify(r, obj, deleted=True)

    def set_pod(self, name: str, namespace: str, phase: str = "Running", ready: bool = True,
                node: str | None = None) -> None:
        from pocketkube.client.rest import resource

        pods = resource("", "pods")
        pod = copy.deepcopy(self._current(pods, namespace, name))
        pod["status"] = {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
        if node:
            pod["spec"]["nodeName"] = node
        self._store(pods, pod)


async def drain(controller: Any, limit: int = 200) -> list[str]:
    """Run sync over the controller's queue until it is empty; the keys synced."""
    seen = []
    while len(controller.queue) and limit:
        limit -= 1
        key = await controller.queue.get()
        seen.append(key)
        try:
            await controller.sync(key)
        finally:
            controller.queue.done(key)
    return seen
