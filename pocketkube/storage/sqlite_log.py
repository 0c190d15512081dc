"""The SQL side of the SQLite store: the log schema, applying one write, and the reads.

`sqlite.SQLiteBackend` owns threads, the event loop and watchers; this module holds only plain
functions over a `sqlite3.Connection`, each called inside a transaction the caller opened (the
writer thread's group-commit transaction, or a reader's snapshot transaction).

The log (after k3s' kine): `id` is the revision; `created` marks the row that created a key,
`deleted` a tombstone (whose `value` is the value it deleted); `prev_revision` points at the
key's previous row and `old_value` keeps that row's value, so a watch can report the previous
value even after compaction removed the previous row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pocketkube.storage.interface import (
    CompactedError,
    ConflictError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS log_name_prev ON log (name, prev_revision);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_ROW = "id, name, created, deleted, create_revision, prev_revision, value, old_value"


@dataclass(frozen=True, slots=True)
class Snapshot:
    current: int
    compacted: int


@dataclass(slots=True)
class Op:
    kind: str  # create | update | delete | compact
    key: str
    value: bytes
    expected: int  # expected mod revision (update/delete) or the revision to compact to
    future: asyncio.Future[Any]


def connect(path: Path, writer: bool) -> tuple[sqlite3.Connection, int]:
    """Open a connection (the writer also sets up WAL and the schema); returns it with the
    current revision."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: the WAL is fsynced at every commit, so an acknowledged write survives a crash.
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(_SCHEMA)
    return conn, read_snapshot(conn).current


def read_snapshot(conn: sqlite3.Connection) -> Snapshot:
    # sqlite_sequence keeps the highest id ever used, even after compaction deleted that row.
    current, compacted = conn.execute(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'log'),"
        " (SELECT value FROM meta WHERE name = 'compact_rev')").fetchone()
    return Snapshot(current or 0, compacted or 0)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1  # skip surrogates
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def _at(snap: Snapshot, revision: int) -> int:
    if revision <= 0:
        return snap.current
    if revision > snap.current:
        raise FutureRevisionError(
            f"revision {revision} is newer than the current revision {snap.current}")
    if revision < snap.compacted:
        raise CompactedError(revision, snap.compacted)
    return revision


def _bounds(prefix: str, start_key: str | None) -> tuple[str, list[Any]]:
    low = start_key if start_key is not None and start_key > prefix else prefix
    high = prefix_end(prefix)
    if high is None:
        return "name >= ?", [low]
    return "name >= ? AND name < ?", [low, high]


# -- writes (inside the writer thread's transaction) ------------------------------------------


def _kv(key: str, row: tuple[Any, ...]) -> KeyValue:
    mod, _deleted, create_revision, value = row
    return KeyValue(key, bytes(value), create_revision, mod)


