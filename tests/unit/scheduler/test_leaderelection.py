"""Lease-based leader election: one leader at a time, takeover after expiry or release."""

import asyncio

import pytest

from pocketkube.client.leaderelection import LeaderElector
from pocketkube.client.workqueue import FakeClock
from tests.unit.scheduler.fakeapi import FakeApi


def elector(api, clock, ident):
    return LeaderElector(api, "kube-scheduler", identity=ident, clock=clock)


async def test_first_candidate_creates_the_lease_second_waits():
    api, clock = FakeApi(), FakeClock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert await a.try_acquire_or_renew()
    lease = next(iter(api.objects.values()))
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert not await b.try_acquire_or_renew()
    assert b.leader == "a" and not b.is_leader and a.is_leader


async def test_takeover_after_the_lease_expires_counts_a_transition():
    api, clock = FakeApi(), FakeClock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.advance(10)
    assert not await b.try_acquire_or_renew()  # renewals would have kept it; still valid
    clock.advance(6)
    assert await b.try_acquire_or_renew()
    spec = next(iter(api.objects.values()))["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


async def test_renewals_keep_the_lease_and_release_hands_it_over():
    api, clock = FakeApi(), FakeClock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    async with a.leading() as lost:
        for _ in range(10):  # 20 s of renewals every 2 s
            clock.advance(2)
            await asyncio.sleep(0.01)
            assert not await b.try_acquire_or_renew()
        assert not lost.is_set()
    assert next(iter(api.objects.values()))["spec"]["holderIdentity"] == ""
    assert await b.try_acquire_or_renew()


async def test_leader_that_cannot_renew_steps_down():
    api, clock = FakeApi(), FakeClock()
    a = elector(api, clock, "a")
    stopped = []

    async def work():
        await asyncio.Event().wait()

    task = asyncio.create_task(a.run(work, lambda: stopped.append(True)))
    await asyncio.sleep(0.01)
    assert a.is_leader
    # Someone else takes the lease over behind our back.
    lease = next(iter(api.objects.values()))
    lease["spec"]["holderIdentity"] = "intruder"
    for _ in range(3):
        clock.advance(2)
        await asyncio.sleep(0.01)
    await asyncio.wait_for(task, 1)
    assert stopped == [True] and not a.is_leader


def test_timing_must_be_consistent():
    with pytest.raises(ValueError):
        LeaderElector(FakeApi(), "x", identity="a", lease_duration=5, renew_deadline=10)
