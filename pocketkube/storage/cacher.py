"""The watch cache: the API server's in-memory view of the store.

Like kube-apiserver's cacher (`apiserver/pkg/storage/cacher`), it serves lists and fans watch
events out to every client from memory. One difference makes it simpler: a single backend watch
over the whole `/registry/` keyspace feeds every resource's cache, so each cache knows it has seen
every change up to the global revision. A consistent list is then "wait until the cache reaches
the store's current revision, answer from memory" — no per-resource progress notifications.

Each resource keeps a ring buffer of recent events keyed by revision, so a client watching from a
slightly old resourceVersion is replayed from memory; older ones get 410 Expired. Watchers have
bounded queues: one that falls too far behind is closed (its client re-watches), so a slow
client never holds memory for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from pocketkube.storage.interface import Backend, CompactedError, Event, KeyValue

log = logging.getLogger("pocketkube.apiserver.cacher")

Obj = dict[str, Any]
Decode = Callable[[KeyValue], Obj]
Match = Callable[[Obj], bool]

WATCHER_QUEUE = 10_000


class TooOldError(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class CacheEvent:
    """One change as the cache saw it; `encoded` memoizes its wire form per (format, type) so an
    event is encoded once however many watchers receive it."""

    __slots__ = ("type", "key", "obj", "prev", "revision", "encoded")

    def __init__(self, type_: str, key: str, obj: Obj, prev: Obj | None, revision: int) -> None:
        self.type = type_
        self.key = key
        self.obj = obj
        self.prev = prev
        self.revision = revision
        self.encoded: dict[Any, bytes] = {}


class CacheWatcher:
    """A subscription: yields (type, obj, event) after filtering.

    A deque plus one waiter future rather than an asyncio.Queue: with a thousand watchers a
    change wakes a thousand tasks, and each wake-up must stay cheap."""

    def __init__(self, cache: ResourceCache, match: Match | None, prefix: str = "") -> None:
        self.cache = cache
        self.match = match
        # A namespaced watch: only keys under this prefix (the cache holds every namespace).
        self.prefix = prefix if prefix != cache.prefix else ""
        self.buffer: deque[tuple[str, Obj, CacheEvent]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def deliver(self, ev: CacheEvent) -> None:
        if self.closed or (self.prefix and not ev.key.startswith(self.prefix)):
            return
        m = self.match
        if m is None:
            item = (ev.type, ev.obj, ev)
        elif ev.type == "MODIFIED":
            cur, old = m(ev.obj), ev.prev is not None and m(ev.prev)
            if cur:
                item = ("MODIFIED" if old else "ADDED", ev.obj, ev)
            elif old:
                # Left the selection: a DELETED with the old content at the new revision.
                prev = dict(ev.prev)  # type: ignore[arg-type]
                prev["metadata"] = {**prev.get("metadata", {}),
                                    "resourceVersion": str(ev.revision)}
                item = ("DELETED", prev, ev)
            else:
                return
        elif m(ev.obj):
            item = (ev.type, ev.obj, ev)
        else:
            return
        if len(self.buffer) >= WATCHER_QUEUE:
            log.warning("closing a watcher of %s that fell %d events behind",
                        self.cache.prefix, WATCHER_QUEUE)
            self.close()
            return
        self.buffer.append(item)
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.cache.watchers.discard(self)
        self._wake()

    async def next_batch(self, timeout: float) -> list[tuple[str, Obj, CacheEvent]] | None:
        """Everything delivered so far (waiting up to `timeout` for something); None once the
        watcher is closed and drained. Raises TimeoutError."""
        if not self.buffer:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            finally:
                self._waiter = None
            if not self.buffer:
                return None if self.closed else []
        items = list(self.buffer)
        self.buffer.clear()
        return items

    async def get(self, timeout: float | None = None) -> tuple[str, Obj, CacheEvent] | None:
        """The next event; None when the watcher is closed. Raises TimeoutError."""
        if not self.buffer and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            finally:
                self._waiter = None
        if self.buffer:
            return self.buffer.popleft()
        return None


class ResourceCache:
    def __init__(self, prefix: str, capacity: int) -> None:
        self.prefix = prefix
        self.items: dict[str, Obj] = {}
        self.buffer: deque[CacheEvent] = deque(maxlen=capacity)
        self.oldest = 0  # events after this revision are all in the buffer
        self.watchers: set[CacheWatcher] = set()

    def apply(self, ev: CacheEvent) -> None:
        if ev.type == "DELETED":
            self.items.pop(ev.key, None)
        else:
            self.items[ev.key] = ev.obj
        if len(self.buffer) == self.buffer.maxlen:
            self.oldest = self.buffer[0].revision
        self.buffer.append(ev)
        for w in list(self.watchers):
            w.deliver(ev)

    def snapshot(self, prefix: str, match: Match | None) -> list[Obj]:
        """Current objects under `prefix`, in key order, filtered."""
        if prefix == self.prefix:
            keys = sorted(self.items)
        else:
            keys = sorted(k for k in self.items if k.startswith(prefix))
        items = self.items
        if match is None:
            return [items[k] for k in keys]
        return [o for k in keys if match(o := items[k])]

    def watch(self, after: int, prefix: str, match: Match | None) -> CacheWatcher:
        """A watcher replaying events after revision `after` from the buffer, then live."""
        if after < self.oldest:
            raise TooOldError(after, self.oldest)
        w = CacheWatcher(self, match, prefix)
        for ev in self.buffer:
            if ev.revision > after:
                w.deliver(ev)
        self.watchers.add(w)
        return w

    def watch_from_now(self, prefix: str, match: Match | None) -> tuple[CacheWatcher, list[Obj]]:
        """Synthetic ADDED for every current object, then live events (no gap: nothing awaits
        between the snapshot and the subscription)."""
        items = self.snapshot(prefix, match)
        w = CacheWatcher(self, match, prefix)
        self.watchers.add(w)
        return w, items


class WatchCache:
    def __init__(self, backend: Backend, decode: Decode, capacity: int = 5000) -> None:
        self.backend = backend
        self.decode = decode
        self.capacity = capacity
        self.caches: dict[str, ResourceCache] = {}
        self.revision = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def register(self, prefix: str) -> ResourceCache:
        if prefix not in self.caches:
            self.caches[prefix] = ResourceCache(prefix, self.capacity)
        return self.caches[prefix]

    def cache_for_key(self, key: str) -> ResourceCache | None:
        # Keys are /registry/<group>/<resource>/...: the cache prefix is the first three parts.
        parts = key.split("/", 4)
        if len(parts) < 5:
            return None
        return self.caches.get(f"/registry/{parts[2]}/{parts[3]}/")

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._run(), name="watch-cache")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for c in self.caches.values():
            for w in list(c.watchers):
                w.close()

    async def _load(self) -> None:
        kvs, rev, _ = await self.backend.list("/registry/")
        for c in self.caches.values():
            c.items.clear()
            c.buffer.clear()
            c.oldest = rev
        for kv in kvs:
            c = self.cache_for_key(kv.key)
            if c is not None:
                c.items[kv.key] = self.decode(kv)
        self.revision = rev
        self.ready.set()
        self._wake()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                # Watch every key (not just /registry/) so that writes elsewhere in a shared
                # etcd still advance the revision this cache has caught up to.
                async for batch in self.backend.watch("/", self.revision):
                    self._apply(batch)
                    backoff = 0.1
                log.warning("store watch ended; re-watching from %d", self.revision)
            except asyncio.CancelledError:
                raise
            except CompactedError:
                log.warning("store watch fell behind compaction; reloading the cache")
                await self._reset()
            except Exception as e:  # backend unreachable: retry, then reload
                log.warning("store watch failed (%s); retrying in %.1fs", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _reset(self) -> None:
        for c in self.caches.values():
            for w in list(c.watchers):
                w.close()
        await self._load()

    def _apply(self, batch: list[Event]) -> None:
        for e in batch:
            rev = e.revision
            c = self.cache_for_key(e.kv.key)
            if c is not None:
                prev = c.items.get(e.kv.key)
                if e.type == "DELETE":
                    obj = self.decode(e.kv)
                    c.apply(CacheEvent("DELETED", e.kv.key, obj, prev, rev))
                else:
                    obj = self.decode(e.kv)
                    c.apply(CacheEvent("MODIFIED" if prev is not None else "ADDED",
                                       e.kv.key, obj, prev, rev))
            self.revision = max(self.revision, rev)
        self._wake()

    def _wake(self) -> None:
        if not self._waiters:
            return
        keep = []
        for rev, fut in self._waiters:
            if rev <= self.revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((rev, fut))
        self._waiters = keep

    async def wait_for(self, revision: int, timeout: float = 3.0) -> bool:
        """Wait until the cache has seen `revision`; False on timeout."""
        if revision <= self.revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False

    async def wait_fresh(self, timeout: float = 3.0) -> bool:
        """Wait until the cache reflects every write the store has acknowledged."""
        return await self.wait_for(await self.backend.current_revision(), timeout)
