"""The kubelet's part for pods bound to simulated nodes: start them (Pending → Running and Ready,
with addresses), finish the ones that simulate a batch workload, and carry out graceful
deletion (wait the grace period, report the containers terminated, delete with grace 0 and the
pod's uid as precondition, as the kubelet's status manager does).

One informer over all pods, filtered here to the simulated nodes, feeds a work queue: a handful
of watches for the whole simulator however many nodes it runs, never one per node. Workers
write through the pods/status subresource with a bounded number of requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from pocketkube.api import errors
from pocketkube.api.podutil import parse_time
from pocketkube.client.informer import Informer, key_of
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock, WorkQueue
from pocketkube.simulator import podstatus
from pocketkube.simulator.addresses import PodAddresses, RangeExhausted
from pocketkube.simulator.nodes import NodeManager, SimNode
from pocketkube.simulator.timing import WallClock

log = logging.getLogger("pocketkube.simulator")

PODS = resource("", "pods")
TERMINAL = ("Succeeded", "Failed")
# How long a status this node wrote may take to come back through the watch before the cached
# pod is trusted again.
STALE_AFTER = 30.0
Obj = dict[str, Any]


class PodManager:
    def __init__(
        self,
        client: ApiClient,
        nodes: NodeManager,
        clock: Clock,
        wall: WallClock,
        limit: asyncio.Semaphore,
        workers: int = 16,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.clock = clock
        self.wall = wall
        self.limit = limit
        self.workers = workers
        self.queue = WorkQueue(clock)
        self.informer = Informer(client, PODS)
        self.informer.on(
            add=self._enqueue, update=lambda _old, new: self._enqueue(new), delete=self._forget
        )
        self.addresses = PodAddresses()
        self._started: dict[str, float] = {}  # pod uid -> wall time its containers started
        self._finished: set[str] = set()  # uids whose terminal status was sent
        self._deadlines: dict[str, float] = {}  # uid -> clock time its grace period ends
        self._deleted: set[str] = set()  # uids whose final delete was sent
        self._written: dict[str, tuple[tuple[Any, ...], float]] = {}  # uid -> what, when
        self._timers: dict[str, tuple[float, asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- informer -------------------------------------------------------------------------------
    def node_of(self, pod: Obj) -> SimNode | None:
        return self.nodes.owns((pod.get("spec") or {}).get("nodeName"))

    def _enqueue(self, pod: Obj) -> None:
        if self.node_of(pod) is not None:
            self.queue.add(key_of(pod))

    def _forget(self, pod: Obj) -> None:
        uid = pod["metadata"].get("uid", "")
        self._release(uid)
        for state in (self._started, self._deadlines, self._written):
            state.pop(uid, None)
        self._finished.discard(uid)
        self._deleted.discard(uid)

    def running_pods(self) -> int:
        return sum(
            1
            for p in self.informer.store.values()
            if self.node_of(p) is not None and (p.get("status") or {}).get("phase") not in TERMINAL
        )

    def pod_ips(self, pod: Obj, node: SimNode) -> list[str]:
        """The pod's addresses: the node's own for host-network pods, else one per pod range."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            return [node.ip]
        return self.addresses.assign(pod["metadata"]["uid"], node.cidrs)

    def _reserve(self, pod: Obj, node: SimNode) -> None:
        if not (pod.get("spec") or {}).get("hostNetwork"):
            ips = [e.get("ip", "") for e in (pod.get("status") or {}).get("podIPs") or []]
            self.addresses.reserve(pod["metadata"].get("uid", ""), ips, node.cidrs)

    def _release(self, uid: str) -> None:
        self.addresses.release(uid)

    # --- running --------------------------------------------------------------------------------
    async def start(self) -> None:
        self.informer.start()
        await self.informer.wait_synced(timeout=300)
        for pod in self.informer.list():
            node = self.node_of(pod)
            if node is not None and (pod.get("status") or {}).get("phase") not in TERMINAL:
                self._reserve(pod, node)
                self.queue.add(key_of(pod))
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"simulated-pods-{i}")
            for i in range(self.workers)
        ]

    async def stop(self) -> None:
        await self.queue.shutdown()
        for _, task in self._timers.values():
            task.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.informer.stop()

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
                if isinstance(e, errors.StatusError) and e.code in (404, 409, 422):
                    # Gone or replaced meanwhile (its events follow), or a write the server
                    # will never take: retrying would not help.
                    log.debug("simulated pod %s: %s", key, e.message)
                    self.queue.forget(key)
                else:
                    log.warning("simulated pod %s: %s", key, getattr(e, "message", e))
                    self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    def requeue_after(self, key: str, delay: float) -> None:
        """Sync `key` again in `delay` seconds; an earlier wake-up replaces a later one."""
        due = self.clock.now() + delay
        current = self._timers.get(key)
        if current is not None and not current[1].done():
            if current[0] <= due:
                return
            current[1].cancel()

        async def later() -> None:
            await self.clock.sleep(delay)
            self._timers.pop(key, None)
            self.queue.add(key)

        self._timers[key] = (due, asyncio.create_task(later()))

    # --- the kubelet's decisions ----------------------------------------------------------------
    async def sync(self, key: str) -> None:
        pod = self.informer.get(key)
        node = self.node_of(pod) if pod is not None else None
        if pod is None or node is None:
            return
        uid = pod["metadata"].get("uid", "")
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(key, pod, uid, phase)
        elif phase in TERMINAL:
            self._release(uid)
        elif self._stale(uid, pod):
            return  # our last write has not come back through the watch yet
        elif phase != "Running":
            await self._start(key, pod, node, uid)
        else:
            self._reserve(pod, node)
            await self._maybe_finish(key, pod, uid)

    def _stale(self, uid: str, pod: Obj) -> bool:
        written = self._written.get(uid)
        if written is None or written[0] == _signature(pod):
            return False
        return self.clock.now() - written[1] < STALE_AFTER

    async def _start(self, key: str, pod: Obj, node: SimNode, uid: str) -> None:
        try:
            ips = self.pod_ips(pod, node)
        except RangeExhausted as e:
            # The kubelet leaves such a pod Pending (sandbox creation fails) and retries.
            log.warning("pod %s on %s: %s", key, node.name, e)
            self.requeue_after(key, 10.0)
            return
        await self._write_status(pod, podstatus.running_status(pod, ips, node.ip, self.stamp()))
        self._started[uid] = self.wall.now()
        plan = podstatus.run_plan(pod)
        if plan is not None:
            self.requeue_after(key, plan.seconds)

    async def _maybe_finish(self, key: str, pod: Obj, uid: str) -> None:
        plan = podstatus.run_plan(pod)
        if plan is None or uid in self._finished:
            return
        now = self.wall.now()
        backoff = podstatus.restart_due(pod)
        if backoff is not None:  # crashed, waiting to be restarted
            remaining = (parse_time(podstatus.last_exit(pod)) or now) + backoff - now
            if remaining > 0:
                self.requeue_after(key, remaining)
                return
            await self._write_status(pod, podstatus.restarted_status(pod, self.stamp()))
            self._started[uid] = now
            self.requeue_after(key, plan.seconds)
            return
        started = self._started.get(uid) or parse_time(podstatus.container_started_at(pod)) or now
        remaining = started + plan.seconds - now
        if remaining > 0:
            self.requeue_after(key, remaining)
        elif podstatus.restarts_on_exit(pod, plan.exit_code):
            crashed = podstatus.crashed_status(pod, plan.exit_code, self.stamp())
            await self._write_status(pod, crashed)
            self.requeue_after(key, podstatus.restart_due({"status": crashed}) or 0.0)
        else:
            finished = podstatus.finished_status(pod, plan.exit_code, self.stamp())
            await self._write_status(pod, finished)
            self._finished.add(uid)
            self._release(uid)

    async def _terminate(self, key: str, pod: Obj, uid: str, phase: str | None) -> None:
        if uid in self._deleted:
            return
        grace = pod["metadata"].get("deletionGracePeriodSeconds") or 0
        now = self.clock.now()
        deadline = min(self._deadlines.get(uid, math.inf), now + grace)
        self._deadlines[uid] = deadline
        running = phase not in TERMINAL and podstatus.has_run(pod) and uid not in self._finished
        if running and deadline > now:
            self.requeue_after(key, deadline - now)
            return
        if running:
            # The containers outlived the grace period: killed, as the kubelet reports it.
            status = podstatus.finished_status(pod, podstatus.KILLED_EXIT_CODE, self.wall.stamp())
            await self._write_status(pod, status)
            self._finished.add(uid)
        meta = pod["metadata"]
        try:
            async with self.limit:
                await self.client.delete(
                    PODS,
                    meta["name"],
                    meta.get("namespace"),
                    kind="DeleteOptions",
                    apiVersion="v1",
                    gracePeriodSeconds=0,
                    preconditions={"uid": uid},
                )
        except errors.StatusError as e:
            if e.code not in (404, 409):
                raise
        self._deleted.add(uid)
        self._release(uid)

    def stamp(self) -> str:
        return self.wall.stamp()

    async def _write_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        # The uid makes the write fail rather than land on a new pod of the same name.
        body = {"metadata": {"uid": meta.get("uid")}, "status": status}
        async with self.limit:
            await self.client.patch(
                PODS,
                meta["name"],
                body,
                meta.get("namespace"),
                patch_type="merge",
                subresource="status",
            )
        self._written[meta.get("uid", "")] = (_signature({"status": status}), self.clock.now())


def _signature(pod: Obj) -> tuple[Any, ...]:
    """What distinguishes one of this node's status writes from the next."""
    status = pod.get("status") or {}
    first = (status.get("containerStatuses") or [{}])[0]
    return (status.get("phase"), first.get("restartCount"), tuple(first.get("state") or ()))
