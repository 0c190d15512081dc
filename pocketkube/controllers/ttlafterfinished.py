"""The TTL-after-finished controller (kube's pkg/controller/ttlafterfinished): deletes a Job
`spec.ttlSecondsAfterFinished` seconds after it finished (Complete or Failed), cascading to its
pods as kube does (foreground propagation, with the Job's uid as a precondition so a new Job
of the same name is never deleted).

Before deleting, the Job is read again from the API rather than the cache: the TTL may have
been changed (or the Job replaced) since the cache saw it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import resource
from pocketkube.controllers import job_util as u
from pocketkube.controllers.base import Controller, InformerFactory, split_key
from pocketkube.controllers.job_clock import Timers, WallClock, parse_time

JOBS = resource("batch", "jobs")
Obj = dict[str, Any]


def needs_cleanup(job: Obj) -> bool:
    return (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None and \
        u.is_finished(job) and not job["metadata"].get("deletionTimestamp")


def finish_time(job: Obj) -> float | None:
    """When the Job's Complete or Failed condition became true."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime"))
    return None


def time_left(job: Obj, now: float) -> float | None:
    """Seconds until the Job expires (≤ 0 once expired); None if it does not expire."""
    if not needs_cleanup(job):
        return None
    finished = finish_time(job)
    if finished is None:
        raise ValueError(f"unable to find the time when the Job {job['metadata'].get('namespace')}"
                         f"/{job['metadata']['name']} finished")
    return finished + int(job["spec"]["ttlSecondsAfterFinished"]) - now


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"
    workers = 2

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(client, informers, clock)
        self.wall = WallClock(self.clock, wall)
        self.timers = Timers(self.clock, self.queue)
        self.jobs = informers.informer(JOBS)
        self.jobs.on(add=self._changed, update=lambda old, new: self._changed(new))

    def _changed(self, job: Obj) -> None:
        if needs_cleanup(job):
            self.enqueue(job)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.timers.cancel()

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None or not self._expired(key, job):
            return
        ns, name = split_key(key)
        try:
            fresh = await self.client.get(JOBS, name, ns)
        except StatusError as e:
            if e.code == 404:
                return
            raise
        if not self._expired(key, fresh):
            return
        self.log.info("deleting job %s: ttlSecondsAfterFinished expired", key)
        try:
            await self.client.delete(JOBS, name, ns, propagationPolicy="Foreground",
                                     preconditions={"uid": fresh["metadata"].get("uid")})
        except StatusError as e:
            if e.code not in (404, 409):
                raise

    def _expired(self, key: str, job: Obj) -> bool:
        left = time_left(job, self.wall.now())
        if left is None:
            return False
        if left > 0:
            self.timers.add_after(key, left)
            return False
        return True
