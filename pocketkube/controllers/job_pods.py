"""The Job controller's side of pods: which Job a pod event wakes up, expectations (kube's
ControllerExpectations) so a slow pod cache never makes the controller create pods twice,
creating pods in slow-start batches, deleting them, and removing the
`batch.kubernetes.io/job-tracking` finalizer (also from "orphan" pods whose Job is gone or
finished). Mixed into JobController, which supplies the client, informers, queue and recorder.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.informer import key_of
from pocketkube.client.rest import resource
from pocketkube.controllers import job_status as js
from pocketkube.controllers import job_util as u

PODS = resource("", "pods")
SYNC_BATCH_PERIOD = 1.0
EXPECTATIONS_TIMEOUT = 300.0  # kube's ExpectationsTimeout: stop waiting for a lost event
Obj = dict[str, Any]
REMOVE_FINALIZER = {"metadata": {"$deleteFromPrimitiveList/finalizers": [u.TRACKING_FINALIZER]}}


class Expectations:
    """Per job: pod creations and deletions issued but not yet seen through the informer."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._e: dict[str, list[float]] = {}

    def expect(self, key: str, adds: int = 0, dels: int = 0) -> None:
        self._e[key] = [adds, dels, self.clock.now()]

    def observe(self, key: str, adds: int = 0, dels: int = 0) -> None:
        e = self._e.get(key)
        if e is not None:
            e[0] -= adds
            e[1] -= dels

    def satisfied(self, key: str) -> bool:
        e = self._e.get(key)
        if e is None or (e[0] <= 0 and e[1] <= 0):
            return True
        return self.clock.now() - e[2] > EXPECTATIONS_TIMEOUT

    def forget(self, key: str) -> None:
        self._e.pop(key, None)


