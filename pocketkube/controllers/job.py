"""The Job controller (kube's pkg/controller/job): runs a Job's pods to completion.

`sync(job)` counts the job's pods, decides whether the job has finished (completions reached,
backoffLimit or activeDeadlineSeconds passed, a pod failure policy's FailJob rule matched),
creates or deletes pods to reach `min(parallelism, completions - succeeded)` running (after a
pod-failure backoff of 10s doubling per failure), deletes everything while suspended, and
writes the status through the two-phase counting of job_status.py. As in kube 1.32, a job
first gets the interim SuccessCriteriaMet / FailureTarget condition and gets Complete / Failed
once no pod is left uncounted or terminating.

Pods carry the `batch.kubernetes.io/job-tracking` finalizer until they are counted; pods whose
Job is gone or finished lose it through the "orphan" keys of the same queue.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers import job_status as js
from pocketkube.controllers import job_util as u
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.job_clock import Timers, WallClock, format_time, parse_time
from pocketkube.controllers.job_pods import Expectations, JobPods

JOBS = resource("batch", "jobs")
PODS = resource("", "pods")
MANAGER = "kubernetes.io/job-controller"
MAX_PER_SYNC = 500  # pod creations or deletions per sync (kube's MaxPodCreateDeletePerSync)
Obj = dict[str, Any]


def job_ref(job: Obj) -> Obj:
    """The Job as events refer to it (informer list items carry no kind)."""
    return {"kind": "Job", "apiVersion": "batch/v1", "metadata": job["metadata"]}


class JobController(JobPods, Controller):
    name = "job"
    workers = 4

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 wall: Callable[[], float] = time.time,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.wall = WallClock(self.clock, wall)
        self.recorder = recorder or EventRecorder(client, "job-controller")
        self.expectations = Expectations(self.clock)
        self.rm_expected: dict[str, set[str]] = {}  # uids whose finalizer removal is in flight
        self.backoff: dict[str, u.BackoffRecord] = {}
        self.timers = Timers(self.clock, self.queue)
        self.jobs = informers.informer(JOBS)
        self.pods = informers.informer(PODS)
        self.watch_pods()
        self.jobs.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                     delete=self.job_deleted)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.timers.cancel()

    def event(self, job: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.record(job_ref(job), type_, reason, message)

    async def sync(self, key: str) -> None:
        if key.startswith(self.ORPHAN):
            await self.sync_orphan(key[len(self.ORPHAN):])
            return
        shared = self.jobs.get(key)
        if shared is None or u.is_finished(shared):
            self.backoff.pop(key, None)
            return
        if (shared.get("spec") or {}).get("managedBy") not in (None, MANAGER):
            return  # another controller runs this job (spec.managedBy)
        if (shared.get("spec") or {}).get("completionMode") not in (None, "NonIndexed", "Indexed"):
            self.event(shared, "Warning", "UnknownCompletionMode",
                       "Skipped Job sync because completion mode is unknown")
            return
        try:
            await self._sync_job(key, copy.deepcopy(shared))
        except StatusError as e:
            if e.code != 404 or e.details is None or e.details.get("kind") != "jobs":
                raise
            self.log.info("job %s is gone", key)  # its delete event releases the pods

    async def _sync_job(self, key: str, job: Obj) -> None:
        spec = job["spec"]
        status = job.setdefault("status", {})
        status.setdefault("uncountedTerminatedPods", {})
        satisfied = self.expectations.satisfied(key)
        pods = self.pods_of(job)
        active = [p for p in pods if u.is_active(p)]
        expected_rm = set(self.rm_expected.get(key, ()))
        ready = sum(1 for p in active if u.is_ready(p))
        terminating = sum(1 for p in pods if u.is_terminating(p))
        new_ok, new_failed = js.new_finished_pods(job, pods, expected_rm)
        unc_ok, unc_failed = js.uncounted(job)
        succeeded = int(status.get("succeeded") or 0) + len(new_ok) + len(unc_ok)
        failed = int(status.get("failed") or 0) + js.counted_failures(job, new_failed) + \
            len(unc_failed)
        now = self.wall.now()
        stamp = format_time(now)
        suspended = spec.get("suspend") is True
        if not status.get("startTime") and not suspended:
            status["startTime"] = stamp
        record = self.backoff.get(key, u.BackoffRecord()).updated(new_ok, new_failed)

        finished = u.condition(job, "SuccessCriteriaMet") \
            if u.condition_true(job, "SuccessCriteriaMet") else None
        if finished is None:
            target = u.condition(job, "FailureTarget")
            if target is not None and target.get("status") == "True":
                finished = u.new_condition("Failed", target.get("reason", ""),
                                           target.get("message", ""), stamp)
            elif (msg := js.fail_job_message(job, pods)) is not None:
                finished = u.new_condition("FailureTarget", "PodFailurePolicy", msg, stamp)
        if finished is None:
            limit = int(spec.get("backoffLimit", 6))
            deadline = spec.get("activeDeadlineSeconds")
            started = parse_time(status.get("startTime"))
            if failed > limit or js.past_backoff_on_failure(job, pods, limit):
                finished = u.new_condition("FailureTarget", "BackoffLimitExceeded",
                                           "Job has reached the specified backoff limit", stamp)
            elif deadline is not None and started is not None and not suspended:
                if now - started >= deadline:
                    finished = u.new_condition("FailureTarget", "DeadlineExceeded",
                                               "Job was active longer than specified deadline",
                                               stamp)
                else:
                    self.timers.add_after(key, deadline - (now - started))
        prev_indexes: set[int] = set()
        done_indexes: set[int] = set()
        if js.is_indexed(job):
            prev_indexes, done_indexes = js.succeeded_indexes(job, pods)
            succeeded = len(done_indexes)

        manage_err: Exception | None = None
        n_active = len(active)
        suspend_changed = False
        if finished is not None:
            deleted_ready, deleted, manage_err = await self.delete_active(job, active)
            if deleted != n_active or not satisfied:
                finished = None  # pods or finalizers still to come through the informer
            n_active -= deleted
            terminating += deleted
            ready -= deleted_ready
        else:
            manage_called = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                n_active, manage_err = await self._manage(key, job, pods, active, succeeded,
                                                          done_indexes, record)
                manage_called = True
            completions = spec.get("completions")
            if completions is None:
                complete = succeeded > 0 and n_active == 0
            else:
                complete = succeeded >= completions and n_active == 0
            if complete:
                finished = u.new_condition("SuccessCriteriaMet", "CompletionsReached",
                                           "Reached expected number of succeeded pods", stamp)
            elif manage_called:
                suspend_changed = self._suspension(job, suspended, stamp)

        needs_flush = suspend_changed or n_active != int(status.get("active") or 0) or \
            ready != status.get("ready") or terminating != status.get("terminating")
        status.update(active=n_active, ready=ready, terminating=terminating)
        await self.track(key, job, pods, expected_rm, finished, prev_indexes, needs_flush,
                         record)
        if manage_err is not None:
            raise manage_err

    def _suspension(self, job: Obj, suspended: bool, stamp: str) -> bool:
        conds = job["status"].setdefault("conditions", [])
        if suspended:
            changed = u.ensure_condition(conds, "Suspended", "True", "JobSuspended",
                                         "Job suspended", stamp)
            if changed:
                self.event(job, "Normal", "Suspended", "Job suspended")
        else:
            changed = u.ensure_condition(conds, "Suspended", "False", "JobResumed",
                                         "Job resumed", stamp)
            if changed:
                self.event(job, "Normal", "Resumed", "Job resumed")
                # activeDeadlineSeconds counts from the resume.
                job["status"]["startTime"] = stamp
        if not conds:
            job["status"].pop("conditions")
        return changed

    async def _manage(self, key: str, job: Obj, pods: list[Obj], active: list[Obj],
                      succeeded: int, done_indexes: set[int], record: u.BackoffRecord
                      ) -> tuple[int, Exception | None]:
        """Create or delete pods toward the wanted number running; (active, error)."""
        spec = job["spec"]
        n_active = len(active)
        if spec.get("suspend") is True:
            self.expectations.expect(key, dels=n_active)
            _, removed, err = await self.delete_pods(key, job, active)
            return n_active - removed, err
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        if completions is None:
            want = n_active if succeeded > 0 else parallelism
        else:
            want = max(0, min(completions - succeeded, parallelism))
        to_delete = js.pods_for_removal(job, active, max(0, n_active - want))[:MAX_PER_SYNC]
        if to_delete:
            self.expectations.expect(key, dels=len(to_delete))
            _, removed, err = await self.delete_pods(key, job, to_delete)
            return n_active - removed, err
        terminating = sum(1 for p in pods if u.is_terminating(p)) \
            if u.only_replace_failed(job) else 0
        diff = min(want - terminating - n_active, MAX_PER_SYNC)
        if diff <= 0:
            return n_active, None
        wait = record.remaining(self.wall.now())
        if wait > 0:
            self.timers.add_after(key, wait)
            return n_active, None
        indexes: list[int | None] = [None] * diff
        if js.is_indexed(job):
            indexes = list(js.pending_indexes(job, pods, done_indexes, diff))
        if not indexes:
            return n_active, None
        self.expectations.expect(key, adds=len(indexes))
        created, err = await self.create_pods(key, job, indexes)
        return n_active + created, err

    async def track(self, key: str, job: Obj, pods: list[Obj], expected_rm: set[str],
                    finished: Obj | None, prev_indexes: set[int], needs_flush: bool,
                    record: u.BackoffRecord) -> None:
        """Count finished pods, remove their finalizers, and write the status (kube's
        trackJobStatusAndRemoveFinalizers)."""
        status = job["status"]
        with_finalizer = {p["metadata"].get("uid", "") for p in pods
                          if u.has_finalizer(p) and p["metadata"].get("uid") not in expected_rm}
        needs_flush = js.clean_uncounted(status, with_finalizer) or needs_flush
        failing = finished is not None and finished["type"] != "SuccessCriteriaMet"
        tally = js.count_terminated(job, pods, expected_rm, failing, finished is not None,
                                    prev_indexes)
        needs_flush = needs_flush or tally.flush
        stamp = format_time(self.wall.now())
        conds = status.setdefault("conditions", [])
        if finished is not None and finished["type"] == "FailureTarget":
            conds.append(finished)
            needs_flush = True
            finished = u.new_condition("Failed", finished["reason"], finished["message"], stamp)
        if finished is not None and finished["type"] == "SuccessCriteriaMet":
            if not u.condition_true(job, "SuccessCriteriaMet"):
                conds.append(finished)
                needs_flush = True
            finished = u.new_condition("Complete", finished["reason"], finished["message"],
                                       stamp)
        if not conds:
            status.pop("conditions")
        if needs_flush:
            await self.write_status(job)
            self.backoff[key] = record
            needs_flush = False
        rm_err: Exception | None = None
        if tally.remove_finalizer:
            removed, rm_err = await self.remove_finalizers(key, tally.remove_finalizer)
            with_finalizer -= removed
        if js.clean_uncounted(status, with_finalizer):
            needs_flush = True
        if rm_err is not None:
            if needs_flush:
                await self.write_status(job)
            raise rm_err
        done = not tally.capped and js.enact_finished(job, finished)
        if needs_flush or done:
            await self.write_status(job)
            if done and finished is not None:
                if finished["type"] == "Complete":
                    if int(status.get("succeeded") or 0) > (job["spec"].get("completions") or 2**31):
                        self.event(job, "Warning", "TooManySucceededPods", "Too many succeeded "
                                   "pods running after completion count reached")
                    self.event(job, "Normal", "Completed", "Job completed")
                else:
                    self.event(job, "Warning", finished["reason"], finished["message"])

    async def write_status(self, job: Obj) -> None:
        """PUT the status; conflicts surface as errors so the queue re-syncs from the cache."""
        body = copy.deepcopy(job)
        st = body["status"]
        for k in ("active", "succeeded", "failed", "completedIndexes"):
            if not st.get(k):
                st.pop(k, None)  # omitempty, as kube writes them
        fresh = await self.client.update(JOBS, body, subresource="status")
        job["metadata"] = fresh["metadata"]
