"""An in-memory stand-in for ApiClient: get/create/update/patch(merge)/delete on dicts with
resourceVersion conflicts, enough to test components' write logic without a server."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pocketkube.api import errors


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._rv = itertools.count(1)

    def _key(self, r: Any, ns: str | None, name: str) -> tuple[str, str | None, str]:
        return (r.plural, ns if r.namespaced else None, name)

    async def get(self, r: Any, name: str, namespace: str | None = None) -> dict:
        self.calls.append(("get", r.plural, name))
        obj = self.objects.get(self._key(r, namespace, name))
        if obj is None:
            raise errors.StatusError(404, "NotFound", f'{r.plural} "{name}" not found')
        return copy.deepcopy(obj)

    async def create(self, r: Any, obj: dict, namespace: str | None = None, **_: Any) -> dict:
        name = obj["metadata"]["name"]
        self.calls.append(("create", r.plural, name))
        key = self._key(r, namespace or obj["metadata"].get("namespace"), name)
        if key in self.objects:
            raise errors.StatusError(409, "AlreadyExists", f'{r.plural} "{name}" already exists')
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def update(self, r: Any, obj: dict, **_: Any) -> dict:
        meta = obj["metadata"]
        self.calls.append(("update", r.plural, meta["name"]))
        key = self._key(r, meta.get("namespace"), meta["name"])
        cur = self.objects.get(key)
        if cur is None:
            raise errors.StatusError(404, "NotFound", "not found")
        if meta.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise errors.StatusError(409, "Conflict", "the object has been modified")
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def patch(self, r: Any, name: str, patch: dict, namespace: str | None = None,
                    **_: Any) -> dict:
        self.calls.append(("patch", r.plural, name))
        key = self._key(r, namespace, name)
        cur = self.objects.get(key)
        if cur is None:
            raise errors.StatusError(404, "NotFound", "not found")
        cur.update(copy.deepcopy(patch))
        cur["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(cur)
