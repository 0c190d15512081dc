"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's `tools/leaderelection`
does it, so several copies of a component can run and exactly one acts.

A candidate takes the lease when it is free or its holder has not renewed it for
leaseDurationSeconds (15 s) — measured on the candidate's own clock from when it last saw the
lease change, so clock skew between machines does not matter. The leader renews every retry
period (2 s) and gives up leadership if it cannot renew within the renew deadline (10 s).
Releasing on exit empties holderIdentity so a standby takes over at once.

    elector = LeaderElector(client, "kube-scheduler", identity="host_1234")
    async with elector.leading() as lost:        # returns once this process leads
        await work_until(lost)                   # `lost` is set if leadership goes
    # or: await elector.run(on_started_leading, on_stopped_leading)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock, RealClock

log = logging.getLogger("pocketkube.client.leaderelection")
LEASES = resource("coordination.k8s.io", "leases")
JITTER = 1.2


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: ApiClient, name: str, namespace: str = "kube-system",
                 identity: str | None = None, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock | None = None, release_on_cancel: bool = True) -> None:
        if not lease_duration > renew_deadline > retry_period * JITTER:
            raise ValueError("need leaseDuration > renewDeadline > retryPeriod * 1.2")
        self.client = client
        self.name, self.namespace = name, namespace
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period = retry_period
        self.clock = clock or RealClock()
        self.release_on_cancel = release_on_cancel
        self.leader = ""  # the holder last observed
        self._observed: Any = None  # last seen lease spec
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None
        self._renewed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self.leader == self.identity and \
            self.clock.now() - self._renewed_at < self.lease_duration

    # -- one attempt ----------------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        now = self.clock.now()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except StatusError as e:
            if e.code != 404:
                raise
            stamp = _micro_time()
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity,
                             "leaseDurationSeconds": int(self.lease_duration),
                             "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}}
            try:
                self._lease = await self.client.create(LEASES, body, self.namespace)
            except StatusError as e2:
                if e2.code == 409:
                    return False
                raise
            self._saw(self._lease["spec"], now)
            self._renewed_at = now
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._saw(spec, now)
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and self._observed_at + duration > now:
            return False  # held by someone else and not expired
        stamp = _micro_time()
        new_spec = dict(spec, holderIdentity=self.identity,
                        leaseDurationSeconds=int(self.lease_duration), renewTime=stamp)
        if holder != self.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if holder else 0)
        lease["spec"] = new_spec
        try:
            self._lease = await self.client.update(LEASES, lease)
        except StatusError as e:
            if e.code == 409:
                return False
            raise
        self._saw(new_spec, now)
        self._renewed_at = now
        return True

    def _saw(self, spec: dict[str, Any], now: float) -> None:
        self._observed = spec
        self._observed_at = now
        holder = spec.get("holderIdentity") or ""
        if holder != self.leader:
            if holder:
                log.info("%s/%s: new leader %s", self.namespace, self.name, holder)
            self.leader = holder

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("%s/%s: lease update failed: %s", self.namespace, self.name, e)
            return False

    # -- loops ----------------------------------------------------------------------------------
    async def acquire(self) -> None:
        """Return once this candidate holds the lease."""
        while not await self._attempt():
            await self.clock.sleep(self.retry_period * (1 + random.random() * (JITTER - 1)))
        log.info("%s acquired lease %s/%s", self.identity, self.namespace, self.name)

    async def renew(self) -> None:
        """Keep renewing; return when the lease could not be renewed within the deadline."""
        while True:
            await self.clock.sleep(self.retry_period)
            if await self._attempt():
                continue
            if self.leader != self.identity or \
                    self.clock.now() - self._renewed_at >= self.renew_deadline:
                log.warning("%s lost lease %s/%s", self.identity, self.namespace, self.name)
                return

    async def release(self) -> None:
        """Give the lease up so another candidate takes it without waiting for expiry."""
        if self._lease is None or self.leader != self.identity:
            return
        lease = self._lease
        lease["spec"] = dict(lease["spec"], holderIdentity="", leaseDurationSeconds=1,
                             renewTime=_micro_time())
        with contextlib.suppress(Exception):
            await self.client.update(LEASES, lease)
        self.leader = ""

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[asyncio.Event]:
        """Acquire, keep renewing in the background, release on exit. Yields an event that is
        set if leadership is lost."""
        await self.acquire()
        lost = asyncio.Event()

        async def keep() -> None:
            await self.renew()
            lost.set()

        task = asyncio.create_task(keep(), name=f"lease-{self.name}")
        try:
            yield lost
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.release_on_cancel and not lost.is_set():
                await self.release()

    async def run(self, on_started_leading: Callable[[], Awaitable[None]],
                  on_stopped_leading: Callable[[], None] | None = None) -> None:
        """Acquire, run `on_started_leading` while leading; it is cancelled if leadership is
        lost, then `on_stopped_leading` is called."""
        try:
            async with self.leading() as lost:
                work = asyncio.create_task(on_started_leading())
                waiter = asyncio.create_task(lost.wait())
                try:
                    await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    if not work.done():
                        work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
        finally:
            if on_stopped_leading is not None:
                on_stopped_leading()
