"""Informers: one list+watch per resource, a local cache that handlers read, and event handlers
that (by convention) only enqueue keys — client-go's `tools/cache` reflector + indexer +
shared informer in one small class.

On start it lists, then watches from the list's resourceVersion. A clean end of the stream
re-watches from the last seen version; a 410 Expired relists and reconciles the cache against
the fresh list (synthesizing add/update/delete), so handlers never miss a final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pocketkube.api import errors
from pocketkube.api.resources import Resource
from pocketkube.client.rest import ApiClient

log = logging.getLogger("pocketkube.client.informer")

Obj = dict[str, Any]
Handler = Callable[..., None]
IndexFunc = Callable[[Obj], list[str]]


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


class Informer:
    def __init__(self, client: ApiClient, resource: Resource, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 watch_timeout: int = 300) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.selectors = {"label_selector": label_selector, "field_selector": field_selector}
        self.watch_timeout = watch_timeout
        self.store: dict[str, Obj] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self._adds: list[Handler] = []
        self._updates: list[Handler] = []
        self._deletes: list[Handler] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._task: asyncio.Task[None] | None = None

    # -- handlers and indexes -------------------------------------------------------------------
    def on(self, add: Handler | None = None, update: Handler | None = None,
           delete: Handler | None = None) -> None:
        """add(obj), update(old, new), delete(obj)."""
        if add:
            self._adds.append(add)
        if update:
            self._updates.append(update)
        if delete:
            self._deletes.append(delete)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._indexers[name] = func
        idx = self._indexes[name] = {}
        for k, o in self.store.items():
            for v in func(o):
                idx.setdefault(v, set()).add(k)

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [self.store[k] for k in self._indexes[name].get(value, ()) if k in self.store]

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def list(self) -> list[Obj]:
        return list(self.store.values())

    # -- cache maintenance ----------------------------------------------------------------------
    def _index(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._indexers.items():
            idx = self._indexes[name]
            if old is not None:
                for v in func(old):
                    idx.get(v, set()).discard(key)
            if new is not None:
                for v in func(new):
                    idx.setdefault(v, set()).add(key)

    def _put(self, obj: Obj) -> None:
        key = key_of(obj)
        old = self.store.get(key)
        self.store[key] = obj
        self._index(key, old, obj)
        for h in (self._updates if old is not None else self._adds):
            _call(h, *((old, obj) if old is not None else (obj,)))

    def _remove(self, obj: Obj) -> None:
        key = key_of(obj)
        old = self.store.pop(key, None)
        self._index(key, old, None)
        for h in self._deletes:
            _call(h, old or obj)

    def _replace(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in items}
        for key in [k for k in self.store if k not in fresh]:
            self._remove(self.store[key])
        for key, obj in fresh.items():
            old = self.store.get(key)
            if old is None or old["metadata"].get("resourceVersion") != \
                    obj["metadata"].get("resourceVersion"):
                self._put(obj)

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.resource.plural}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_synced(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def _list(self) -> None:
        lst = await self.client.list(self.resource, self.namespace, **self.selectors)
        self._replace(lst.get("items") or [])
        self.resource_version = lst["metadata"].get("resourceVersion", "")
        self.synced.set()

    async def run(self) -> None:
        backoff = 0.2
        relist = True
        while True:
            try:
                if relist:
                    await self._list()
                    relist = False
                async for type_, obj in self.client.watch(
                        self.resource, self.namespace, self.resource_version,
                        self.watch_timeout, **self.selectors):
                    self.resource_version = obj["metadata"].get("resourceVersion",
                                                                self.resource_version)
                    if type_ == "DELETED":
                        self._remove(obj)
                    elif type_ in ("ADDED", "MODIFIED"):
                        self._put(obj)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except errors.StatusError as e:
                if e.code == 410:
                    relist = True
                    continue
                log.warning("%s informer: %s; retrying in %.1fs", self.resource.plural,
                            e.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as e:
                log.warning("%s informer: %s; relisting in %.1fs", self.resource.plural, e,
                            backoff)
                relist = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


def _call(h: Handler, *args: Any) -> None:
    try:
        h(*args)
    except Exception:
        log.exception("informer handler failed")
