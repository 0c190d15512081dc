import asyncio

from pocketkube.client.workqueue import FakeClock, WorkQueue


async def next_key(q: WorkQueue) -> str | None:
    return await asyncio.wait_for(q.get(), 2)


async def test_dedup_and_no_concurrent_processing():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = await next_key(q)
    assert k == "a"
    q.add("a")  # re-added while processing: not handed out again until done
    assert await next_key(q) == "b"
    assert len(q) == 0
    q.done("a")
    assert await next_key(q) == "a"


async def test_rate_limited_backoff_doubles_on_fake_clock():
    clock = FakeClock()
    q = WorkQueue(clock, base_delay=1.0)
    q.add_rate_limited("k")  # 1s
    await asyncio.sleep(0)
    clock.advance(0.5)
    await asyncio.sleep(0)
    assert len(q) == 0
    clock.advance(0.5)
    assert await next_key(q) == "k"
    q.done("k")
    q.add_rate_limited("k")  # 2s now
    await asyncio.sleep(0)
    clock.advance(1.5)
    await asyncio.sleep(0)
    assert len(q) == 0
    clock.advance(0.5)
    assert await next_key(q) == "k"
    assert q.num_requeues("k") == 2
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_shutdown_releases_waiters():
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    await q.shutdown()
    assert await asyncio.wait_for(waiter, 2) is None
