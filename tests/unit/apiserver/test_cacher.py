"""The watch cache over the real SQLite backend: lists, replay, filtering and expiry."""

import orjson
import pytest

from pocketkube.registry.codec import decode
from pocketkube.storage.cacher import TooOldError, WatchCache
from pocketkube.storage.sqlite import SQLiteBackend

PODS = "/registry/core/pods/"


def pod(name, labels=None):
    return orjson.dumps({"metadata": {"name": name, "namespace": "ns",
                                      "labels": labels or {}}})


@pytest.fixture
async def cache(tmp_path):
    backend = SQLiteBackend(tmp_path / "db")
    await backend.start()
    wc = WatchCache(backend, decode, capacity=4)
    wc.register(PODS)
    wc.register("/registry/core/configmaps/")
    await wc.start()
    yield wc
    await wc.close()
    await backend.close()


async def test_list_reflects_writes_after_wait_fresh(cache):
    await cache.backend.create(PODS + "ns/a", pod("a"))
    await cache.backend.create(PODS + "ns/b", pod("b"))
    assert await cache.wait_fresh()
    names = [o["metadata"]["name"] for o in cache.caches[PODS].snapshot(PODS, None)]
    assert names == ["a", "b"]


async def test_watch_replays_and_filters_selection_changes(cache):
    c = cache.caches[PODS]
    rev = await cache.backend.create(PODS + "ns/a", pod("a", {"app": "x"}))
    assert await cache.wait_for(rev)
    w = c.watch(rev, PODS, lambda o: o["metadata"]["labels"].get("app") == "x")
    kv = await cache.backend.get(PODS + "ns/a")
    r2 = await cache.backend.update(PODS + "ns/a", pod("a", {"app": "y"}), kv.mod_revision)
    ev = await w.get(timeout=5)
    # Leaving the selection is a DELETED carrying the old content at the new revision.
    assert ev[0] == "DELETED"
    assert ev[1]["metadata"]["labels"] == {"app": "x"}
    assert ev[1]["metadata"]["resourceVersion"] == str(r2)
    kv = await cache.backend.get(PODS + "ns/a")
    await cache.backend.update(PODS + "ns/a", pod("a", {"app": "x"}), kv.mod_revision)
    assert (await w.get(timeout=5))[0] == "ADDED"
    w.close()


async def test_too_old_revision_expires_once_buffer_rolls(cache):
    first = await cache.backend.create(PODS + "ns/p0", pod("p0"))
    for i in range(1, 8):
        last = await cache.backend.create(PODS + f"ns/p{i}", pod(f"p{i}"))
    assert await cache.wait_for(last)
    with pytest.raises(TooOldError):
        cache.caches[PODS].watch(first, PODS, None)
    w = cache.caches[PODS].watch(last - 2, PODS, None)
    got = [(await w.get(timeout=5))[1]["metadata"]["name"] for _ in range(2)]
    assert got == ["p6", "p7"]


async def test_other_prefix_advances_revision_only(cache):
    rev = await cache.backend.create("/registry/core/configmaps/ns/c", pod("c"))
    assert await cache.wait_for(rev)
    assert cache.caches[PODS].items == {}
    assert cache.revision >= rev
    assert len(cache.caches["/registry/core/configmaps/"].items) == 1
