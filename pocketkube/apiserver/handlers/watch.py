"""WATCH: a chunked stream of `{"type": ..., "object": ...}` lines served from the watch cache
(apiserver `pkg/endpoints/handlers/watch.go`).

From resourceVersion "" or "0" (or with sendInitialEvents) the stream opens with a synthetic
ADDED per existing object; from N it replays what happened after N, or answers a 410 ERROR event
when N is older than the cache remembers. Each event is encoded once per wire form and the bytes
are shared by every watcher; with a Table Accept each event is a one-row Table whose column
definitions are sent only in the first event, as kube does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import orjson
from aiohttp import web

from pocketkube.api import errors
from pocketkube.apiserver import tables
from pocketkube.apiserver.handlers.common import Scope
from pocketkube.apiserver.handlers.crud import selectors
from pocketkube.registry.listing import matcher
from pocketkube.storage.cacher import CacheEvent, TooOldError

log = logging.getLogger("pocketkube.apiserver.watch")

BOOKMARK_INTERVAL = 30.0
MIN_REQUEST_TIMEOUT = 1800
MAX_BATCH = 500  # initial ADDED events per write


def _event_bytes(type_: str, obj_bytes: bytes) -> bytes:
    return b'{"type":"' + type_.encode() + b'","object":' + obj_bytes + b"}\n"


class Encoder:
    """Wire form of events for one watch request."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.convert = scope.store.convert_out
        self.version = scope.resource.version
        self.form = scope.out.form
        self.include = scope.query.get("includeObject", "Metadata")
        self.first = True

    def encode(self, type_: str, obj: dict[str, Any], ev: CacheEvent | None) -> bytes:
        if ev is not None and ev.obj is obj:
            data = ev.encoded.get((self.form, type_, self.include, self.version))
            if data is not None and not (self.form == "table" and self.first):
                return data
        obj_out = self.convert(obj)
        if self.form == "table":
            headers, self.first = self.first, False
            if headers or ev is None:
                return _event_bytes(type_, orjson.dumps(self._table(obj_out, headers)))
        data = _event_bytes(type_, orjson.dumps(self._object(obj_out)))
        if ev is not None and ev.obj is obj:
            ev.encoded[(self.form, type_, self.include, self.version)] = data
        return data

    def _table(self, obj: dict[str, Any], headers: bool) -> dict[str, Any]:
        return tables.table(self.scope.resource, [obj], include=self.include, headers=headers)

    def _object(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.form == "table":
            return self._table(obj, False)
        if self.form == "partial":
            return tables.partial(obj)
        return obj


def _bookmark(scope: Scope, rv: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    r = scope.resource
    obj = {"kind": r.kind, "apiVersion": r.group_version, "metadata": meta}
    return _event_bytes("BOOKMARK", orjson.dumps(obj))


def _error_event(err: errors.StatusError) -> bytes:
    return _event_bytes("ERROR", orjson.dumps(err.status()))


async def watch(scope: Scope) -> web.StreamResponse:
    q = scope.query
    rv = q.get("resourceVersion", "")
    send_initial = q.get("sendInitialEvents") == "true"
    bookmarks = q.get("allowWatchBookmarks") == "true"
    timeout = float(q.get("timeoutSeconds") or MIN_REQUEST_TIMEOUT * (1 + random.random()))
    labels, fields = selectors(scope)
    match = matcher(labels, fields)
    if scope.info.name:
        name = scope.info.name
        inner = match
        def match(o):
            return (o["metadata"].get("name") == name and (inner is None or inner(o)))
    cache = scope.store.cache
    prefix = scope.resource.prefix(scope.ns)
    wc = scope.registry.cache

    initial: list[dict[str, Any]] = []
    error: errors.StatusError | None = None
    watcher = None
    if rv in ("", "0") or send_initial:
        if rv == "" and not await wc.wait_fresh():
            raise errors.timeout("Too large resource version: the watch cache is behind")
        watcher, initial = cache.watch_from_now(prefix, match)
        if send_initial and rv not in ("", "0"):
            initial = []  # sendInitialEvents with an RV is served as a plain watch from RV
    else:
        try:
            want = int(rv)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{rv}"') from None
        if want > wc.revision and not await wc.wait_for(want):
            raise errors.StatusError(504, "Timeout", f"Timeout: Too large resource version: "
                                     f"{want}, current: {wc.revision}", {"retryAfterSeconds": 1})
        try:
            watcher = cache.watch(want, prefix, match)
        except TooOldError as e:
            error = errors.gone(f"too old resource version: {e.requested} ({e.oldest})")

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(scope.request)
    enc = Encoder(scope)
    if error is not None:
        await resp.write(_error_event(error))
        await resp.write_eof()
        return resp
    assert watcher is not None
    try:
        if initial:
            for i in range(0, len(initial), MAX_BATCH):
                chunk = initial[i:i + MAX_BATCH]
                await resp.write(b"".join(enc.encode("ADDED", o, None) for o in chunk))
        if send_initial and bookmarks:
            await resp.write(_bookmark(scope, wc.revision, initial_end=True))
        await _stream(scope, resp, watcher, enc, timeout, bookmarks)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        watcher.close()
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp


async def _stream(scope: Scope, resp: web.StreamResponse, watcher: Any, enc: Encoder,
                  timeout: float, bookmarks: bool) -> None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            items = await watcher.next_batch(min(remaining, BOOKMARK_INTERVAL))
        except TimeoutError:
            if bookmarks and time.monotonic() < deadline:
                await resp.write(_bookmark(scope, scope.registry.cache.revision))
            continue
        if items is None:
            return
        if items:
            # Everything queued since the last write goes out in one write.
            await resp.write(b"".join(enc.encode(*item) for item in items))
