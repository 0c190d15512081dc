"""The storage contract, checked identically against SQLiteBackend and a real etcd."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pocketkube.storage.etcd import EtcdBackend
from pocketkube.storage.interface import (
    Backend,
    CompactedError,
    ConflictError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
)
from pocketkube.storage.sqlite import SQLiteBackend
from tests.support.etcd import etcd_endpoints  # noqa: F401  (module-scoped fixture)

WAIT = 10.0


@pytest.fixture(params=["sqlite", "etcd"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        b: Backend = SQLiteBackend(tmp_path / "db" / "state.db")
    else:
        b = EtcdBackend(request.getfixturevalue("etcd_endpoints"))
    await b.start()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def root() -> str:
    """A key root of its own per test: the etcd member is shared by the whole module."""
    return f"/{uuid.uuid4().hex[:12]}/registry/core"


async def collect(watch: AsyncIterator[list[Event]], until: int) -> list[Event]:
    """Events from `watch` until one at revision >= `until` arrived."""
    events: list[Event] = []
    while not events or events[-1].revision < until:
        events.extend(await asyncio.wait_for(anext(watch), WAIT))
    return events


async def test_every_write_takes_the_next_revision(backend: Backend, root: str) -> None:
    start = await backend.current_revision()
    created = await backend.create(f"{root}/pods/a", b"1")
    updated = await backend.update(f"{root}/pods/a", b"2", created)
    deleted, _ = await backend.delete(f"{root}/pods/a")
    assert (created, updated, deleted) == (start + 1, start + 2, start + 3)
    assert await backend.current_revision() == deleted
    kv = await backend.get(f"{root}/pods/a", updated)
    assert kv is not None and (kv.create_revision, kv.mod_revision) == (created, updated)


async def test_create_only_if_absent(backend: Backend, root: str) -> None:
    key = f"{root}/pods/a"
    first = await backend.create(key, b"first")
    with pytest.raises(KeyExistsError) as err:
        await backend.create(key, b"second")
    assert err.value.key == key
    kv = await backend.get(key)
    assert kv is not None and kv.value == b"first" and kv.mod_revision == first
    await backend.delete(key)
    again = await backend.create(key, b"again")
    kv = await backend.get(key)
    assert kv is not None and kv.create_revision == again > first


async def test_update_is_compare_and_swap(backend: Backend, root: str) -> None:
    key = f"{root}/pods/a"
    created = await backend.create(key, b"v1")
    updated = await backend.update(key, b"v2", created)
    with pytest.raises(ConflictError) as err:
        await backend.update(key, b"stale", created)
    current = err.value.current
    assert current is not None and (current.value, current.mod_revision) == (b"v2", updated)
    assert current.create_revision == created
    with pytest.raises(KeyNotFoundError):
        await backend.update(f"{root}/pods/missing", b"x", created)
    kv = await backend.get(key)
    assert kv is not None and kv.value == b"v2"


async def test_concurrent_updates_from_one_revision_let_exactly_one_win(
        backend: Backend, root: str) -> None:
    key = f"{root}/pods/a"
    created = await backend.create(key, b"0")
    results = await asyncio.gather(
        *(backend.update(key, str(i).encode(), created) for i in range(20)),
        return_exceptions=True)
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, int))
    kv = await backend.get(key)
    assert kv is not None and kv.mod_revision == winners[0]


async def test_failed_write_fails_alone(backend: Backend, root: str) -> None:
    await backend.create(f"{root}/pods/taken", b"x")
    results = await asyncio.gather(
        *(backend.create(f"{root}/pods/{i}", b"v") for i in range(10)),
        backend.create(f"{root}/pods/taken", b"y"),
        *(backend.create(f"{root}/pods/{i}", b"v") for i in range(10, 20)),
        return_exceptions=True)
    assert isinstance(results[10], KeyExistsError)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 10)
    assert await backend.count(f"{root}/pods/") == 21


async def test_delete_with_precondition(backend: Backend, root: str) -> None:
    key = f"{root}/pods/a"
    created = await backend.create(key, b"v1")
    updated = await backend.update(key, b"v2", created)
    with pytest.raises(ConflictError) as err:
        await backend.delete(key, created)
    assert err.value.current is not None and err.value.current.mod_revision == updated
    assert await backend.get(key) is not None
    rev, prev = await backend.delete(key, updated)
    assert rev > updated
    assert (prev.value, prev.mod_revision, prev.create_revision) == (b"v2", updated, created)
    assert await backend.get(key) is None
    with pytest.raises(KeyNotFoundError):
        await backend.delete(key)
    with pytest.raises(KeyNotFoundError):
        await backend.delete(key, updated)


async def test_get_and_list_at_an_old_revision(backend: Backend, root: str) -> None:
    a, b = f"{root}/pods/a", f"{root}/pods/b"
    ra = await backend.create(a, b"a1")
    rb = await backend.create(b, b"b1")
    await backend.update(a, b"a2", ra)
    await backend.delete(b)
    kv = await backend.get(a, rb)
    assert kv is not None and kv.value == b"a1"
    assert await backend.get(b, ra) is None  # not created yet at ra
    kvs, at, more = await backend.list(f"{root}/pods/", revision=rb)
    assert at == rb and not more
    assert [(kv.key, kv.value) for kv in kvs] == [(a, b"a1"), (b, b"b1")]
    kvs, at, _ = await backend.list(f"{root}/pods/")
    assert at == await backend.current_revision()
    assert [(kv.key, kv.value) for kv in kvs] == [(a, b"a2")]
    with pytest.raises(FutureRevisionError):
        await backend.get(a, at + 1000)
    with pytest.raises(FutureRevisionError):
        await backend.list(f"{root}/pods/", revision=at + 1000)


async def test_list_and_count_stay_inside_the_prefix(backend: Backend, root: str) -> None:
    for name in ("a", "b"):
        await backend.create(f"{root}/pods/{name}", b"pod")
    for name in ("a", "c", "d"):
        await backend.create(f"{root}/podtemplates/{name}", b"template")
    await backend.create(f"{root}/pods", b"not under pods/")
    kvs, _, _ = await backend.list(f"{root}/pods/")
    assert [kv.key for kv in kvs] == [f"{root}/pods/a", f"{root}/pods/b"]
    kvs, _, _ = await backend.list(f"{root}/podtemplates/")
    assert {kv.value for kv in kvs} == {b"template"} and len(kvs) == 3
    assert await backend.count(f"{root}/pods/") == 2
    assert await backend.count(f"{root}/podtemplates/") == 3
    await backend.delete(f"{root}/podtemplates/c")
    assert await backend.count(f"{root}/podtemplates/") == 2


async def test_paginate_with_limit_and_start_key(backend: Backend, root: str) -> None:
    prefix = f"{root}/pods/"
    names = [f"{prefix}p{i}" for i in range(5)]
    for name in names:
        await backend.create(name, b"x")
    page, rev, more = await backend.list(prefix, limit=2)
    assert [kv.key for kv in page] == names[:2] and more
    # Later pages read at the first page's revision, so writes in between do not show.
    await backend.create(f"{prefix}p10", b"late")
    await backend.delete(names[3])
    seen = [kv.key for kv in page]
    while more:
        page, at, more = await backend.list(
            prefix, revision=rev, limit=2, start_key=page[-1].key + "\x00")
        assert at == rev
        seen.extend(kv.key for kv in page)
    assert seen == names
    page, _, more = await backend.list(prefix, limit=2, start_key=names[1])
    assert [kv.key for kv in page] == [names[1], f"{prefix}p10"] and more
    page, _, more = await backend.list(prefix, limit=5, start_key=names[2])
    assert [kv.key for kv in page] == [names[2], names[4]] and not more


async def test_watch_replays_history_then_streams_live(backend: Backend, root: str) -> None:
    key = f"{root}/pods/a"
    start = await backend.current_revision()
    created = await backend.create(key, b"v1")
    updated = await backend.update(key, b"v2", created)
    deleted, _ = await backend.delete(key)
    watch = backend.watch(f"{root}/pods/", start)
    try:
        history = await collect(watch, deleted)
        recreated = await backend.create(key, b"v3")
        live = await collect(watch, recreated)
    finally:
        await watch.aclose()
    events = history + live
    assert [(e.type, e.revision) for e in events] == [
        ("PUT", created), ("PUT", updated), ("DELETE", deleted), ("PUT", recreated)]
    put1, put2, gone, again = events
    assert put1.prev is None and put1.kv.value == b"v1"
    assert put2.prev is not None and (put2.prev.value, put2.prev.mod_revision) == (b"v1", created)
    assert gone.kv.value == b"v2" and gone.prev is not None and gone.prev.mod_revision == updated
    assert again.prev is None and again.kv.create_revision == recreated


async def test_watch_from_a_revision_skips_what_came_before(backend: Backend, root: str) -> None:
    first = await backend.create(f"{root}/pods/a", b"1")
    second = await backend.create(f"{root}/pods/b", b"2")
    watch = backend.watch(f"{root}/pods/", first)
    try:
        events = await collect(watch, second)
    finally:
        await watch.aclose()
    assert [e.revision for e in events] == [second]


async def test_watch_sees_only_its_prefix(backend: Backend, root: str) -> None:
    start = await backend.current_revision()
    watch = backend.watch(f"{root}/pods/", start)
    try:
        await backend.create(f"{root}/podtemplates/a", b"t")
        await backend.create(f"{root}/pods", b"no slash")
        pod = await backend.create(f"{root}/pods/a", b"p")
        events = await collect(watch, pod)
    finally:
        await watch.aclose()
    assert [(e.kv.key, e.revision) for e in events] == [(f"{root}/pods/a", pod)]


async def test_compaction_forgets_history(backend: Backend, root: str) -> None:
    key, gone = f"{root}/pods/a", f"{root}/pods/gone"
    created = await backend.create(key, b"v1")
    await backend.create(gone, b"x")
    updated = await backend.update(key, b"v2", created)
    await backend.delete(gone)
    last = await backend.update(key, b"v3", updated)
    await backend.compact(updated)
    assert await backend.compacted_revision() == updated
    with pytest.raises(CompactedError) as err:
        await backend.get(key, created)
    assert err.value.compacted == updated
    with pytest.raises(CompactedError):
        await backend.list(f"{root}/pods/", revision=created)
    kvs, _, _ = await backend.list(f"{root}/pods/")
    assert [(kv.key, kv.value) for kv in kvs] == [(key, b"v3")]
    stale = backend.watch(f"{root}/pods/", created)
    with pytest.raises(CompactedError):
        await asyncio.wait_for(anext(stale), WAIT)
    await stale.aclose()
    fresh = backend.watch(f"{root}/pods/", updated)
    try:
        events = await collect(fresh, last)
    finally:
        await fresh.aclose()
    assert [(e.type, e.kv.key, e.revision) for e in events] == [
        ("DELETE", gone, last - 1), ("PUT", key, last)]
    await backend.compact(created)  # older than the compaction: nothing to do
    assert await backend.compacted_revision() == updated


async def test_watch_opened_during_writes_has_no_gap_or_duplicate(
        backend: Backend, root: str) -> None:
    # Writers keep going from before the watch opens until it has streamed well past its
    # replay (which takes more than one read), so the switch to live events happens mid-flow.
    start = await backend.current_revision()
    revisions: list[int] = []
    halfway, stop = asyncio.Event(), asyncio.Event()

    async def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            revisions.append(await backend.create(f"{root}/pods/w{w}-{i}", b"x"))
            i += 1
            if len(revisions) >= 1500:
                halfway.set()

    writers = asyncio.gather(*(writer(w) for w in range(20)))
    await asyncio.wait_for(halfway.wait(), WAIT)
    watch = backend.watch(f"{root}/pods/", start)
    try:
        events: list[Event] = []
        while len(events) < 3000:
            events.extend(await asyncio.wait_for(anext(watch), WAIT))
        stop.set()
        await asyncio.wait_for(writers, WAIT)
        events.extend(await collect(watch, max(revisions)))
    finally:
        stop.set()
        await watch.aclose()
    assert [e.revision for e in events] == sorted(revisions)
    assert len({e.kv.key for e in events}) == len(revisions)
