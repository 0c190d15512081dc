"""Pod workers: one sync at a time per pod with the latest spec, resyncs driven by the clock,
and the syncing → terminating → terminated → finished path with a grace period that only
shrinks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet.podworkers import PodWorkers
from tests.unit.kubelet.fakes import pod


class Syncer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.gate: asyncio.Event | None = None  # when set, syncs wait for it
        self.terminal = False
        self.retry: float | None = None
        self.active = 0
        self.max_active = 0
        self.fail_terminating = 0

    async def sync_pod(self, p: dict) -> tuple[bool, float | None]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.calls.append(("sync", p["spec"]["containers"][0]["image"]))
            if self.gate is not None:
                await self.gate.wait()
            return self.terminal, self.retry
        finally:
            self.active -= 1

    async def sync_terminating_pod(self, p: dict, grace: int) -> None:
        self.calls.append(("terminating", grace))
        if self.fail_terminating:
            self.fail_terminating -= 1
            raise RuntimeError("still running")
        if self.gate is not None:
            await self.gate.wait()

    async def sync_terminated_pod(self, p: dict) -> None:
        self.calls.append(("terminated", None))

    async def cleanup(self, p: dict) -> None:
        self.calls.append(("cleanup", None))


@pytest.fixture
async def env() -> AsyncIterator[tuple[PodWorkers, Syncer, FakeClock]]:
    clock = FakeClock()
    syncer = Syncer()
    workers = PodWorkers(syncer, clock)
    try:
        yield workers, syncer, clock
    finally:
        await workers.close()


async def turns(cond: Any, limit: int = 100) -> None:
    """Give the event loop turns until `cond()` holds (no time passes)."""
    for _ in range(limit):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def with_image(image: str, **meta: Any) -> dict:
    p = pod(containers=[{"name": "c", "image": image}])
    p["metadata"].update(meta)
    return p


async def test_syncs_are_serialized_and_the_latest_spec_wins(env: Any) -> None:
    workers, syncer, _ = env
    syncer.gate = asyncio.Event()
    workers.update(with_image("v1"))
    await turns(lambda: syncer.calls == [("sync", "v1")])
    for v in ("v2", "v3", "v4"):
        workers.update(with_image(v))
    syncer.gate.set()
    await workers.settle()
    assert syncer.calls == [("sync", "v1"), ("sync", "v4")]
    assert syncer.max_active == 1


async def test_periodic_resync_and_early_retry(env: Any) -> None:
    workers, syncer, clock = env
    workers.update(with_image("v1"))
    await workers.settle()
    assert len(syncer.calls) == 1
    clock.advance(9.9)
    await workers.settle()
    assert len(syncer.calls) == 1
    clock.advance(0.1)
    await workers.settle()
    assert len(syncer.calls) == 2
    syncer.retry = 3.0  # a backed-off restart falls due sooner than the resync
    workers.notify("uid-p")
    await workers.settle()
    clock.advance(3)
    await workers.settle()
    assert len(syncer.calls) == 4


async def test_terminal_pod_terminates_then_finishes(env: Any) -> None:
    workers, syncer, _ = env
    syncer.terminal = True
    workers.update(with_image("v1"))
    await workers.settle()
    assert [c[0] for c in syncer.calls] == ["sync", "terminating", "terminated"]
    assert workers.state("uid-p") == "finished"
    workers.update(with_image("v1"), removed=True)
    await workers.settle()
    assert syncer.calls[-1] == ("cleanup", None)
    assert workers.state("uid-p") is None


async def test_deletion_uses_the_deletion_grace_and_can_shorten_it(env: Any) -> None:
    workers, syncer, _ = env
    workers.update(with_image("v1"))
    await workers.settle()
    syncer.gate = asyncio.Event()
    workers.update(with_image("v1", deletionTimestamp="t", deletionGracePeriodSeconds=30))
    await turns(lambda: syncer.calls[-1] == ("terminating", 30))
    # A longer grace period is ignored; a shorter one interrupts the termination.
    workers.update(with_image("v1", deletionTimestamp="t", deletionGracePeriodSeconds=60))
    workers.update(with_image("v1", deletionTimestamp="t", deletionGracePeriodSeconds=1))
    await turns(lambda: syncer.calls[-1] == ("terminating", 1))
    syncer.gate.set()
    await workers.settle()
    terminations = [c for c in syncer.calls if c[0] == "terminating"]
    assert terminations == [("terminating", 30), ("terminating", 1)]
    assert workers.state("uid-p") == "finished"


async def test_removed_pod_without_worker_is_ignored(env: Any) -> None:
    workers, syncer, _ = env
    workers.update(with_image("v1"), removed=True)
    await workers.settle()
    assert syncer.calls == [] and workers.state("uid-p") is None


async def test_pod_finished_before_a_restart_only_cleans_up(env: Any) -> None:
    workers, syncer, _ = env
    p = with_image("v1")
    p["status"]["phase"] = "Succeeded"
    workers.update(p)
    await workers.settle()
    assert [c[0] for c in syncer.calls] == ["terminating", "terminated"]


async def test_failed_termination_is_retried(env: Any) -> None:
    workers, syncer, clock = env
    syncer.fail_terminating = 1
    workers.update(with_image("v1", deletionTimestamp="t", deletionGracePeriodSeconds=5))
    await workers.settle()
    assert workers.state("uid-p") == "terminating"
    clock.advance(10)
    await workers.settle()
    assert workers.state("uid-p") == "finished"
    assert [c for c in syncer.calls if c[0] == "terminating"] == [("terminating", 5)] * 2


async def test_force_deleted_pod_still_gets_its_termination_grace(env: Any) -> None:
    workers, syncer, _ = env
    workers.update(with_image("v1"))
    await workers.settle()
    workers.update(with_image("v1", deletionTimestamp="t", deletionGracePeriodSeconds=0),
                   removed=True)
    await workers.settle()
    assert ("terminating", 30) in syncer.calls  # kube's calculateEffectiveGracePeriod
    assert syncer.calls[-1] == ("cleanup", None)
