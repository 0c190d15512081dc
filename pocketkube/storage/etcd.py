"""The etcd backend: a real etcd cluster through its v3 API, for pocketkube on many machines.

It speaks etcd's JSON gRPC gateway (`/v3/kv/*`, `/v3/watch`) with aiohttp instead of gRPC, so
the only dependency is the HTTP client pocketkube already uses (no grpcio, no generated stubs);
the gateway is part of every etcd ≥ 3.4. Keys and values travel base64-encoded and int64s as
JSON strings, with zero-valued fields left out (proto3 JSON).

Mapping of the interface: create is a txn guarded by `create_revision == 0`; update and delete
with a precondition are txns guarded by `mod_revision == expected` (plus `create_revision > 0`,
since a missing key also has mod_revision 0) whose failure branch reads the key back for the
ConflictError; a watch is one streaming POST read as newline-delimited JSON. Requests go to the
endpoint that last answered and fail over to the next one when it cannot be reached.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from pocketkube.storage.interface import (
    Backend,
    CompactedError,
    ConflictError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    StorageError,
)

log = logging.getLogger("pocketkube.storage.etcd")

_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_PROBE_KEY = "\x00pocketkube/compaction-probe"
_RECONNECT_PAUSE = 0.2


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _prefix_end(prefix: str) -> bytes:
    """etcd's range_end for "every key starting with prefix": the prefix with its last byte
    incremented (trailing 0xff bytes dropped); b"\\0" means "to the end of the keyspace"."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\x00"


def _kv(d: dict[str, Any]) -> KeyValue:
    return KeyValue(
        base64.b64decode(d["key"]).decode(),
        base64.b64decode(d.get("value", "")),
        int(d.get("create_revision", 0)),
        int(d.get("mod_revision", 0)),
    )


def _event(d: dict[str, Any]) -> Event:
    prev = _kv(d["prev_kv"]) if "prev_kv" in d else None
    if d.get("type") == "DELETE":
        # etcd's delete event carries only key and revision; the interface wants the old value.
        kv = _kv(d["kv"])
        if prev is not None:
            kv = KeyValue(kv.key, prev.value, prev.create_revision, kv.mod_revision)
        return Event("DELETE", kv, prev)
    kv = _kv(d["kv"])
    return Event("PUT", kv, prev if kv.create_revision != kv.mod_revision else None)


