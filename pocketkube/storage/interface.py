"""The storage backend interface: an MVCC key-value store shaped like etcd v3.

The store knows keys, bytes and revisions, never kinds. One global revision counts every write;
it is what clients see as `resourceVersion`. Backends: `sqlite.SQLiteBackend` (embedded, the
default) and `etcd.EtcdBackend` (a real etcd through its v3 API). Both pass the same tests.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETE, `kv.value` is the value before the delete and `kv.mod_revision`
    is the revision of the delete itself."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None  # the previous value of the key (None on create)

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StorageError(Exception):
    pass


class KeyExistsError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StorageError):
    """A compare-and-swap failed: the key's mod revision is not the expected one."""

    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(f"conflict on {key}")
        self.key = key
        self.current = current


class CompactedError(StorageError):
    """The requested revision has been compacted away (maps to 410 Expired)."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} compacted (oldest {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StorageError):
    """A read asked for a revision the store has not reached yet."""


class Backend(abc.ABC):
    """Every method is a coroutine and never blocks the event loop."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The newest revision (0 for an empty store)."""

    @abc.abstractmethod
    async def compacted_revision(self) -> int:
        """The oldest revision still readable/watchable is this + 1 (0 if never compacted)."""

    @abc.abstractmethod
    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """The key at `revision` (0 = latest). Raises CompactedError / FutureRevisionError."""

    @abc.abstractmethod
    async def list(
        self, prefix: str, revision: int = 0, limit: int = 0, start_key: str | None = None
    ) -> tuple[list[KeyValue], int, bool]:
        """Keys under `prefix` in key order, at `revision` (0 = latest), starting at `start_key`
        (inclusive) when given, at most `limit` (0 = all). Returns (kvs, revision read at,
        more-remaining)."""

    @abc.abstractmethod
    async def count(self, prefix: str) -> int: ...

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> int:
        """Create-if-absent. Returns the new revision. Raises KeyExistsError."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        """Compare-and-swap on mod revision. Returns the new revision. Raises ConflictError
        (with the current value) or KeyNotFoundError."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[int, KeyValue]:
        """Delete, optionally only if the mod revision matches. Returns (revision, previous kv).
        Raises KeyNotFoundError or ConflictError."""

    @abc.abstractmethod
    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """Batches of events under `prefix` with revision > `after_revision`, in revision order,
        until the iterator is closed. Raises CompactedError (from the first `__anext__`) if
        `after_revision` is older than the compacted revision."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history at and before `revision` (the newest value of every live key stays)."""
