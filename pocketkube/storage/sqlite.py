"""SQLite as an etcd-shaped MVCC store: the embedded default backend.

Modelled on k3s' kine (`pkg/drivers/generic`, `pkg/logstructured/sqllog`): one append-only log
table whose AUTOINCREMENT id is the revision. Every write appends a row (a delete appends a
tombstone carrying the deleted value), so reading at an old revision and replaying a watch are
plain queries over the log, and compaction deletes the rows that later rows superseded.

Durability without one fsync per request: a single writer thread owns the only write connection
and commits every write queued at that moment in ONE transaction (group commit). Preconditions
(create-if-absent, compare-and-swap) are checked inside that thread, so they cannot race, and a
failed precondition fails only its own write. A write's coroutine returns only after its
transaction committed durably (WAL, synchronous=FULL). Reads run on their own connections in a
small thread pool, each inside one read transaction (a consistent snapshot), so the event loop
never waits on disk.

Hand-written because nothing off the shelf fits: kine is Go, and an etcd-shaped store over SQLite
has to own its schema, its writer thread and its watch fan-out together.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pocketkube.storage.interface import Backend, CompactedError, Event, KeyValue, StorageError
from pocketkube.storage.sqlite_log import (
    Op,
    Snapshot,
    apply_op,
    connect,
    read_count,
    read_get,
    read_list,
    read_replay,
    read_snapshot,
)

log = logging.getLogger("pocketkube.storage.sqlite")

T = TypeVar("T")

_MAX_BATCH = 2000  # writes per group commit; bounds one transaction's size and latency
_READERS = 4
_REPLAY_CHUNK = 1000  # rows per read transaction when a watch replays history


class _Watcher:
    __slots__ = ("prefix", "pending", "wake", "closed")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pending: list[Event] = []
        self.wake = asyncio.Event()
        self.closed = False


class SQLiteBackend(Backend):
    """The store in one SQLite file (WAL mode); see the module docstring for the design."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._watchers: set[_Watcher] = set()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn, revision = await self._loop.run_in_executor(None, connect, self.path, True)
        self._writer = threading.Thread(
            target=self._run_writer, args=(conn, revision), name="pocketkube-sqlite-writer",
            daemon=True)
        self._writer.start()
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="pocketkube-sqlite-read")
        log.info("sqlite store %s open at revision %d", self.path, revision)

    async def close(self) -> None:
        if self._closed or self._loop is None:
            return
        self._closed = True
        self._queue.put(None)
        if self._writer is not None:
            await self._loop.run_in_executor(None, self._writer.join)
        for w in self._watchers:
            w.closed = True
            w.wake.set()
        if self._readers is not None:
            await self._loop.run_in_executor(None, self._readers.shutdown)
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    # -- reads -------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn, _ = connect(self.path, False)
            self._local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        return conn

    def _in_snapshot(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return fn(conn, read_snapshot(conn), *args)
        finally:
            conn.execute("COMMIT")

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed or self._loop is None or self._readers is None:
            raise StorageError("sqlite store is not open")
        return await self._loop.run_in_executor(self._readers, self._in_snapshot, fn, args)

    async def current_revision(self) -> int:
        snap: Snapshot = await self._read(lambda _c, s: s)
        return snap.current

    async def compacted_revision(self) -> int:
        snap: Snapshot = await self._read(lambda _c, s: s)
        return snap.compacted

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return await self._read(read_get, key, revision)

    async def list(
        self, prefix: str, revision: int = 0, limit: int = 0, start_key: str | None = None
    ) -> tuple[list[KeyValue], int, bool]:
        return await self._read(read_list, prefix, revision, limit, start_key)

    async def count(self, prefix: str) -> int:
        return await self._read(read_count, prefix)

    # -- writes ------------------------------------------------------------------------------

    async def _write(self, kind: str, key: str, value: bytes, expected: int) -> Any:
        if self._closed or self._loop is None:
            raise StorageError("sqlite store is not open")
        fut = self._loop.create_future()
        self._queue.put(Op(kind, key, value, expected, fut))
        return await fut

    async def create(self, key: str, value: bytes) -> int:
        return await self._write("create", key, value, 0)

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        return await self._write("update", key, value, expected_mod_revision)

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[int, KeyValue]:
        return await self._write("delete", key, b"", expected_mod_revision)

    async def compact(self, revision: int) -> None:
        await self._write("compact", "", b"", revision)

    def _run_writer(self, conn: sqlite3.Connection, revision: int) -> None:
        """The writer thread: take every queued write, apply them in one transaction, commit."""
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch, stop = [first], False
            while len(batch) < _MAX_BATCH:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                    break
                batch.append(op)
            revision = self._commit(conn, batch, revision)
            if stop:
                break
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Op], revision: int) -> int:
        results: list[tuple[asyncio.Future[Any], Any, bool]] = []
        events: list[Event] = []
        start = revision
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    result, op_events, revision = apply_op(conn, op, revision)
                except StorageError as exc:
                    results.append((op.future, exc, True))
                else:
                    results.append((op.future, result, False))
                    events.extend(op_events)
            conn.execute("COMMIT")
        except Exception as exc:  # a failed commit must fail its writes, never the thread
            log.exception("sqlite commit of %d writes failed", len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            revision = start
            error = StorageError(f"sqlite commit failed: {exc}")
            results = [(op.future, error, True) for op in batch]
            events = []
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._committed, results, events)
        except RuntimeError:  # the loop is gone (closed without close()): nobody is waiting
            log.warning("event loop closed; %d committed writes not acknowledged", len(batch))
        return revision

    def _committed(self, results: list[tuple[asyncio.Future[Any], Any, bool]],
                   events: list[Event]) -> None:
        """On the event loop: fan the committed events out, then acknowledge the writes."""
        if events:
            for w in self._watchers:
                matched = [e for e in events if e.kv.key.startswith(w.prefix)]
                if matched:
                    w.pending.extend(matched)
                    w.wake.set()
        for fut, value, failed in results:
            if fut.done():  # the caller gave up waiting; the write stands regardless
                continue
            if failed:
                fut.set_exception(value)
            else:
                fut.set_result(value)

    # -- watch -------------------------------------------------------------------------------

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        # Register before reading history: every commit whose fan-out misses this watcher was
        # committed before the first replay snapshot, so replay + live has no gap; events the
        # replay already delivered are dropped from the live buffer by revision.
        w = _Watcher(prefix)
        self._watchers.add(w)
        try:
            last = after_revision
            while True:
                events, scanned, done = await self._read(
                    read_replay, prefix, last, _REPLAY_CHUNK)
                if events:
                    yield events
                last = max(last, scanned)
                if done:
                    break
            while not w.closed:
                if not w.pending:
                    w.wake.clear()
                    await w.wake.wait()
                    continue
                batch = [e for e in w.pending if e.revision > last]
                w.pending = []
                if batch:
                    last = batch[-1].revision
                    yield batch
        finally:
            self._watchers.discard(w)


__all__ = ["SQLiteBackend", "CompactedError"]
