"""An in-memory API for controller tests: get/list/create/update/patch/delete on dicts, with
uid and resourceVersion preconditions, deletion propagation finalizers, and every change fed
to the shared informers' caches at once (so handlers run, as a watch would make them)."""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

from pocketkube.api import errors
from pocketkube.controllers.base import InformerFactory

Obj = dict[str, Any]


def merge_patch(target: Any, patch: Any, strategic: bool = False) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif strategic and k == "conditions" and isinstance(v, list):
            conds = [dict(c) for c in out.get(k) or []]
            for c in v:
                cur = next((x for x in conds if x.get("type") == c.get("type")), None)
                if cur is None:
                    conds.append(dict(c))
                else:
                    cur.update(c)
            out[k] = conds
        else:
            out[k] = merge_patch(out.get(k), v, strategic)
    return out


class FakeApi:
    def __init__(self, informers: InformerFactory | None = None) -> None:
        self.informers = informers
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._rv = itertools.count(1)

    def _key(self, r: Any, ns: str | None, name: str) -> tuple[str, str | None, str]:
        return (r.plural, ns if r.namespaced else None, name)

    def _notify(self, r: Any, obj: Obj, deleted: bool = False) -> None:
        if self.informers is None:
            return
        inf = self.informers._informers.get((r.group, r.plural))
        if inf is None:
            return
        if deleted:
            inf._remove(copy.deepcopy(obj))
        else:
            inf._put(copy.deepcopy(obj))

    def _store(self, r: Any, key: tuple, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        self._notify(r, obj)
        return copy.deepcopy(obj)

    def _current(self, r: Any, ns: str | None, name: str) -> Obj:
        obj = self.objects.get(self._key(r, ns, name))
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        return obj

    def find(self, r: Any, name: str, ns: str | None = None) -> Obj | None:
        return self.objects.get(self._key(r, ns, name))

    # -- verbs ----------------------------------------------------------------------------------
    async def get(self, r: Any, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("get", r.plural, name))
        return copy.deepcopy(self._current(r, namespace, name))

    async def list(self, r: Any, namespace: str | None = None, **_: Any) -> Obj:
        items = [copy.deepcopy(o) for (p, ns, _n), o in self.objects.items()
                 if p == r.plural and (namespace is None or ns == namespace)]
        return {"items": items, "metadata": {"resourceVersion": str(next(self._rv))}}

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace and r.namespaced:
            meta["namespace"] = namespace
        name = meta["name"]
        self.calls.append(("create", r.plural, name))
        key = self._key(r, meta.get("namespace"), name)
        if key in self.objects:
            raise errors.StatusError(409, "AlreadyExists", f'{r.plural} "{name}" already exists')
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        obj.setdefault("apiVersion", r.group_version)
        obj.setdefault("kind", r.kind)
        return self._store(r, key, obj)

    def _check(self, cur: Obj, meta: Obj) -> None:
        if meta.get("uid") and meta["uid"] != cur["metadata"]["uid"]:
            raise errors.StatusError(409, "Conflict", "uid precondition failed")
        rv = meta.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise errors.StatusError(409, "Conflict", "the object has been modified")

    async def update(self, r: Any, obj: Obj, subresource: str = "", **_: Any) -> Obj:
        meta = obj["metadata"]
        self.calls.append(("update" + (f"/{subresource}" if subresource else ""), r.plural,
                           meta["name"]))
        cur = self._current(r, meta.get("namespace"), meta["name"])
        self._check(cur, meta)
        new = copy.deepcopy(obj)
        if subresource == "status":
            new = dict(copy.deepcopy(cur), status=new.get("status"))
        elif "status" in cur:
            new["status"] = copy.deepcopy(cur["status"])
        return self._finish(r, new)

    async def patch(self, r: Any, name: str, patch: Obj, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "", **_: Any) -> Obj:
        self.calls.append(("patch" + (f"/{subresource}" if subresource else ""), r.plural, name))
        cur = self._current(r, namespace, name)
        self._check(cur, patch.get("metadata") or {})
        new = merge_patch(copy.deepcopy(cur), patch, patch_type == "strategic")
        new["metadata"]["uid"] = cur["metadata"]["uid"]
        return self._finish(r, new)

    def _finish(self, r: Any, new: Obj) -> Obj:
        meta = new["metadata"]
        key = self._key(r, meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[key]
            self._notify(r, new, deleted=True)
            return copy.deepcopy(new)
        return self._store(r, key, new)

    async def delete(self, r: Any, name: str, namespace: str | None = None,
                     **options: Any) -> Obj:
        self.calls.append(("delete", r.plural, name))
        cur = self._current(r, namespace, name)
        self._check(cur, options.get("preconditions") or {})
        policy = options.get("propagationPolicy") or "Background"
        fins = list(cur["metadata"].get("finalizers") or [])
        if policy == "Orphan" and "orphan" not in fins:
            fins.append("orphan")
        if policy == "Foreground" and "foregroundDeletion" not in fins:
            fins.append("foregroundDeletion")
        new = copy.deepcopy(cur)
        new["metadata"]["finalizers"] = fins
        new["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        return self._finish(r, new)


async def drain(controller: Any, limit: int = 1000) -> list[str]:
    """Run the controller's sync over its queue until the queue is empty; the keys synced."""
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
