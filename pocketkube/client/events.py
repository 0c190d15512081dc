"""Recording core/v1 Events for the objects a component acts on, as client-go's event
broadcaster + correlator do: `record()` never blocks the caller; writes happen in the
background; an event identical to a recent one (same object and field path, type, reason and
message from the same component: client-go's getEventKey) is not written again but has its
`count` incremented and `lastTimestamp` moved, so a pod failing to schedule every few seconds
keeps one event, not hundreds.

A field path names a part of the object (the kubelet's "spec.containers{web}"), so the same
event about two containers of one pod stays two events, as `kubectl describe` shows them.

Writes for one aggregation key are never concurrent (the work queue hands a key to one worker
at a time), so the create of an event and the patches that bump its count cannot race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import WorkQueue

log = logging.getLogger("pocketkube.client.events")
Obj = dict[str, Any]
EVENTS = resource("", "events")
CACHE_SIZE = 4096  # aggregation keys remembered (client-go's maxLruCacheEntries)
WORKERS = 4


class _Entry:
    __slots__ = ("body", "count", "last", "written", "name")

    def __init__(self, body: Obj) -> None:
        self.body = body
        self.count = 1
        self.last = body["lastTimestamp"]
        self.written = 0  # count last written to the API
        self.name = body["metadata"]["name"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Obj, field_path: str | None = None) -> Obj:
    """A core/v1 ObjectReference to `obj` (client-go's GetPartialReference when `field_path`
    is given); empty fields are left out, as Go's omitempty does."""
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", "v1"),
           "name": meta.get("name", ""), "uid": meta.get("uid", ""),
           "resourceVersion": meta.get("resourceVersion", ""), "fieldPath": field_path or ""}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """`record(obj, type, reason, message, action=None, related=None, *, field_path=None)`
    writes (or aggregates) an Event about `obj` (or the part of it `field_path` names) from
    `component`."""

    def __init__(self, client: ApiClient, component: str, instance: str = "",
                 host: str = "") -> None:
        self.client = client
        self.component = component
        self.instance = instance or component
        self.host = host
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._queue: WorkQueue | None = None
        self._keys: dict[str, tuple] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._dirty: set[str] = set()  # keys with counts not yet written
        self._idle = asyncio.Event()
        self._idle.set()
        self.written = 0

    def record(self, obj: Obj, type_: str, reason: str, message: str,
               action: str | None = None, related: Obj | None = None, *,
               field_path: str | None = None) -> None:
        ref = object_reference(obj, field_path)
        key = (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("fieldPath"),
               ref.get("uid"), ref.get("apiVersion"), type_, reason, message, self.component)
        now = _now()
        entry = self._entries.get(key)
        if entry is not None:
            entry.count += 1
            entry.last = now
            self._entries.move_to_end(key)
        else:
            name = f"{ref.get('name', 'event')}.{time.time_ns():x}"
            body: Obj = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": ref.get("namespace", "default")},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": self.component, **({"host": self.host}
                                                           if self.host else {})},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1, "eventTime": None,
                "reportingComponent": self.component, "reportingInstance": self.instance,
            }
            if action:
                body["action"] = action
            if related:
                body["related"] = object_reference(related)
            entry = _Entry(body)
            self._entries[key] = entry
            while len(self._entries) > CACHE_SIZE:
                old_key, _ = self._entries.popitem(last=False)
                self._keys.pop(_key_id(old_key), None)
        kid = _key_id(key)
        self._keys[kid] = key
        self._ensure_started()
        assert self._queue is not None
        self._dirty.add(kid)
        self._idle.clear()
        self._queue.add(kid)

    def _ensure_started(self) -> None:
        if self._queue is None:
            self._queue = WorkQueue()
            self._workers = [asyncio.get_running_loop().create_task(self._worker())
                             for _ in range(WORKERS)]

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            kid = await self._queue.get()
            if kid is None:
                return
            done = True
            try:
                done = await self._write(kid)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # events are best effort, as in client-go
                log.warning("could not write event: %s", e)
            finally:
                if done:
                    self._dirty.discard(kid)
                    if not self._dirty:
                        self._idle.set()
                self._queue.done(kid)

    async def _write(self, kid: str) -> bool:
        """Write the key's latest count; whether nothing newer is left to write."""
        key = self._keys.get(kid)
        entry = self._entries.get(key) if key is not None else None
        if entry is None or entry.written == entry.count:
            return True
        count, last = entry.count, entry.last
        ns = entry.body["metadata"]["namespace"]
        if entry.written:
            try:
                await self.client.patch(EVENTS, entry.name, {"count": count, "lastTimestamp": last},
                                        ns)
                entry.written = count
                self.written += 1
                return entry.written == entry.count
            except StatusError as e:
                if e.code != 404:
                    raise
                # The event expired: write it again under a new name.
                entry.name = f"{entry.body['involvedObject'].get('name', 'event')}." \
                             f"{time.time_ns():x}"
        body = dict(entry.body, count=count, lastTimestamp=last,
                    metadata={"name": entry.name, "namespace": ns})
        await self.client.create(EVENTS, body, ns)
        entry.written = count
        self.written += 1
        return entry.written == entry.count

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every recorded event has been written (or failed)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.shutdown()
        for t in self._workers:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._workers = []


def _key_id(key: tuple) -> str:
    return "\x00".join(str(k) for k in key)