class _EtcdError(StorageError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EtcdBackend(Backend):
    """The store in an etcd cluster; `endpoints` are "host:port" (or full http:// URLs)."""

    def __init__(self, endpoints: list[str], request_timeout: float = 30.0) -> None:
        if not endpoints:
            raise ValueError("EtcdBackend needs at least one endpoint")
        self.endpoints = [e if "://" in e else f"http://{e}" for e in endpoints]
        self._preferred = 0
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._compacted_floor = 0  # compaction only grows: a known lower bound saves probes

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        status = await self._call("/v3/maintenance/status", {})
        log.info("etcd %s at %s, revision %s", status.get("version"),
                 self.endpoints[self._preferred], status.get("header", {}).get("revision"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport ---------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any],
                    timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """POST to the first endpoint that accepts a connection, starting at the last good one.
        Only failures to connect move on: a request that reached etcd may have been applied."""
        if self._session is None:
            raise StorageError("etcd backend is not started")
        data = orjson.dumps(body)
        errors = []
        for i in range(len(self.endpoints)):
            idx = (self._preferred + i) % len(self.endpoints)
            try:
                resp = await self._session.post(
                    self.endpoints[idx] + path, data=data, timeout=timeout,
                    headers={"Content-Type": "application/json"})
            except aiohttp.ClientConnectorError as exc:
                errors.append(f"{self.endpoints[idx]}: {exc}")
                continue
            self._preferred = idx
            return resp
        raise StorageError(f"no etcd endpoint reachable: {'; '.join(errors)}")

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with await self._post(path, body, self._timeout) as resp:
                payload = orjson.loads(await resp.read())
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            raise StorageError(f"etcd request {path} failed: {exc}") from exc
        if resp.status != 200 or "error" in payload:
            raise _EtcdError(str(payload.get("message") or payload.get("error") or payload))
        return payload

    async def _read(self, body: dict[str, Any], revision: int) -> dict[str, Any]:
        try:
            return await self._call("/v3/kv/range", body)
        except _EtcdError as exc:
            if _COMPACTED in exc.message:
                raise CompactedError(revision, await self.compacted_revision()) from None
            if _FUTURE in exc.message:
                raise FutureRevisionError(exc.message) from None
            raise

    # -- reads -------------------------------------------------------------------------------

    async def current_revision(self) -> int:
        r = await self._call("/v3/kv/range", {"key": _b64(_PROBE_KEY), "count_only": True})
        return int(r["header"]["revision"])

    async def _readable(self, revision: int) -> bool:
        try:
            await self._call("/v3/kv/range", {"key": _b64(_PROBE_KEY), "count_only": True,
                                               "revision": str(revision)})
        except _EtcdError as exc:
            if _COMPACTED in exc.message:
                return False
            raise
        return True

    async def compacted_revision(self) -> int:
        # etcd's API does not report its compaction point, so find it: the oldest readable
        # revision, by bisection between the last known floor and the current revision.
        lo, hi = max(self._compacted_floor, 1), await self.current_revision()
        while lo < hi:
            mid = (lo + hi) // 2
            if await self._readable(mid):
                hi = mid
            else:
                lo = mid + 1
        self._compacted_floor = lo
        return lo if lo > 1 else 0

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        body: dict[str, Any] = {"key": _b64(key)}
        if revision > 0:
            body["revision"] = str(revision)
        kvs = (await self._read(body, revision)).get("kvs")
        return _kv(kvs[0]) if kvs else None

    async def list(
        self, prefix: str, revision: int = 0, limit: int = 0, start_key: str | None = None
    ) -> tuple[list[KeyValue], int, bool]:
        low = start_key if start_key is not None and start_key > prefix else prefix
        body: dict[str, Any] = {"key": _b64(low), "range_end": _b64(_prefix_end(prefix))}
        if revision > 0:
            body["revision"] = str(revision)
        if limit > 0:
            body["limit"] = str(limit)
        r = await self._read(body, revision)
        at = revision if revision > 0 else int(r["header"]["revision"])
        return [_kv(d) for d in r.get("kvs", [])], at, bool(r.get("more"))

    async def count(self, prefix: str) -> int:
        r = await self._call("/v3/kv/range", {"key": _b64(prefix), "count_only": True,
                                              "range_end": _b64(_prefix_end(prefix))})
        return int(r.get("count", 0))

    # -- writes ------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        k = _b64(key)
        r = await self._call("/v3/kv/txn", {
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL",
                         "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": _b64(value)}}],
        })
        if not r.get("succeeded"):
            raise KeyExistsError(key)
        return int(r["header"]["revision"])

    def _guarded(self, key: str, expected: int, op: dict[str, Any]) -> dict[str, Any]:
        k = _b64(key)
        return {
            "compare": [
                {"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(expected)},
                {"key": k, "target": "CREATE", "result": "GREATER", "create_revision": "0"},
            ],
            "success": [op],
            "failure": [{"request_range": {"key": k}}],
        }

    @staticmethod
    def _failed(key: str, r: dict[str, Any]) -> StorageError:
        kvs = r["responses"][0]["response_range"].get("kvs")
        return ConflictError(key, _kv(kvs[0])) if kvs else KeyNotFoundError(key)

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        put = {"request_put": {"key": _b64(key), "value": _b64(value)}}
        r = await self._call("/v3/kv/txn", self._guarded(key, expected_mod_revision, put))
        if not r.get("succeeded"):
            raise self._failed(key, r)
        return int(r["header"]["revision"])

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[int, KeyValue]:
        if expected_mod_revision <= 0:
            r = await self._call("/v3/kv/deleterange", {"key": _b64(key), "prev_kv": True})
            prev = r.get("prev_kvs")
        else:
            op = {"request_delete_range": {"key": _b64(key), "prev_kv": True}}
            r = await self._call("/v3/kv/txn", self._guarded(key, expected_mod_revision, op))
            if not r.get("succeeded"):
                raise self._failed(key, r)
            prev = r["responses"][0]["response_delete_range"].get("prev_kvs")
        if not prev:
            raise KeyNotFoundError(key)
        return int(r["header"]["revision"]), _kv(prev[0])

    async def compact(self, revision: int) -> None:
        try:
            await self._call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except _EtcdError as exc:
            if _FUTURE in exc.message:
                raise FutureRevisionError(exc.message) from None
            if _COMPACTED not in exc.message:  # already compacted past it: nothing to do
                raise
        self._compacted_floor = max(self._compacted_floor, revision)

    # -- watch -------------------------------------------------------------------------------

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        # start_revision = after_revision (not +1) so etcd refuses exactly when after_revision
        # is older than its compaction point; the event at after_revision itself is dropped.
        # Revision 0 would mean "from now" to etcd, so the whole history starts at 1.
        last = after_revision
        stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        while True:
            request = {"create_request": {
                "key": _b64(prefix), "range_end": _b64(_prefix_end(prefix)),
                "start_revision": str(max(last, 1)), "prev_kv": True}}
            resp = await self._post("/v3/watch", request, stream_timeout)
            try:
                async for msg in _lines(resp):
                    if "error" in msg:
                        raise StorageError(f"etcd watch failed: {msg['error']}")
                    result = msg.get("result", {})
                    if result.get("canceled"):
                        compact = int(result.get("compact_revision", 0))
                        if compact:
                            raise CompactedError(last, compact)
                        raise StorageError(f"etcd canceled the watch: "
                                           f"{result.get('cancel_reason', 'no reason given')}")
                    events = [e for e in map(_event, result.get("events", ()))
                              if e.revision > last]
                    if events:
                        last = events[-1].revision
                        yield events
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                log.warning("etcd watch on %s broke (%s); resuming after %d", prefix, exc, last)
            finally:
                resp.close()
            # The stream ended without a cancel: the member went away. Resume where we were,
            # pausing briefly so a member that keeps dropping streams is not hammered.
            await asyncio.sleep(_RECONNECT_PAUSE)


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The gateway's stream: one JSON object per line (read by chunks, since one line holds
    a whole batch of events and can exceed aiohttp's readline limit)."""
    buf = bytearray()
    async for chunk in resp.content.iter_any():
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            if line.strip():
                yield _decode(line)
    if buf.strip():
        yield _decode(bytes(buf))


def _decode(line: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise StorageError(f"etcd watch sent a malformed message: {line[:200]!r}") from exc