def controller_ref(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _owner_uid(pod: Obj) -> list[str]:
    ref = controller_ref(pod)
    return [ref.get("uid", "")] if ref is not None and ref.get("kind") == "Job" else []


class JobPods:
    ORPHAN = "orphan-pod:"
    OWNER_INDEX = "job-controller-owner"
    client: Any
    pods: Any
    jobs: Any
    queue: Any
    expectations: Expectations
    rm_expected: dict[str, set[str]]
    backoff: dict[str, u.BackoffRecord]
    timers: Any
    event: Any  # event(job, type, reason, message), from JobController

    def watch_pods(self) -> None:
        self.pods.add_index(self.OWNER_INDEX, _owner_uid)
        self.pods.on(add=self._pod_added, update=self._pod_updated, delete=self._pod_deleted)

    def pods_of(self, job: Obj) -> list[Obj]:
        return self.pods.by_index(self.OWNER_INDEX, job["metadata"].get("uid", ""))

    def _job_of(self, pod: Obj) -> tuple[str | None, Obj | None]:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job":
            return None, None
        key = f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        job = self.jobs.get(key)
        if job is None or job["metadata"].get("uid") != ref.get("uid"):
            return None, None
        return key, job

    # -- informer handlers -------------------------------------------------------------------
    def batched(self, key: str) -> None:
        """Sync after pod events settle (kube's syncJobBatchPeriod): one sync for a burst of
        pod changes, and by then the cache holds the job's own latest status write."""
        self.timers.add_after(key, SYNC_BATCH_PERIOD)

    def _maybe_orphan(self, pod: Obj, job: Obj | None) -> None:
        if u.has_finalizer(pod) and (job is None or u.is_finished(job)):
            self.queue.add(self.ORPHAN + key_of(pod))

    def _rm_observed(self, key: str, uid: str) -> None:
        expected = self.rm_expected.get(key)
        if expected is not None:
            expected.discard(uid)
            if not expected:
                self.rm_expected.pop(key, None)

    def _pod_added(self, pod: Obj) -> None:
        key, job = self._job_of(pod)
        if key is not None:
            if pod["metadata"].get("deletionTimestamp"):
                self.expectations.observe(key, dels=1)
            else:
                self.expectations.observe(key, adds=1)
            self.batched(key)
        self._maybe_orphan(pod, job)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        uid = new["metadata"].get("uid", "")
        old_key, _ = self._job_of(old)
        key, job = self._job_of(new)
        if key is not None:
            if new["metadata"].get("deletionTimestamp") and \
                    not old["metadata"].get("deletionTimestamp"):
                self.expectations.observe(key, dels=1)
            if not u.has_finalizer(new):
                self._rm_observed(key, uid)
            self.batched(key)
        if old_key is not None and old_key != key:
            self._rm_observed(old_key, uid)
            self.batched(old_key)
        self._maybe_orphan(new, job)

    def _pod_deleted(self, pod: Obj) -> None:
        key, _ = self._job_of(pod)
        if key is None:
            return
        if not pod["metadata"].get("deletionTimestamp"):
            self.expectations.observe(key, dels=1)
        self._rm_observed(key, pod["metadata"].get("uid", ""))
        self.batched(key)

    def job_deleted(self, job: Obj) -> None:
        key = key_of(job)
        self.expectations.forget(key)
        self.rm_expected.pop(key, None)
        self.backoff.pop(key, None)
        for pod in self.pods_of(job):
            if u.has_finalizer(pod):
                self.queue.add(self.ORPHAN + key_of(pod))

    # -- writes ------------------------------------------------------------------------------
    async def sync_orphan(self, key: str) -> None:
        """Drop the tracking finalizer of a pod no unfinished Job counts any more."""
        pod = self.pods.get(key)
        if pod is None or not u.has_finalizer(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return  # another controller's pod
            _, job = self._job_of(pod)
            if job is not None and not u.is_finished(job):
                return  # adopted: its Job counts it
        await self._drop_finalizer(pod)

    async def _drop_finalizer(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["name"], REMOVE_FINALIZER, meta.get("namespace"),
                                    patch_type="strategic")
        except StatusError as e:
            if e.code != 404:
                raise

    async def remove_finalizers(self, key: str, pods: list[Obj]
                                ) -> tuple[set[str], Exception | None]:
        """(uids whose finalizer is gone, the first error)."""
        uids = [p["metadata"].get("uid", "") for p in pods]
        self.rm_expected.setdefault(key, set()).update(uids)

        async def one(p: Obj) -> Exception | None:
            try:
                await self._drop_finalizer(p)
            except StatusError as e:
                self._rm_observed(key, p["metadata"].get("uid", ""))
                return e
            return None

        results = await asyncio.gather(*(one(p) for p in pods))
        errs = [e for e in results if e is not None]
        removed = {uid for uid, e in zip(uids, results, strict=True) if e is None}
        return removed, (errs[0] if errs else None)

    async def create_pods(self, key: str, job: Obj, indexes: list[int | None]
                          ) -> tuple[int, Exception | None]:
        """Create pods in batches of 1, 2, 4, … stopping at the first failing batch (kube's
        slowStartBatch); (pods created, first error)."""
        created, start, batch = 0, 0, 1
        while start < len(indexes):
            chunk = indexes[start:start + batch]
            start += len(chunk)
            results = await asyncio.gather(*(self._create(job, ix) for ix in chunk))
            errs = [e for e in results if e is not None]
            created += len(chunk) - len(errs)
            if errs:
                # The informer will never see the pods that were not created.
                self.expectations.observe(key, adds=len(errs) + len(indexes) - start)
                return created, errs[0]
            batch *= 2
        return created, None

    async def _create(self, job: Obj, index: int | None) -> Exception | None:
        try:
            pod = await self.client.create(PODS, js.new_pod(job, index),
                                           job["metadata"].get("namespace"))
        except StatusError as e:
            details = e.details if isinstance(e.details, dict) else {}
            causes = details.get("causes") or []
            if not any(c.get("type") == "NamespaceTerminating" for c in causes):
                self.event(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
            return e
        self.event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return None

    async def delete_pods(self, key: str, job: Obj, pods: list[Obj]
                          ) -> tuple[int, int, Exception | None]:
        """Remove the finalizer and delete each pod (kube's deleteJobPods); (ready pods
        deleted, pods deleted, first error)."""
        async def one(p: Obj) -> Exception | None:
            name = p["metadata"]["name"]
            try:
                if u.has_finalizer(p):
                    await self._drop_finalizer(p)
                await self.client.delete(PODS, name, job["metadata"].get("namespace"))
            except StatusError as e:
                self.expectations.observe(key, dels=1)
                if e.code == 404:
                    return None
                self.event(job, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                return e
            self.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
            return None

        results = await asyncio.gather(*(one(p) for p in pods))
        ok = [p for p, e in zip(pods, results, strict=True) if e is None]
        errs = [e for e in results if e is not None]
        return sum(1 for p in ok if u.is_ready(p)), len(ok), (errs[0] if errs else None)

    async def delete_active(self, job: Obj, pods: list[Obj]
                             ) -> tuple[int, int, Exception | None]:
        """Delete the active pods of a failed job, keeping finalizers (counted later)."""
        async def one(p: Obj) -> Exception | None:
            try:
                await self.client.delete(PODS, p["metadata"]["name"], job["metadata"].get(
                    "namespace"))
            except StatusError as e:
                if e.code != 404:
                    self.event(job, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                    return e
                return None
            self.event(job, "Normal", "SuccessfulDelete",
                       f"Deleted pod: {p['metadata']['name']}")
            return None

        results = await asyncio.gather(*(one(p) for p in pods))
        errs = [e for e in results if e is not None]
        ok = [p for p, e in zip(pods, results, strict=True) if e is None]
        return sum(1 for p in ok if u.is_ready(p)), len(ok), (errs[0] if errs else None)
