"""One worker per pod (kube's pkg/kubelet/pod_workers.go): syncs of a pod never overlap, each
sync works on the latest spec seen (updates that arrive meanwhile are coalesced), and a pod
moves one way through syncing → terminating → terminated → finished.

- syncing: `sync_pod(pod)` on every spec change, pod lifecycle event, probe change, and every
  10 s (sooner when a backed-off restart falls due); it reports whether the pod reached a
  terminal phase, which starts termination.
- terminating: a deletion (deletionTimestamp), removal from the API, or a terminal phase;
  `sync_terminating_pod(pod, grace)` stops everything within the grace period, which can only
  shrink (a second `kubectl delete --grace-period=1` cuts a running termination short).
- terminated: `sync_terminated_pod(pod)` releases volumes and reports the final status.
- finished: the worker waits for the pod to leave the API, then `cleanup(uid)` removes what is
  left and the worker ends.

Time goes through the injected clock, so tests drive resyncs without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from pocketkube.client.workqueue import Clock
from pocketkube.kubelet.lifecycle import pod_grace

log = logging.getLogger("pocketkube.kubelet.podworkers")
Obj = dict[str, Any]

SYNCING, TERMINATING, TERMINATED, FINISHED = "syncing", "terminating", "terminated", "finished"
RESYNC_PERIOD = 10.0
ERROR_BACKOFF = 10.0
TERMINAL = ("Succeeded", "Failed")


class PodSyncer(Protocol):
    async def sync_pod(self, pod: Obj) -> tuple[bool, float | None]:
        """(pod is terminal, seconds until a retry is due or None)."""
        ...

    async def sync_terminating_pod(self, pod: Obj, grace: int) -> None: ...

    async def sync_terminated_pod(self, pod: Obj) -> None: ...

    async def cleanup(self, pod: Obj) -> None: ...


@dataclass
class _Worker:
    uid: str
    pod: Obj
    state: str = SYNCING
    grace: int = 0
    removed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    current: asyncio.Task | None = None
    task: asyncio.Task | None = None
    syncs: int = 0


class PodWorkers:
    def __init__(self, syncer: PodSyncer, clock: Clock, resync: float = RESYNC_PERIOD) -> None:
        self.syncer = syncer
        self.clock = clock
        self.resync = resync
        self.workers: dict[str, _Worker] = {}
        self.idle = asyncio.Event()
        self.idle.set()

    # --- what the rest of the agent asks ------------------------------------------------------

    def state(self, uid: str) -> str | None:
        w = self.workers.get(uid)
        return w.state if w else None

    def active_pods(self) -> list[Obj]:
        """Pods that hold resources on the node (not yet terminated)."""
        return [w.pod for w in self.workers.values() if w.state in (SYNCING, TERMINATING)]

    # --- inputs -------------------------------------------------------------------------------

    def update(self, pod: Obj, *, removed: bool = False, grace_override: int | None = None,
               sync: bool = True) -> None:
        """Take the pod's latest version; with `sync` False (only its status changed) the
        worker keeps its schedule, as kube's config source only reconciles such updates."""
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        new = w is None
        if w is None:
            if removed:
                return  # never ran here: nothing to stop
            w = self.workers[uid] = _Worker(uid, pod)
            if ((pod.get("status") or {}).get("phase") in TERMINAL):
                w.state = TERMINATING  # finished before (an agent restart): just clean up
            w.task = asyncio.get_running_loop().create_task(self._run(w), name=f"pod-{uid}")
        w.pod = pod
        w.removed = w.removed or removed
        deleting = removed or bool(pod["metadata"].get("deletionTimestamp")) or \
            grace_override is not None
        if deleting and w.state in (SYNCING, TERMINATING):
            grace = pod_grace(pod, w.grace, grace_override)
            shorter = w.state == TERMINATING and w.grace and grace < w.grace
            if w.state == SYNCING or shorter:
                log.info("pod %s: terminating with a grace period of %ss",
                         _name(pod), grace)
                if w.current is not None and not w.current.done():
                    w.current.cancel()  # the running sync gives way to the termination
            w.state = TERMINATING
            w.grace = grace
        if sync or new or removed or grace_override is not None:
            self._wake(w)

    def notify(self, uid: str) -> None:
        """Something about the pod changed in the runtime or its probes: sync it soon."""
        w = self.workers.get(uid)
        if w is not None:
            self._wake(w)

    def _wake(self, w: _Worker) -> None:
        self.idle.clear()
        w.wake.set()

    # --- the worker -----------------------------------------------------------------------------

    async def _wait(self, w: _Worker, timeout: float | None) -> None:
        if w.wake.is_set():
            return
        waiter = asyncio.ensure_future(w.wake.wait())
        timer = asyncio.ensure_future(self.clock.sleep(timeout)) if timeout else None
        pending = {waiter} | ({timer} if timer else set())
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pending:
                t.cancel()

    async def _step(self, w: _Worker) -> float | None:
        """One unit of work for the worker's state; the time until it should run again."""
        pod = w.pod
        if w.state == SYNCING:
            terminal, retry = await self.syncer.sync_pod(pod)
            if terminal and w.state == SYNCING:
                w.state = TERMINATING
                w.grace = pod_grace(pod, w.grace)
                w.wake.set()
            return retry if retry is not None and retry < self.resync else self.resync
        if w.state == TERMINATING:
            grace = w.grace or pod_grace(pod)
            await self.syncer.sync_terminating_pod(pod, grace)
            w.state = TERMINATED
            w.wake.set()
            return None
        if w.state == TERMINATED:
            await self.syncer.sync_terminated_pod(pod)
            w.state = FINISHED
            w.wake.set()
            return None
        return None

    async def _run(self, w: _Worker) -> None:
        timeout: float | None = None
        while True:
            await self._wait(w, timeout)
            w.wake.clear()
            if w.state == FINISHED:
                if w.removed:
                    break
                timeout = None
                self._maybe_idle()
                continue
            self.idle.clear()
            w.current = asyncio.ensure_future(self._step(w))
            await asyncio.wait({w.current})
            if w.current.cancelled():
                timeout = 0  # a termination took over: run it now
                w.wake.set()
                continue
            error = w.current.exception()
            w.syncs += 1
            if error is not None:
                log.error("syncing pod %s (%s) failed: %s", _name(w.pod), w.state, error,
                          exc_info=error)
                timeout = ERROR_BACKOFF
            else:
                timeout = w.current.result()
            self._maybe_idle()
        try:
            await self.syncer.cleanup(w.pod)
        except Exception:
            log.exception("cleaning up pod %s failed", _name(w.pod))
        self.workers.pop(w.uid, None)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not any(w.wake.is_set() or (w.current is not None and not w.current.done())
                   for w in self.workers.values()):
            self.idle.set()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until no worker has anything to do right now (tests)."""
        while True:
            await asyncio.wait_for(self.idle.wait(), timeout)
            for _ in range(5):
                await asyncio.sleep(0)  # let woken workers take their turn
            if self.idle.is_set():
                return

    async def close(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for w in self.workers.values():
            if w.current is not None:
                w.current.cancel()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.workers.clear()


def _name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
