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
from pocketkube.client.informer import Informer, key_of
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock, WorkQueue
from pocketkube.simulator import podstatus
from pocketkube.simulator.addresses import PodIPAllocator, RangeExhausted
from pocketkube.simulator.nodes import NodeManager, SimNode
from pocketkube.simulator.timing import WallClock, parse_time

log = logging.getLogger("pocketkube.simulator")

PODS = resource("", "pods")
TERMINAL = ("Succeeded", "Failed")
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
        self.allocators: dict[str, PodIPAllocator] = {}
        self._held: dict[str, list[str]] = {}  # pod uid -> the ranges it holds an address in
        self._started: dict[str, float] = {}  # pod uid -> wall time its containers started
        self._finished: set[str] = set()  # uids whose terminal status was sent
        self._deadlines: dict[str, float] = {}  # uid -> clock time its grace period ends
        self._deleted: set[str] = set()  # uids whose final delete was sent
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
        for state in (self._started, self._deadlines):
            state.pop(uid, None)
        self._finished.discard(uid)
        self._deleted.discard(uid)

    def running_pods(self) -> int:
        return sum(
            1
            for p in self.informer.store.values()
            if self.node_of(p) is not None and (p.get("status") or {}).get("phase") not in TERMINAL
        )

    # --- addresses ------------------------------------------------------------------------------
    def _allocator(self, cidr: str) -> PodIPAllocator:
        alloc = self.allocators.get(cidr)
        if alloc is None:
            alloc = self.allocators[cidr] = PodIPAllocator(cidr)
        return alloc

    def pod_ips(self, pod: Obj, node: SimNode) -> list[str]:
        """The pod's addresses: the node's own for host-network pods, else one per pod range."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            return [node.ip]
        uid = pod["metadata"]["uid"]
        ips = [self._allocator(c).allocate(uid) for c in node.cidrs]
        self._held[uid] = list(node.cidrs)
        return ips

    def _reserve(self, pod: Obj, node: SimNode) -> None:
        """Take back the addresses of a pod that was running before this process started."""
        uid = pod["metadata"].get("uid", "")
        if uid in self._held or (pod.get("spec") or {}).get("hostNetwork"):
            return
        held = []
        for entry in (pod.get("status") or {}).get("podIPs") or []:
            for cidr in node.cidrs:
                if self._allocator(cidr).reserve(uid, entry.get("ip", "")):
                    held.append(cidr)
        if held:
            self._held[uid] = held

    def _release(self, uid: str) -> None:
        for cidr in self._held.pop(uid, []):
            self._allocator(cidr).release(uid)

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
                if isinstance(e, errors.StatusError) and e.code in (404, 409):
                    self.queue.forget(key)  # gone or replaced meanwhile: its events follow
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
        elif phase != "Running":
            if uid not in self._started:  # else our Running write is still on its way back
                await self._start(key, pod, node, uid)
        else:
            self._reserve(pod, node)
            await self._maybe_finish(key, pod, uid)

    async def _start(self, key: str, pod: Obj, node: SimNode, uid: str) -> None:
        try:
            ips = self.pod_ips(pod, node)
        except RangeExhausted as e:
            # The kubelet leaves such a pod Pending (sandbox creation fails) and retries.
            log.warning("pod %s on %s: %s", key, node.name, e)
            self.requeue_after(key, 10.0)
            return
        status = podstatus.running_status(pod, ips, node.ip, self.wall.stamp())
        await self._write_status(pod, status)
        self._started[uid] = self.wall.now()
        plan = podstatus.run_plan(pod)
        if plan is not None:
            self.requeue_after(key, plan.seconds)

    async def _maybe_finish(self, key: str, pod: Obj, uid: str) -> None:
        plan = podstatus.run_plan(pod)
        if plan is None or uid in self._finished:
            return
        started = self._started.get(uid) or parse_time(podstatus.container_started_at(pod))
        if started is None:
            started = self._started[uid] = self.wall.now()
        remaining = started + plan.seconds - self.wall.now()
        if remaining > 0:
            self.requeue_after(key, remaining)
            return
        now = self.wall.stamp()
        if podstatus.restarts_on_exit(pod, plan.exit_code):
            await self._write_status(pod, podstatus.restarted_status(pod, plan.exit_code, now))
            self._started[uid] = self.wall.now()
            self.requeue_after(key, plan.seconds)
            return
        await self._write_status(pod, podstatus.finished_status(pod, plan.exit_code, now))
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
