"""The CronJob controller (kube's pkg/controller/cronjob, controller v2): creates a Job named
`<cronjob>-<scheduled minutes since the epoch>` at each schedule time, honouring
concurrencyPolicy (Allow / Forbid / Replace), startingDeadlineSeconds, suspend and the time
zone; keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; deletes finished Jobs
beyond the history limits; and requeues each CronJob for its next schedule time on the
injected clock. Schedule arithmetic lives in cron.py.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.validation.cron import CronError
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import key_of
from pocketkube.client.rest import resource
from pocketkube.controllers import cron
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.cronjob_util import (
    drop_active,
    finished_type,
    format_schedule,
    go_quote,
    job_from_template,
    job_name,
    job_reference,
    namespace_terminating,
    owner_key,
    parse_meta_time,
)
from pocketkube.controllers.job_clock import Timers, WallClock, format_time

CRONJOBS = resource("batch", "cronjobs")
JOBS = resource("batch", "jobs")
OWNER_INDEX = "cronjob-controller-owner"
Obj = dict[str, Any]


class CronJobController(Controller):
    name = "cronjob"
    workers = 2

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 wall: Callable[[], float] = time.time,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.wall = WallClock(self.clock, wall)
        self.recorder = recorder or EventRecorder(client, "cronjob-controller")
        self.timers = Timers(self.clock, self.queue)
        self.cronjobs = informers.informer(CRONJOBS)
        self.jobs = informers.informer(JOBS)
        self.jobs.add_index(OWNER_INDEX, owner_key)
        self.cronjobs.on(add=self.enqueue, update=self._cronjob_updated, delete=self.enqueue)
        self.jobs.on(add=self._job_changed, update=self._job_updated, delete=self._job_changed)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.timers.cancel()

    def event(self, cj: Obj, type_: str, reason: str, message: str) -> None:
        ref = {"kind": "CronJob", "apiVersion": "batch/v1", "metadata": cj["metadata"]}
        self.recorder.record(ref, type_, reason, message)

    # -- handlers ----------------------------------------------------------------------------
    def _job_changed(self, job: Obj) -> None:
        for key in owner_key(job):
            cj = self.cronjobs.get(key)
            ref = next(r for r in job["metadata"]["ownerReferences"] if r.get("controller"))
            if cj is not None and cj["metadata"].get("uid") == ref.get("uid"):
                self.queue.add(key)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if owner_key(old) != owner_key(new):
            self._job_changed(old)
        self._job_changed(new)

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        o, n = old.get("spec") or {}, new.get("spec") or {}
        if o.get("schedule") == n.get("schedule") and o.get("timeZone") == n.get("timeZone"):
            self.enqueue(new)
            return
        try:
            sched = cron.parse_standard(format_schedule(new))
        except CronError:
            self.event(new, "Warning", "UnParseableCronJobSchedule",
                       f"unparseable schedule for cronjob: {n.get('schedule')}")
            return
        delay = self._next_delay(new, self.wall.datetime(), sched)
        if delay is not None:
            self.timers.add_after(key_of(new), delay)

    # -- sync --------------------------------------------------------------------------------
    def _next_delay(self, cj: Obj, now: datetime, sched: cron.Schedule) -> float | None:
        created = parse_meta_time(cj["metadata"].get("creationTimestamp")) or now
        last = parse_meta_time((cj.get("status") or {}).get("lastScheduleTime"))
        return cron.next_schedule_delay(created, last, now, sched)

    async def sync(self, key: str) -> None:
        shared = self.cronjobs.get(key)
        if shared is None:
            return
        cj = copy.deepcopy(shared)
        cj.setdefault("status", {})
        jobs = self.jobs.by_index(OWNER_INDEX, key)
        changed = await self._cleanup(cj, jobs)
        delay, synced_change, err = None, False, None
        try:
            delay, synced_change = await self._sync(cj, jobs)
        except StatusError as e:
            err = e
            self.log.info("cronjob %s: %s", key, e.message)
        if changed or synced_change:
            body = copy.deepcopy(cj)
            if not body["status"].get("active"):
                body["status"].pop("active", None)
            await self.client.update(CRONJOBS, body, subresource="status")
        if delay is not None:
            self.timers.add_after(key, delay)
        elif err is not None:
            raise err

    async def _sync(self, cj: Obj, jobs: list[Obj]) -> tuple[float | None, bool]:
        """kube's syncCronJob on `cj` (changed in place): (requeue delay, status changed)."""
        now = self.wall.datetime()
        status = cj["status"]
        changed = False
        children = set()
        for j in jobs:
            uid = j["metadata"].get("uid")
            children.add(uid)
            found = any(r.get("uid") == uid for r in status.get("active") or [])
            done = finished_type(j)
            if not found and done is None:
                fresh = await self.client.get(CRONJOBS, cj["metadata"]["name"],
                                              cj["metadata"].get("namespace"))
                if any(r.get("uid") == uid for r in (fresh.get("status") or {}).get("active")
                       or []):
                    cj.clear()
                    cj.update(fresh)
                    status = cj.setdefault("status", {})
                    continue
                self.event(cj, "Warning", "UnexpectedJob", "Saw a job that the controller did "
                           f"not create or forgot: {j['metadata']['name']}")
            elif found and done is not None:
                drop_active(cj, uid)
                self.event(cj, "Normal", "SawCompletedJob",
                           f"Saw completed job: {j['metadata']['name']}, status: {done}")
                changed = True
            elif done == "Complete":
                t = (j.get("status") or {}).get("completionTime")
                last = parse_meta_time(status.get("lastSuccessfulTime"))
                if t and (last is None or (parse_meta_time(t) or last) > last):
                    status["lastSuccessfulTime"] = t
                    changed = True
        for ref in list(status.get("active") or []):
            if ref.get("uid") in children:
                continue
            try:  # the cache may lag: ask the API before calling the job missing
                await self.client.get(JOBS, ref.get("name", ""), ref.get("namespace"))
            except StatusError as e:
                if e.code != 404:
                    raise
                self.event(cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                drop_active(cj, ref.get("uid"))
                changed = True
        if cj["metadata"].get("deletionTimestamp"):
            return None, changed
        return await self._schedule(cj, now, changed)

    async def _schedule(self, cj: Obj, now: datetime, changed: bool
                        ) -> tuple[float | None, bool]:
        spec, status = cj["spec"], cj["status"]
        tz = spec.get("timeZone")
        if tz is not None:
            try:
                cron.load_location(tz)
            except CronError as e:
                self.event(cj, "Warning", "UnknownTimeZone",
                           f"invalid timeZone: {go_quote(tz)}: {e}")
                return None, changed
        if spec.get("suspend") is True:
            return None, changed
        schedule = spec.get("schedule", "")
        if "TZ" in schedule:
            self.event(cj, "Warning", "UnsupportedSchedule",
                       f"CRON_TZ or TZ used in schedule {go_quote(schedule)} is not officially "
                       "supported, see https://kubernetes.io/docs/concepts/workloads/controllers/"
                       "cron-jobs/ for more details")
        try:
            sched = cron.parse_standard(format_schedule(cj))
        except CronError as e:
            self.event(cj, "Warning", "UnparseableSchedule",
                       f"unparseable schedule: {go_quote(schedule)} : {e}")
            return None, changed
        created = parse_meta_time(cj["metadata"].get("creationTimestamp")) or now
        recent = cron.most_recent_schedule_time(
            created, parse_meta_time(status.get("lastScheduleTime")),
            spec.get("startingDeadlineSeconds"), now, sched, True)
        if recent.most_recent is None or recent.most_recent > now:
            if recent.error is not None:
                self.event(cj, "Warning", "InvalidSchedule",
                           f"invalid schedule: {schedule} : {recent.error}")
                return None, changed
            return self._next_delay(cj, now, sched), changed
        if recent.missed is cron.Missed.MANY:
            self.event(cj, "Warning", "TooManyMissedTimes", "too many missed start times. Set or "
                       "decrease .spec.startingDeadlineSeconds or check clock skew")
        scheduled = recent.most_recent
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and (scheduled.timestamp() + deadline) < now.timestamp():
            self.event(cj, "Warning", "MissSchedule", "Missed scheduled time to start a job: "
                       + scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000"))
            return self._next_delay(cj, now, sched), changed
        name = job_name(cj, scheduled)
        if any(r.get("name") == name for r in status.get("active") or []) or \
                parse_meta_time(status.get("lastScheduleTime")) == scheduled:
            return self._next_delay(cj, now, sched), changed
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            self.event(cj, "Normal", "JobAlreadyActive", "Not starting job because prior "
                       "execution is running and concurrency policy is Forbid")
            return self._next_delay(cj, now, sched), changed
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                try:
                    job = await self.client.get(JOBS, ref.get("name", ""), ref.get("namespace"))
                except StatusError as e:
                    self.event(cj, "Warning", "FailedGet", f"Get job: {e.message}")
                    raise
                if not await self.delete_job(cj, job):
                    raise StatusError(500, "InternalError", "could not replace job "
                                      f"{ref.get('namespace')}/{ref.get('name')}")
                changed = True
        created_job = await self._create(cj, scheduled)
        if created_job is None:
            return None, changed
        status.setdefault("active", []).append(job_reference(created_job))
        status["lastScheduleTime"] = format_time(scheduled)
        return self._next_delay(cj, now, sched), True

    async def _create(self, cj: Obj, scheduled: datetime) -> Obj | None:
        """Create the scheduled job; None when nothing is to be added to status.active."""
        body = job_from_template(cj, scheduled)
        ns = cj["metadata"].get("namespace")
        try:
            job = await self.client.create(JOBS, body, ns)
        except StatusError as e:
            if e.reason != "AlreadyExists":
                if not namespace_terminating(e):
                    self.event(cj, "Warning", "FailedCreate", f"Error creating job: {e.message}")
                raise
            job = await self.client.get(JOBS, body["metadata"]["name"], ns)
            refs = [r for r in job["metadata"].get("ownerReferences") or [] if r.get("controller")]
            if not refs or refs[0].get("uid") != cj["metadata"].get("uid"):
                return None  # someone else's job: assume its owner keeps the status
            if any(r.get("uid") == job["metadata"].get("uid")
                   for r in cj["status"].get("active") or []):
                return None
            self.log.info("job %s/%s already exists", ns, job["metadata"]["name"])
            return job
        self.event(cj, "Normal", "SuccessfulCreate", f"Created job {job['metadata']['name']}")
        return job

    async def delete_job(self, cj: Obj, job: Obj) -> bool:
        meta = job["metadata"]
        try:
            await self.client.delete(JOBS, meta["name"], meta.get("namespace"),
                                     propagationPolicy="Background")
        except StatusError as e:
            self.event(cj, "Warning", "FailedDelete", f"Deleted job: {e.message}")
            return False
        drop_active(cj, meta.get("uid"))
        self.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    async def _cleanup(self, cj: Obj, jobs: list[Obj]) -> bool:
        """Delete the oldest finished jobs beyond the history limits."""
        spec = cj["spec"]
        changed = False
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                            ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = [j for j in jobs if finished_type(j) == kind]
            done.sort(key=lambda j: (not (j.get("status") or {}).get("startTime"),
                                     (j.get("status") or {}).get("startTime") or "",
                                     j["metadata"]["name"]))
            for j in done[:max(0, len(done) - limit)]:
                changed = await self.delete_job(cj, j) or changed
        return changed
