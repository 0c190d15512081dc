"""An in-memory stand-in for the API client, enough for the simulated nodes: nodes, leases and
pods by key, merge patches applied to a copy (as a watch would deliver the new object), and
every request recorded."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from pocketkube.api import errors
from pocketkube.api.resources import Resource

Obj = dict[str, Any]


class FakeApi:
    def __init__(self) -> None:
        self.stores: dict[str, dict[str, Obj]] = {"nodes": {}, "leases": {}, "pods": {}}
        self.calls: list[tuple[str, str, str, str, Any]] = []
        self.requests = 0
        self._uids = itertools.count(1)

    def use_store(self, plural: str, store: dict[str, Obj]) -> None:
        """Share an informer's cache, so writes show up in it at once."""
        self.stores[plural] = store

    @staticmethod
    def key(name: str, namespace: str | None) -> str:
        return f"{namespace}/{name}" if namespace else name

    def record(self, verb: str, r: Resource, name: str, sub: str, body: Any) -> None:
        self.requests += 1
        self.calls.append((verb, r.plural, name, sub, body))

    def of(self, verb: str, plural: str, sub: str | None = None) -> list[tuple]:
        return [c for c in self.calls if c[0] == verb and c[1] == plural and
                (sub is None or c[3] == sub)]  # fmt: skip

    async def create(self, r: Resource, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        meta = obj["metadata"]
        self.record("create", r, meta["name"], "", obj)
        key = self.key(meta["name"], meta.get("namespace"))
        if key in self.stores[r.plural]:
            raise errors.StatusError(409, "AlreadyExists", f'{r.plural} "{meta["name"]}" exists')
        new = copy.deepcopy(obj)
        new["metadata"]["uid"] = f"uid-{next(self._uids)}"
        self.stores[r.plural][key] = new
        return copy.deepcopy(new)

    async def get(self, r: Resource, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.record("get", r, name, "", None)
        obj = self.stores[r.plural].get(self.key(name, namespace))
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        return copy.deepcopy(obj)

    async def update(self, r: Resource, obj: Obj, subresource: str = "", **_: Any) -> Obj:
        meta = obj["metadata"]
        self.record("update", r, meta["name"], subresource, obj)
        self.stores[r.plural][self.key(meta["name"], meta.get("namespace"))] = copy.deepcopy(obj)
        return obj

    async def patch(
        self,
        r: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str = "",
        **_: Any,
    ) -> Obj:
        self.record("patch", r, name, subresource, patch)
        key = self.key(name, namespace)
        cur = self.stores[r.plural].get(key)
        if cur is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        new = copy.deepcopy(cur)
        if subresource == "status":
            new["status"] = {**(new.get("status") or {}), **patch["status"]}
        else:
            for k, v in patch.get("metadata", {}).items():
                new["metadata"][k] = {**(new["metadata"].get(k) or {}), **v}
        self.stores[r.plural][key] = new
        return copy.deepcopy(new)

    async def delete(
        self, r: Resource, name: str, namespace: str | None = None, **options: Any
    ) -> Obj:
        self.record("delete", r, name, "", options)
        obj = self.stores[r.plural].pop(self.key(name, namespace), None)
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        return obj


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()
