"""The controller pattern, as kube-controller-manager uses it: shared informers feed handlers
that only enqueue keys; workers take keys from a work queue (never the same key twice at once)
and run a level-triggered `sync(key)`; a failing sync is retried with per-key backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.resources import Resource
from pocketkube.client.informer import Informer, key_of
from pocketkube.client.rest import ApiClient
from pocketkube.client.workqueue import Clock, RealClock, WorkQueue

Obj = dict[str, Any]


class InformerFactory:
    """One informer per resource, shared by every controller that needs it."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[tuple[str, str], Informer] = {}

    def informer(self, r: Resource) -> Informer:
        key = (r.group, r.plural)
        if key not in self._informers:
            self._informers[key] = Informer(self.client, r)
        return self._informers[key]

    def start(self) -> None:
        for inf in self._informers.values():
            inf.start()

    async def wait_synced(self, timeout: float = 60.0) -> None:
        await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()


class Controller:
    name = "controller"
    workers = 2
    max_retries = 15

    def __init__(self, client: ApiClient, informers: InformerFactory,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.informers = informers
        self.clock = clock or RealClock()
        self.queue = WorkQueue(self.clock)
        self.log = logging.getLogger(f"pocketkube.controllers.{self.name}")

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    async def sync(self, key: str) -> None:
        """Make the world match the desired state of `key`. Raise to be retried."""
        raise RuntimeError(f"{type(self).__name__} does not define sync")

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                n = self.queue.num_requeues(key)
                level = logging.INFO if isinstance(e, StatusError) and e.code == 409 \
                    else logging.WARNING
                self.log.log(level, "sync %s failed (%s), retry %d", key, e, n + 1)
                if n < self.max_retries:
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
            finally:
                self.queue.done(key)


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name