def apply_op(conn: sqlite3.Connection, op: Op, revision: int) -> tuple[Any, list[Event], int]:
    """Check one write's precondition and append its row. Returns (result for the caller,
    events, new current revision). A failed precondition raises and appends nothing."""
    if op.kind == "compact":
        _compact(conn, op.expected, revision)
        return None, [], revision
    key = op.key
    row = conn.execute(
        "SELECT id, deleted, create_revision, value FROM log WHERE name = ?"
        " ORDER BY id DESC LIMIT 1", (key,)).fetchone()
    live = row is not None and not row[1]
    rev = revision + 1
    insert = ("INSERT INTO log (id, name, created, deleted, create_revision, prev_revision,"
              " value, old_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    if op.kind == "create":
        if live:
            raise KeyExistsError(key)
        conn.execute(insert, (rev, key, 1, 0, rev, row[0] if row else 0, op.value, None))
        kv = KeyValue(key, op.value, rev, rev)
        return rev, [Event("PUT", kv, None)], rev
    if not live:
        raise KeyNotFoundError(key)
    prev = _kv(key, row)
    if op.kind == "update":
        if prev.mod_revision != op.expected:
            raise ConflictError(key, prev)
        conn.execute(insert, (rev, key, 0, 0, prev.create_revision, prev.mod_revision,
                              op.value, prev.value))
        kv = KeyValue(key, op.value, prev.create_revision, rev)
        return rev, [Event("PUT", kv, prev)], rev
    if op.expected and prev.mod_revision != op.expected:
        raise ConflictError(key, prev)
    conn.execute(insert, (rev, key, 0, 1, prev.create_revision, prev.mod_revision,
                          prev.value, None))
    kv = KeyValue(key, prev.value, prev.create_revision, rev)
    return (rev, prev), [Event("DELETE", kv, prev)], rev


def _compact(conn: sqlite3.Connection, target: int, current: int) -> None:
    if target > current:
        raise FutureRevisionError(
            f"cannot compact to revision {target}: the current revision is {current}")
    old = read_snapshot(conn).compacted
    if target <= old:
        return
    # A row is superseded at or before `target` exactly when a row in (old, target] names it
    # as prev_revision; rows superseded at or before `old` went at the previous compaction.
    conn.execute(
        "DELETE FROM log WHERE id IN (SELECT prev_revision FROM log"
        " WHERE id > ? AND id <= ? AND prev_revision > 0)", (old, target))
    conn.execute("DELETE FROM log WHERE deleted = 1 AND id > ? AND id <= ?", (old, target))
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('compact_rev', ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (target,))


# -- reads (inside a reader's snapshot transaction) -------------------------------------------


def read_get(conn: sqlite3.Connection, snap: Snapshot, key: str, revision: int) -> KeyValue | None:
    at = _at(snap, revision)
    row = conn.execute(
        "SELECT id, deleted, create_revision, value FROM log WHERE name = ? AND id <= ?"
        " ORDER BY id DESC LIMIT 1", (key, at)).fetchone()
    return None if row is None or row[1] else _kv(key, row)


def read_list(conn: sqlite3.Connection, snap: Snapshot, prefix: str, revision: int, limit: int,
              start_key: str | None) -> tuple[list[KeyValue], int, bool]:
    at = _at(snap, revision)
    where, args = _bounds(prefix, start_key)
    rows = conn.execute(
        "SELECT k.name, k.value, k.create_revision, k.id FROM"
        f" (SELECT MAX(id) AS mid FROM log WHERE {where} AND id <= ? GROUP BY name) m"
        " JOIN log k ON k.id = m.mid WHERE k.deleted = 0 ORDER BY k.name LIMIT ?",
        (*args, at, limit + 1 if limit > 0 else -1)).fetchall()
    more = limit > 0 and len(rows) > limit
    if more:
        rows = rows[:limit]
    return [KeyValue(n, bytes(v), c, m) for n, v, c, m in rows], at, more


def read_count(conn: sqlite3.Connection, snap: Snapshot, prefix: str) -> int:
    where, args = _bounds(prefix, None)
    (n,) = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT MAX(id) AS mid FROM log WHERE {where} GROUP BY name) m"
        " JOIN log k ON k.id = m.mid WHERE k.deleted = 0", args).fetchone()
    return n


def read_replay(conn: sqlite3.Connection, snap: Snapshot, prefix: str, after: int,
                chunk: int) -> tuple[list[Event], int, bool]:
    """Up to `chunk` events under `prefix` after `after`. Returns (events, revision scanned
    through, whether the log is exhausted as of this snapshot)."""
    if after < snap.compacted:
        raise CompactedError(after, snap.compacted)
    where, args = _bounds(prefix, None)
    rows = conn.execute(
        f"SELECT {_ROW} FROM log WHERE id > ? AND id <= ? AND {where} ORDER BY id LIMIT ?",
        (after, snap.current, *args, chunk)).fetchall()
    events = [_event(r) for r in rows]
    done = len(rows) < chunk
    return events, snap.current if done else rows[-1][0], done


def _event(row: tuple[Any, ...]) -> Event:
    rev, name, created, deleted, create_revision, prev_revision, value, old_value = row
    kv = KeyValue(name, bytes(value), create_revision, rev)
    if deleted:
        return Event("DELETE", kv, KeyValue(name, kv.value, create_revision, prev_revision))
    if created:
        return Event("PUT", kv, None)
    return Event("PUT", kv, KeyValue(name, bytes(old_value), create_revision, prev_revision))
