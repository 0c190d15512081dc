"""Writing pod statuses to the API server (kube's pkg/kubelet/status/status_manager.go).

The pod workers hand over each freshly generated status; the manager keeps the latest one per
pod, stamps startTime and the conditions' transition times against the previous status, and
PATCHes pods/<name>/status only when something changed. Writes happen in the background, one
at a time per pod, retried with backoff. The patch is a JSON merge patch carrying the whole
kubelet-owned part of the status (fields it dropped set to null) and `metadata.uid`, so a pod
deleted and re-created under the same name is never given another pod's status (the server
refuses a uid change).

Once the pod workers report a pod finished (containers stopped, volumes torn down) and the
pod has a deletionTimestamp, the final status is written and the pod is deleted with
gracePeriodSeconds=0 and a uid precondition, which completes the graceful deletion that
`kubectl delete` started. 404 and 409 mean someone else got there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.podutil import format_time
from pocketkube.client.rest import resource
from pocketkube.client.workqueue import Clock, WorkQueue
from pocketkube.kubelet.podconditions import set_transition_times

log = logging.getLogger("pocketkube.kubelet.status")
Obj = dict[str, Any]
PODS = resource("", "pods")
OWNED = ("phase", "conditions", "message", "reason", "hostIP", "hostIPs", "podIP", "podIPs",
         "startTime", "initContainerStatuses", "containerStatuses", "qosClass")
WORKERS = 4
RETRY_BASE = 0.5
RETRY_MAX = 30.0


class StatusManager:
    """`target(uid)` returns the pod object the API holds for a pod this node runs (the mirror
    pod for a static pod), or None when there is none."""

    def __init__(self, client: Any, *, clock: Clock, wall: Callable[[], float],
                 target: Callable[[str], Obj | None]) -> None:
        self.client = client
        self.clock = clock
        self.wall = wall
        self.target = target
        self.statuses: dict[str, Obj] = {}  # uid -> latest status
        self._sent: dict[str, Obj] = {}  # uid -> status the API acknowledged
        self._finished: set[str] = set()
        self._deleted: set[str] = set()
        self.queue = WorkQueue(clock, base_delay=RETRY_BASE, max_delay=RETRY_MAX)
        self._workers: list[asyncio.Task[None]] = []
        self.idle = asyncio.Event()
        self.idle.set()
        self._pending: set[str] = set()

    def get(self, uid: str) -> Obj | None:
        return self.statuses.get(uid)

    def set_pod_status(self, pod: Obj, status: Obj) -> None:
        uid = pod["metadata"]["uid"]
        old = self.statuses.get(uid) or (pod.get("status") or {})
        status = copy.deepcopy(status)
        now = format_time(self.wall())
        if not status.get("startTime"):
            status["startTime"] = old.get("startTime") or now
        set_transition_times(status, old, now)
        if self.statuses.get(uid) == status and uid in self._sent:
            return
        self.statuses[uid] = status
        self._enqueue(uid)

    def finished(self, uid: str) -> None:
        """The pod workers are done with the pod: it may be deleted once marked for it."""
        self._finished.add(uid)
        self._enqueue(uid)

    def forget(self, uid: str) -> None:
        for state in (self.statuses, self._sent):
            state.pop(uid, None)
        self._finished.discard(uid)
        self._deleted.discard(uid)

    def resync(self, uid: str) -> None:
        """Write again if the API's copy no longer matches (someone else changed it)."""
        pod = self.target(uid)
        status = self.statuses.get(uid)
        if pod is None or status is None:
            return
        api = pod.get("status") or {}
        if any(api.get(k) != status.get(k) for k in OWNED):
            self._sent.pop(uid, None)
            self._enqueue(uid)

    # --- background writes ---------------------------------------------------------------

    def _enqueue(self, uid: str) -> None:
        self._start()
        self._pending.add(uid)
        self.idle.clear()
        self.queue.add(uid)

    def _start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.get_running_loop().create_task(self._worker())
                             for _ in range(WORKERS)]

    async def _worker(self) -> None:
        while True:
            uid = await self.queue.get()
            if uid is None:
                return
            try:
                await self.sync(uid)
                self.queue.forget(uid)
                self._pending.discard(uid)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("writing the status of pod %s failed: %s", uid, e)
                self.queue.add_rate_limited(uid)
            finally:
                self.queue.done(uid)
                if not self._pending:
                    self.idle.set()

    async def sync(self, uid: str) -> None:
        pod = self.target(uid)
        status = self.statuses.get(uid)
        if pod is None or status is None:
            return
        meta = pod["metadata"]
        if self._sent.get(uid) != status:
            api = pod.get("status") or {}
            sent = self._sent.get(uid) or {}
            body = {k: status.get(k) for k in OWNED
                    if k in status or k in api or k in sent}
            try:
                await self.client.patch(PODS, meta["name"],
                                        {"metadata": {"uid": meta["uid"]}, "status": body},
                                        meta.get("namespace"), subresource="status")
            except StatusError as e:
                if e.code not in (404, 409, 422):
                    raise
                log.info("status of pod %s/%s not written: %s", meta.get("namespace"),
                         meta["name"], e)
                return
            self._sent[uid] = copy.deepcopy(status)
        if uid in self._finished and meta.get("deletionTimestamp") and \
                uid not in self._deleted and not _is_mirror(pod):
            await self._delete(pod)
            self._deleted.add(uid)

    async def _delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"),
                                     gracePeriodSeconds=0, preconditions={"uid": meta["uid"]})
            log.info("pod %s/%s deleted", meta.get("namespace"), meta["name"])
        except StatusError as e:
            if e.code not in (404, 409):
                raise

    async def flush(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.idle.wait(), timeout)

    async def close(self) -> None:
        await self.queue.shutdown()
        for t in self._workers:
            t.cancel()
        for t in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._workers = []


def _is_mirror(pod: Obj) -> bool:
    return "kubernetes.io/config.mirror" in ((pod.get("metadata") or {}).get("annotations") or {})
