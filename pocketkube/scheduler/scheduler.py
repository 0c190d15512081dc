"""The scheduler component: informers → queue → one scheduling cycle per pod → asynchronous
binding (kube's `schedule_one.go`), behind leader election on the Lease
kube-system/kube-scheduler.

A cycle is synchronous (no await between reading the cache and assuming the pod), so the cache
needs no snapshot copy and two pods can never be given the same room. Binding, status updates,
events and victim evictions are API calls made in background tasks while the next pod is
scheduled.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import Informer
from pocketkube.client.leaderelection import LeaderElector, default_identity
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock, RealClock
from pocketkube.components import ComponentContext
from pocketkube.scheduler import apicalls
from pocketkube.scheduler.cache import Cache, NodeInfo, PodInfo
from pocketkube.scheduler.defaultspread import default_selector, system_constraints
from pocketkube.scheduler.eventhandlers import Handlers
from pocketkube.scheduler.framework import (
    NO_NODES_AVAILABLE,
    Diagnosis,
    FitError,
    Framework,
    with_nominated,
)
from pocketkube.scheduler.plugins import default_plugins
from pocketkube.scheduler.preemption import Preemptor
from pocketkube.scheduler.queue import QueuedPod, SchedulingQueue

log = logging.getLogger("pocketkube.scheduler")
PODS = resource("", "pods")
NODES = resource("", "nodes")
NAMESPACES = resource("", "namespaces")
PRIORITY_CLASSES = resource("scheduling.k8s.io", "priorityclasses")
PDBS = resource("policy", "poddisruptionbudgets")
# What a pod's default topology spread groups it by (kube's DefaultSelector).
SPREAD_SOURCES = (resource("", "services"), resource("", "replicationcontrollers"),
                  resource("apps", "replicasets"), resource("apps", "statefulsets"))
MESSAGE_LIMIT = 1024  # kube truncates event notes to this many characters
Obj = dict[str, Any]


def truncate(msg: str) -> str:
    return msg if len(msg) <= MESSAGE_LIMIT else msg[:MESSAGE_LIMIT - 3] + "..."


class Scheduler:
    def __init__(self, client: ApiClient, scheduler_name: str = apicalls.SCHEDULER_NAME,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 percentage_of_nodes_to_score: int = 0) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.clock = clock or RealClock()
        self.cache = Cache()
        self.framework = Framework(default_plugins(), percentage_of_nodes_to_score, rng)
        self.queue = SchedulingQueue(self.clock, {p.name: p.events
                                                  for p in self.framework.plugins})
        self.pdbs: Informer | None = None
        self.spread_sources: list[Informer] = []
        self.preemptor = Preemptor(self.framework, self.cache, self.queue.nominated_pods, rng,
                                   budgets=lambda: self.pdbs.list() if self.pdbs else [])
        self.events = EventRecorder(client, scheduler_name)
        self.priority_classes: dict[str, Obj] = {}
        self.handlers = Handlers(self)
        self._tasks: set[asyncio.Task[None]] = set()
        self.scheduled = 0
        self.informers: list[Informer] = []

    # -- wiring ---------------------------------------------------------------------------------
    def pod_info(self, pod: Obj) -> PodInfo:
        return PodInfo(pod, self.priority_of(pod))

    def priority_of(self, pod: Obj) -> int:
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None:
            return int(spec["priority"])
        name = spec.get("priorityClassName")
        pc = self.priority_classes.get(name) if name else next(
            (c for c in self.priority_classes.values() if c.get("globalDefault")), None)
        return int(pc.get("value") or 0) if pc else 0

    def default_spread(self, pod: PodInfo) -> list[Obj]:
        """The system default spread constraints of a pod that declares none."""
        by_ns = [inf.by_index("namespace", pod.namespace) for inf in self.spread_sources]
        services, rcs, rss, sss = by_ns
        return system_constraints(pod, default_selector(pod, services + rcs, rss + sss))

    def build_informers(self) -> list[Informer]:
        h = self.handlers
        not_done = "status.phase!=Succeeded,status.phase!=Failed"
        pcs = Informer(self.client, PRIORITY_CLASSES)
        pcs.on(add=h.priority_class_set, update=h.priority_class_set,
               delete=h.priority_class_delete)
        nss = Informer(self.client, NAMESPACES)
        nss.on(add=h.namespace_set, update=h.namespace_set, delete=h.namespace_delete)
        nodes = Informer(self.client, NODES)
        nodes.on(add=h.node_add, update=h.node_update, delete=h.node_delete)
        assigned = Informer(self.client, PODS, field_selector=f"spec.nodeName!=,{not_done}")
        assigned.on(add=h.assigned_add, update=h.assigned_update, delete=h.assigned_delete)
        pending = Informer(self.client, PODS, field_selector=f"spec.nodeName=,{not_done}")
        pending.on(add=h.unscheduled_add, update=h.unscheduled_update,
                   delete=h.unscheduled_delete)
        self.pdbs = Informer(self.client, PDBS)  # read by preemption only
        self.spread_sources = [Informer(self.client, r) for r in SPREAD_SOURCES]
        for inf in self.spread_sources:
            inf.add_index("namespace", lambda o: [o["metadata"].get("namespace") or ""])
        self.cache.default_spread = self.default_spread
        # Order matters at start: priorities, nodes and assigned pods before pending pods.
        self.informers = [pcs, nss, self.pdbs, *self.spread_sources, nodes, assigned, pending]
        return self.informers

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Sync the informers, then schedule until cancelled or `stop` is set."""
        informers = self.build_informers()
        try:
            for inf in informers:
                inf.start()
                await inf.wait_synced(60.0)
            flusher = asyncio.create_task(self.queue.run())
            loop = asyncio.create_task(self.schedule_loop())
            waits = {flusher, loop}
            if stop is not None:
                waits.add(asyncio.create_task(stop.wait()))
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                t.result()
        finally:
            self.queue.close()
            for t in list(self._tasks):
                t.cancel()
            for inf in informers:
                await inf.stop()
            await self.events.close()

    async def schedule_loop(self) -> None:
        while True:
            qp = await self.queue.pop()
            if qp is None:
                return
            try:
                self.schedule_one(qp)
            except Exception:
                log.exception("scheduling %s failed", qp.info.key)
                self.queue.add_backoff(qp)
            await asyncio.sleep(0)  # let informers and bindings progress between pods

    # -- one cycle ------------------------------------------------------------------------------
    def find_host(self, pi: PodInfo) -> tuple[NodeInfo | None, Any, Diagnosis]:
        """(node, cycle state, diagnosis): the chosen node, or None with why not."""
        diag = Diagnosis()
        nodes = self.cache.node_list
        state, st = self.framework.run_pre_filter(pi, self.cache)
        if st is not None:
            diag.pre_filter_msg = st.message()
            diag.unschedulable_plugins.add(st.plugin)
            return None, state, diag
        nominated = self.queue.nominated_pods() if self.queue.nominated else None
        nom = (pi.obj.get("status") or {}).get("nominatedNodeName")
        if nom and nom in self.cache.nodes and self.cache.nodes[nom].node is not None:
            ni = self.cache.nodes[nom]
            target = with_nominated(ni, pi, nominated[nom]) if nominated and \
                nom in nominated else ni
            if self.framework.run_filters(state, pi, target) is None:
                return ni, state, diag
        feasible = self.framework.find_feasible(state, pi, nodes, diag, nominated)
        if not feasible:
            return None, state, diag
        if len(feasible) == 1:
            return feasible[0], state, diag
        totals = self.framework.prioritize(state, pi, feasible, self.cache)
        return self.framework.select_host(feasible, totals), state, diag

    def schedule_one(self, qp: QueuedPod) -> None:
        pi = qp.info
        if pi.obj["metadata"].get("deletionTimestamp"):
            self.queue.done(pi.uid)
            return
        if not self.cache.node_list:
            self.fail(qp, NO_NODES_AVAILABLE, set(), None)
            return
        host, state, diag = self.find_host(pi)
        if host is None:
            err = FitError(pi, len(self.cache.node_list), diag)
            chosen, diag.post_filter_msg, clear = self.preemptor.preempt(state, pi, diag)
            nominated: str | None = "" if clear else None
            if chosen is not None:
                nominated = chosen[0].name
                self.prepare_candidate(pi, chosen[0], chosen[1])
            self.fail(qp, str(err), diag.unschedulable_plugins, nominated)
            return
        self.cache.assume(pi, host.name)
        self.queue.done(pi.uid)
        self.queue.delete_nominated(pi.uid)
        self.spawn(self.bind(qp, host.name))

    async def bind(self, qp: QueuedPod, node: str) -> None:
        pi = qp.info
        try:
            await apicalls.bind(self.client, pi.obj, node)
        except Exception as e:
            self.cache.forget(pi.uid)
            if isinstance(e, StatusError) and e.code in (404, 409):
                return  # deleted, or bound by someone else
            log.warning("binding %s to %s failed: %s", pi.key, node, e)
            self.queue.pods[pi.uid] = qp
            self.queue.add_backoff(qp)
            self.events.record(pi.obj, "Warning", "FailedScheduling",
                               truncate(f"Binding rejected: {e}"), action="Scheduling")
            return
        self.scheduled += 1
        self.events.record(pi.obj, "Normal", "Scheduled",
                           f"Successfully assigned {pi.key} to {node}", action="Binding")

    def fail(self, qp: QueuedPod, message: str, plugins: set[str],
             nominated: str | None) -> None:
        """Back to the queue as unschedulable, with kube's event and pod condition."""
        pi = qp.info
        self.queue.add_unschedulable(qp, plugins)
        if nominated:
            self.queue.add_nominated(pi, nominated)
        elif nominated == "":
            self.queue.delete_nominated(pi.uid)
        log.info("unable to schedule %s: %s", pi.key, message)
        self.events.record(pi.obj, "Warning", "FailedScheduling", truncate(message),
                           action="Scheduling")
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": message}
        self.spawn(self._write(apicalls.update_pod_status(self.client, pi.obj, condition,
                                                          nominated)))

    def prepare_candidate(self, pod: PodInfo, node: NodeInfo, victims: list[PodInfo]) -> None:
        """Evict the victims, and take the node back from lower-priority pods nominated
        there."""
        for v in victims:
            self.spawn(self._evict(pod, v, node.name))
        for other in list(self.queue.nominated.get(node.name, {}).values()):
            if other.priority < pod.priority and other.uid != pod.uid:
                self.queue.delete_nominated(other.uid)
                self.spawn(self._write(apicalls.clear_nominated(self.client, other.obj)))

    async def _evict(self, pod: PodInfo, victim: PodInfo, node: str) -> None:
        try:
            if await apicalls.evict_victim(self.client, victim.obj, self.scheduler_name):
                self.events.record(victim.obj, "Normal", "Preempted",
                                   f"Preempted by pod {pod.uid} on node {node}",
                                   action="Preempting", related=pod.obj)
        except Exception as e:
            log.warning("preempting %s failed: %s", victim.key, e)

    async def _write(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as e:
            log.warning("pod status update failed: %s", e)


async def run(ctx: ComponentContext) -> None:
    """The `scheduler` component: lead through the kube-system/kube-scheduler Lease, then
    schedule until leadership is lost (the supervisor then starts a new candidate)."""
    opts = ctx.options
    elector = LeaderElector(ctx.client, "kube-scheduler", "kube-system",
                            identity=opts.get("identity") or default_identity(),
                            lease_duration=opts.get("lease_duration", 15.0),
                            renew_deadline=opts.get("renew_deadline", 10.0),
                            retry_period=opts.get("retry_period", 2.0))

    async def health() -> tuple[bool, str]:
        return True, "ok"

    ctx.health = health
    async with elector.leading() as lost:
        log.info("%s leads; scheduling", elector.identity)
        sched = Scheduler(ctx.client)
        await sched.run(stop=lost)
    if lost.is_set():
        raise RuntimeError("scheduler lost its leader lease")
