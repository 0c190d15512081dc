"""The CronJob controller's sync on a fake clock: jobs at schedule times with their names,
annotation and owner, requeueing for the next time, concurrency policies, missed schedules and
startingDeadlineSeconds, time zones, finished and missing jobs, and history cleanup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pocketkube.client.rest import resource
from pocketkube.controllers.cronjob import CronJobController
from tests.unit.controllers.jobfake import Harness

CRONJOBS = resource("batch", "cronjobs")
JOBS = resource("batch", "jobs")
NS = "default"
KEY = "default/c"


def minutes(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) // 60


def make_cronjob(schedule: str = "* * * * *", created: str = "2024-05-01T10:00:00Z",
                 **spec: Any) -> dict:
    body = {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "report"}},
                            "spec": {"template": {"spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "r", "image": "busybox"}]}}}}}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "c", "namespace": NS, "uid": "uid-c",
                         "creationTimestamp": created},
            "spec": body, "status": {}}


@pytest.fixture
def h() -> Harness:
    return Harness(CronJobController)  # wall clock starts at 2024-05-01T10:00:30Z


def jobs(h: Harness) -> list[dict]:
    return h.api.of("jobs")


def cronjob(h: Harness) -> dict:
    return h.api.objects[("cronjobs", NS, "c")]


def finish(h: Harness, job: dict, ctype: str, at: str, started: str | None = None) -> None:
    job = dict(job)
    job["status"] = {"startTime": started or at,
                     "conditions": [{"type": ctype, "status": "True", "lastTransitionTime": at}]}
    if ctype == "Complete":
        job["status"]["completionTime"] = at
    h.api.put(JOBS, job)


async def test_creates_the_job_at_the_schedule_time_and_requeues(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob())
    await h.sync(KEY)
    assert jobs(h) == []
    assert h.due_in(KEY) == pytest.approx(30.1)
    h.clock.advance(30.1)
    await h.sync(KEY)
    (job,) = jobs(h)
    name = f"c-{minutes(2024, 5, 1, 10, 1)}"
    meta = job["metadata"]
    assert meta["name"] == name
    assert meta["labels"] == {"app": "report"}
    assert meta["annotations"] == {
        "batch.kubernetes.io/cronjob-scheduled-timestamp": "2024-05-01T10:01:00Z"}
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob",
                                        "name": "c", "uid": "uid-c", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    status = cronjob(h)["status"]
    assert status["lastScheduleTime"] == "2024-05-01T10:01:00Z"
    assert status["active"] == [{"kind": "Job", "namespace": NS, "name": name,
                                 "uid": meta["uid"], "apiVersion": "batch/v1",
                                 "resourceVersion": meta["resourceVersion"]}]
    assert ("c", "Normal", "SuccessfulCreate", f"Created job {name}") in h.events()
    assert h.due_in(KEY) == pytest.approx(60.0)
    await h.sync(KEY)  # the same schedule time is not run twice
    assert len(jobs(h)) == 1


async def test_forbid_skips_while_a_job_runs(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(concurrencyPolicy="Forbid"))
    h.clock.advance(31)
    await h.sync(KEY)
    h.clock.advance(60)
    await h.sync(KEY)
    assert len(jobs(h)) == 1
    assert ("c", "Normal", "JobAlreadyActive", "Not starting job because prior execution is "
            "running and concurrency policy is Forbid") in h.events()
    assert h.due_in(KEY) is not None


async def test_replace_deletes_the_running_job(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(concurrencyPolicy="Replace"))
    h.clock.advance(31)
    await h.sync(KEY)
    (first,) = jobs(h)
    h.clock.advance(60)
    await h.sync(KEY)
    (second,) = jobs(h)
    assert second["metadata"]["name"] == f"c-{minutes(2024, 5, 1, 10, 2)}"
    assert ("delete", "jobs", first["metadata"]["name"], {"propagationPolicy": "Background"}) \
        in h.api.calls
    assert ("c", "Normal", "SuccessfulDelete", f"Deleted job {first['metadata']['name']}") \
        in h.events()
    assert [r["name"] for r in cronjob(h)["status"]["active"]] == [second["metadata"]["name"]]


async def test_allow_runs_jobs_side_by_side(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob())
    for _ in range(2):
        h.clock.advance(60)
        await h.sync(KEY)
    assert len(jobs(h)) == 2 and len(cronjob(h)["status"]["active"]) == 2


async def test_finished_job_leaves_active_then_sets_last_successful_time(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(schedule="0 * * * *"))
    h.clock.advance(3600)
    await h.sync(KEY)
    (job,) = jobs(h)
    finish(h, job, "Complete", "2024-05-01T11:00:20Z")
    await h.sync(KEY)
    name = job["metadata"]["name"]
    assert ("c", "Normal", "SawCompletedJob", f"Saw completed job: {name}, status: Complete") \
        in h.events()
    assert "active" not in cronjob(h)["status"]
    await h.sync(KEY)
    assert cronjob(h)["status"]["lastSuccessfulTime"] == "2024-05-01T11:00:20Z"


async def test_history_limits_delete_the_oldest_finished_jobs(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(schedule="0 0 1 1 *", successfulJobsHistoryLimit=1,
                                     failedJobsHistoryLimit=0))
    owner = make_cronjob()["metadata"]
    for i, (ctype, name) in enumerate([("Complete", "c-1"), ("Complete", "c-2"),
                                       ("Complete", "c-3"), ("Failed", "c-4")]):
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}",
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                                 "name": "c", "uid": owner["uid"],
                                                 "controller": True}]}}
        finish(h, job, ctype, f"2024-05-01T0{i}:10:00Z", started=f"2024-05-01T0{i}:00:00Z")
    await h.sync(KEY)
    assert [j["metadata"]["name"] for j in jobs(h)] == ["c-3"]
    deleted = [e[3] for e in h.events() if e[2] == "SuccessfulDelete"]
    assert sorted(deleted) == ["Deleted job c-1", "Deleted job c-2", "Deleted job c-4"]


async def test_suspended_cronjob_runs_nothing(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(suspend=True))
    h.clock.advance(120)
    await h.sync(KEY)
    assert jobs(h) == [] and h.due_in(KEY) is None


async def test_time_zone(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(schedule="30 6 * * *", timeZone="America/New_York"))
    await h.sync(KEY)
    assert h.due_in(KEY) == pytest.approx(29 * 60 + 30.1)  # 06:30 EDT is 10:30Z
    h.clock.advance(29 * 60 + 31)
    await h.sync(KEY)
    (job,) = jobs(h)
    assert job["metadata"]["name"] == f"c-{minutes(2024, 5, 1, 10, 30)}"
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] \
        == "2024-05-01T06:30:00-04:00"


async def test_unknown_time_zone(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(timeZone="Mars/Olympus"))
    h.clock.advance(60)
    await h.sync(KEY)
    assert jobs(h) == []
    assert ("c", "Warning", "UnknownTimeZone",
            'invalid timeZone: "Mars/Olympus": unknown time zone Mars/Olympus') in h.events()


async def test_too_many_missed_schedules_warns_and_runs_the_latest(h: Harness) -> None:
    h.api.put(CRONJOBS, make_cronjob(created="2024-05-01T07:00:00Z"))
    await h.sync(KEY)
    (job,) = jobs(h)
    assert job["metadata"]["name"] == f"c-{minutes(2024, 5, 1, 10, 0)}"
    assert ("c", "Warning", "TooManyMissedTimes", "too many missed start times. Set or decrease "
            ".spec.startingDeadlineSeconds or check clock skew") in h.events()


@pytest.mark.parametrize(("deadline", "runs"), [(20, False), (60, True)])
async def test_starting_deadline(h: Harness, deadline: int, runs: bool) -> None:
    # 10:00 was missed by 30 seconds: run it only if the deadline allows that much.
    h.api.put(CRONJOBS, make_cronjob(created="2024-05-01T09:50:00Z",
                                     startingDeadlineSeconds=deadline))
    await h.sync(KEY)
    assert len(jobs(h)) == (1 if runs else 0)
    assert h.due_in(KEY) == pytest.approx(30.1)


async def test_missing_and_unexpected_jobs(h: Harness) -> None:
    cj = make_cronjob(schedule="0 0 1 1 *")
    cj["status"] = {"active": [{"kind": "Job", "namespace": NS, "name": "c-gone",
                                "uid": "uid-gone", "apiVersion": "batch/v1"}]}
    h.api.put(CRONJOBS, cj)
    h.api.put(JOBS, {"apiVersion": "batch/v1", "kind": "Job",
                     "metadata": {"name": "manual", "namespace": NS, "uid": "uid-manual",
                                  "ownerReferences": [{"apiVersion": "batch/v1",
                                                       "kind": "CronJob", "name": "c",
                                                       "uid": "uid-c", "controller": True}]},
                     "spec": {}, "status": {}})
    await h.sync(KEY)
    assert ("c", "Normal", "MissingJob", "Active job went missing: c-gone") in h.events()
    assert ("c", "Warning", "UnexpectedJob",
            "Saw a job that the controller did not create or forgot: manual") in h.events()
    assert "active" not in cronjob(h)["status"]


async def test_schedule_change_brings_the_next_sync_forward(h: Harness) -> None:
    old = make_cronjob(schedule="0 0 * * *")
    h.api.put(CRONJOBS, old)
    await h.sync(KEY)
    assert h.due_in(KEY) == pytest.approx(14 * 3600 - 30 + 0.1)
    new = make_cronjob(schedule="*/5 * * * *")
    new["metadata"]["resourceVersion"] = "99"
    h.ctrl._cronjob_updated(old, new)
    assert h.due_in(KEY) == pytest.approx(4 * 60 + 30.1)
