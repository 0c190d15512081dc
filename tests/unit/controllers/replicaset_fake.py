"""In-memory stand-ins for the workload controllers' collaborators: informers whose caches the
test fills (or an API that fills them on every write, optionally holding the updates back to
play a lagging watch), an API with generateName, resourceVersion conflicts, merge and
strategic ownerReferences patches, and an event recorder that keeps what it is told."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

from pocketkube.api import errors
from pocketkube.client.informer import key_of

Obj = dict[str, Any]


class FakeInformer:
    def __init__(self) -> None:
        self.store: dict[str, Obj] = {}
        self._add: list[Callable[..., None]] = []
        self._upd: list[Callable[..., None]] = []
        self._del: list[Callable[..., None]] = []
        self._indexers: dict[str, Callable[[Obj], list[str]]] = {}

    def on(self, add: Any = None, update: Any = None, delete: Any = None) -> None:
        for lst, h in ((self._add, add), (self._upd, update), (self._del, delete)):
            if h:
                lst.append(h)

    def add_index(self, name: str, fn: Callable[[Obj], list[str]]) -> None:
        self._indexers[name] = fn

    def by_index(self, name: str, value: str) -> list[Obj]:
        fn = self._indexers[name]
        return [o for o in self.store.values() if value in fn(o)]

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def list(self) -> list[Obj]:
        return list(self.store.values())

    def put(self, obj: Obj) -> None:
        key = key_of(obj)
        old = self.store.get(key)
        self.store[key] = obj
        for h in self._upd if old is not None else self._add:
            h(*((old, obj) if old is not None else (obj,)))

    def remove(self, obj: Obj) -> None:
        old = self.store.pop(key_of(obj), None)
        for h in self._del:
            h(old or obj)


class FakeFactory:
    def __init__(self) -> None:
        self.informers: dict[str, FakeInformer] = {}

    def informer(self, r: Any) -> FakeInformer:
        return self.informers.setdefault(r.plural, FakeInformer())


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def record(self, obj: Obj, type_: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


def _merge(dst: Obj, patch: Obj) -> None:
    for k, v in patch.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


class FakeApi:
    """Writes land in the informers at once unless `hold` is set (then `release()` delivers)."""

    def __init__(self, factory: FakeFactory, now: str = "2024-01-01T00:00:00Z") -> None:
        self.factory = factory
        self.objects: dict[tuple[str, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.hold = False
        self.pending: list[tuple[str, str, Obj]] = []
        self.fail_create: errors.StatusError | None = None
        self.now = now
        self._rv = itertools.count(100)
        self._names = itertools.count(1)
        self._uids = itertools.count(1)

    def _deliver(self, plural: str, verb: str, obj: Obj) -> None:
        if self.hold:
            self.pending.append((plural, verb, copy.deepcopy(obj)))
            return
        inf = self.factory.informer(type("R", (), {"plural": plural})())
        (inf.remove if verb == "delete" else inf.put)(copy.deepcopy(obj))

    def release(self) -> None:
        self.hold = False
        pending, self.pending = self.pending, []
        for plural, verb, obj in pending:
            self._deliver(plural, verb, obj)

    def seed(self, plural: str, obj: Obj) -> Obj:
        """Store an object as if created by a user (uid, resourceVersion, timestamps)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", self.now)
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[(plural, key_of(obj))] = obj
        self._deliver(plural, "put", obj)
        return copy.deepcopy(obj)

    def _find(self, plural: str, ns: str | None, name: str) -> Obj:
        obj = self.objects.get((plural, f"{ns}/{name}" if ns else name))
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{plural} "{name}" not found')
        return obj

    async def get(self, r: Any, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("get", r.plural, name))
        return copy.deepcopy(self._find(r.plural, namespace, name))

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        if self.fail_create is not None and r.plural == "pods":
            raise self.fail_create
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._names):05d}"
        meta["namespace"] = namespace or meta.get("namespace")
        self.calls.append(("create", r.plural, meta["name"]))
        if (r.plural, key_of(obj)) in self.objects:
            raise errors.StatusError(409, "AlreadyExists",
                                     f'{r.plural} "{meta["name"]}" already exists')
        return self.seed(r.plural, obj)

    async def update(self, r: Any, obj: Obj, **_: Any) -> Obj:
        meta = obj["metadata"]
        self.calls.append(("update", r.plural, meta["name"]))
        cur = self._find(r.plural, meta.get("namespace"), meta["name"])
        if meta.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise errors.StatusError(409, "Conflict", "the object has been modified")
        new = copy.deepcopy(obj)
        new["status"] = cur.get("status", {})
        if new.get("spec") != cur.get("spec"):
            new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
        return self._store(r.plural, new)

    def _store(self, plural: str, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[(plural, key_of(obj))] = obj
        self._deliver(plural, "put", obj)
        return copy.deepcopy(obj)

    async def patch(self, r: Any, name: str, patch: Obj, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "", **_: Any) -> Obj:
        self.calls.append((f"patch{'/' + subresource if subresource else ''}", r.plural, name))
        cur = copy.deepcopy(self._find(r.plural, namespace, name))
        patch = copy.deepcopy(patch)
        meta = patch.get("metadata") or {}
        if "uid" in meta and meta.pop("uid") != cur["metadata"]["uid"]:
            raise errors.StatusError(409, "Conflict", "uid precondition")
        if patch_type == "strategic" and "ownerReferences" in meta:
            refs = cur["metadata"].get("ownerReferences") or []
            for ref in meta.pop("ownerReferences"):
                refs = [x for x in refs if x.get("uid") != ref["uid"]]
                if ref.get("$patch") != "delete":
                    refs.append(ref)
            cur["metadata"]["ownerReferences"] = refs
        _merge(cur, patch)
        return self._store(r.plural, cur)

    async def delete(self, r: Any, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("delete", r.plural, name))
        obj = self._find(r.plural, namespace, name)
        del self.objects[(r.plural, key_of(obj))]
        self._deliver(r.plural, "delete", obj)
        return {}

    def of(self, plural: str) -> list[Obj]:
        return [o for (p, _), o in self.objects.items() if p == plural]

    def writes(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] != "get"]
