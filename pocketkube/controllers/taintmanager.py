"""The taint eviction controller (kube's `pkg/controller/tainteviction`, the "taint manager"):
deletes pods from nodes with NoExecute taints they do not tolerate.

A pod that does not tolerate every NoExecute taint of its node is deleted at once. A pod that
tolerates them all stays while its tolerations last: the shortest tolerationSeconds among the
tolerations it uses, counted from when this controller first saw the pod under those taints
(a toleration without tolerationSeconds lasts forever). When the taints go, or the pod comes to
tolerate them for good, the scheduled eviction is cancelled. Before deleting, the pod gets a
DisruptionTarget condition saying why, as kube does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import key_of
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.nodelifecycle import NODES, PODS, pod_node, wall_now

Obj = dict[str, Any]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """kube's Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_delay(tolerations: list[Obj], taints: list[Obj]) -> float | None:
    """Seconds a pod may stay under `taints` (NoExecute): 0 to evict now, None for ever."""
    if not taints:
        return None
    used: list[Obj] = []
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        used.extend(matching)
    seconds = [t["tolerationSeconds"] for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    return float(max(min(seconds), 0))


def no_execute_taints(node: Obj | None) -> list[Obj]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"]


class TaintEvictionController(Controller):
    name = "taint-eviction"
    workers = 4

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.recorder = recorder or EventRecorder(client, "taint-eviction-controller")
        self.started: dict[str, tuple[str, float]] = {}  # pod key -> (uid, first seen tainted)
        self._timers: dict[str, tuple[float, asyncio.Task[None]]] = {}
        self.nodes = informers.informer(NODES)
        self.pods = informers.informer(PODS)
        self.pods.add_index("nodeName", pod_node)
        self.nodes.on(add=self._node_changed, update=self._node_updated)
        self.pods.on(add=self._pod_changed, update=lambda old, new: self._pod_changed(new),
                     delete=lambda p: self._cancel(key_of(p), event=None))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if no_execute_taints(old) != no_execute_taints(new):
            self._node_changed(new)

    def _node_changed(self, node: Obj) -> None:
        for pod in self.pods.by_index("nodeName", node["metadata"]["name"]):
            self.enqueue(pod)

    def _pod_changed(self, pod: Obj) -> None:
        key = key_of(pod)
        node = self.nodes.get(pod_node(pod)[0]) if pod_node(pod) else None
        if no_execute_taints(node) or key in self.started:
            self.queue.add(key)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for _, task in self._timers.values():
                task.cancel()
            self._timers.clear()

    # -- sync -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp") or not pod_node(pod):
            self._cancel(key, event=pod)
            return
        taints = no_execute_taints(self.nodes.get(pod_node(pod)[0]))
        delay = eviction_delay((pod.get("spec") or {}).get("tolerations") or [], taints)
        if delay is None:
            self._cancel(key, event=pod)
            return
        now = self.clock.now()
        uid = pod["metadata"].get("uid", "")
        started = self.started.get(key)
        if started is None or started[0] != uid:
            started = self.started[key] = (uid, now)
        due = started[1] + delay
        if now >= due:
            await self._evict(pod)
            return
        self._wake(key, due)

    def _wake(self, key: str, at: float) -> None:
        """Sync `key` again at clock time `at` (sooner than any wake already set)."""
        current = self._timers.get(key)
        if current is not None and current[0] <= at and not current[1].done():
            return
        if current is not None:
            current[1].cancel()

        async def later() -> None:
            await self.clock.sleep(at - self.clock.now())
            self._timers.pop(key, None)
            self.queue.add(key)

        self._timers[key] = (at, asyncio.get_running_loop().create_task(later()))

    def _cancel(self, key: str, event: Obj | None) -> None:
        if self.started.pop(key, None) is not None and event is not None:
            self.recorder.record(event, "Normal", "TaintManagerEviction",
                                 f"Cancelling deletion of Pod {key}")
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    async def _evict(self, pod: Obj) -> None:
        meta = pod["metadata"]
        key = key_of(pod)
        self.log.info("evicting pod %s from tainted node %s", key, pod_node(pod)[0])
        self.recorder.record(pod, "Normal", "TaintManagerEviction",
                             f"Marking for deletion Pod {key}")
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": wall_now()}
        try:
            await self.client.patch(PODS, meta["name"], {
                "metadata": {"uid": meta["uid"]}, "status": {"conditions": [cond]}},
                meta["namespace"], patch_type="strategic", subresource="status")
            await self.client.delete(PODS, meta["name"], meta["namespace"],
                                     preconditions={"uid": meta["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):
                raise
        self.started.pop(key, None)
