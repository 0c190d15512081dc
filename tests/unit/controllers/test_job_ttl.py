"""The TTL-after-finished controller on a fake clock: a finished Job is deleted (foreground,
uid precondition) ttlSecondsAfterFinished after it finished, re-checked against the API first."""

from __future__ import annotations

import pytest

from pocketkube.client.rest import resource
from pocketkube.controllers.ttlafterfinished import TTLAfterFinishedController, time_left
from tests.unit.controllers.jobfake import Harness

JOBS = resource("batch", "jobs")
KEY = "default/pi"


def finished_job(ttl: int | None = 100, ctype: str = "Complete",
                 at: str = "2024-05-01T10:00:20Z") -> dict:
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "uid-pi"},
            "spec": spec,
            "status": {"conditions": [{"type": ctype, "status": "True",
                                       "lastTransitionTime": at}]}}


@pytest.fixture
def h() -> Harness:
    return Harness(TTLAfterFinishedController)  # now is 2024-05-01T10:00:30Z


def deletes(h: Harness) -> list[tuple]:
    return [c for c in h.api.calls if c[0] == "delete"]


@pytest.mark.parametrize("ctype", ["Complete", "Failed"])
async def test_deletes_the_job_once_its_ttl_expires(h: Harness, ctype: str) -> None:
    h.api.put(JOBS, finished_job(ctype=ctype))
    h.settle()
    assert KEY in h.queued()
    await h.ctrl.sync(KEY)
    assert deletes(h) == []
    assert h.due_in(KEY) == pytest.approx(90.0)
    h.clock.advance(90)
    await h.sync(KEY)
    assert deletes(h) == [("delete", "jobs", "pi", {"propagationPolicy": "Foreground",
                                                    "preconditions": {"uid": "uid-pi"}})]
    assert ("get", "jobs", "pi") in h.api.calls


async def test_a_longer_ttl_in_the_api_wins_over_the_cache(h: Harness) -> None:
    h.api.put(JOBS, finished_job(ttl=0))
    h.settle()
    h.api.objects[("jobs", "default", "pi")]["spec"]["ttlSecondsAfterFinished"] = 1000
    await h.ctrl.sync(KEY)
    assert deletes(h) == []
    assert h.due_in(KEY) == pytest.approx(990.0)


async def test_jobs_without_ttl_or_unfinished_are_kept(h: Harness) -> None:
    h.api.put(JOBS, finished_job(ttl=None))
    await h.sync(KEY)
    running = finished_job(ttl=0)
    running["status"] = {}
    assert time_left(running, 0.0) is None
    assert deletes(h) == [] and h.due_in(KEY) is None
