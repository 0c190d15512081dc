"""The Job controller's sync against an in-memory API on a fake clock: pod creation with
expectations, completions and parallelism, two-phase counting with the tracking finalizer,
backoff between failed pods and backoffLimit, activeDeadlineSeconds, pod failure policy,
suspend/resume, indexed jobs, and orphan pods losing their finalizer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import resource
from pocketkube.controllers.job import JobController
from tests.unit.controllers.jobfake import Harness

JOBS = resource("batch", "jobs")
PODS = resource("", "pods")
FIN = "batch.kubernetes.io/job-tracking"
NS = "default"


def make_job(name: str = "pi", **spec: Any) -> dict:
    """A Job as the API server stores it: defaults, generated selector and template labels."""
    uid = f"uid-{name}"
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    body = {"completions": 1, "parallelism": 1, "backoffLimit": 6,
            "completionMode": "NonIndexed", "suspend": False,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "template": {"metadata": {"labels": labels},
                         "spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "main", "image": "busybox"}]}}}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS, "uid": uid, "labels": labels,
                         "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": body, "status": {}}


@pytest.fixture
def h() -> Harness:
    return Harness(JobController)


def add_job(h: Harness, **spec: Any) -> str:
    job = make_job(**spec)
    h.api.put(JOBS, job)
    return f"{NS}/{job['metadata']['name']}"


def job_of(h: Harness, name: str = "pi") -> dict:
    return h.api.objects[("jobs", NS, name)]


def pods(h: Harness) -> list[dict]:
    return h.api.of("pods")


def set_pod(h: Harness, pod: dict, phase: str, exit_code: int | None = None,
            ready: bool = False, restarts: int = 0) -> None:
    """Play the kubelet: move `pod` to `phase`."""
    pod = copy.deepcopy(h.api.objects[("pods", NS, pod["metadata"]["name"])])
    state: dict = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": h.api.now()}}
    pod["status"] = {"phase": phase,
                     "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                     "lastTransitionTime": h.api.now()}],
                     "containerStatuses": [{"name": "main", "state": state,
                                            "restartCount": restarts}]}
    h.api.put(PODS, pod)


def conds(h: Harness, name: str = "pi") -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", ""))
            for c in job_of(h, name)["status"].get("conditions") or []]


async def test_creates_pod_from_template_with_finalizer_and_owner(h: Harness) -> None:
    key = add_job(h)
    await h.sync(key)
    (pod,) = pods(h)
    meta = pod["metadata"]
    assert meta["name"].startswith("pi-")
    assert meta["finalizers"] == [FIN]
    assert meta["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert meta["labels"]["controller-uid"] == "uid-pi"
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                        "uid": "uid-pi", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert pod["spec"]["restartPolicy"] == "Never"
    status = job_of(h)["status"]
    assert status["active"] == 1 and status["ready"] == 0 and status["terminating"] == 0
    assert status["startTime"] == "2024-05-01T10:00:30Z"
    assert status["uncountedTerminatedPods"] == {}
    assert ("pi", "Normal", "SuccessfulCreate", f"Created pod: {meta['name']}") in h.events()


async def test_expectations_stop_double_creation_while_cache_lags(h: Harness) -> None:
    key = add_job(h, parallelism=2, completions=4)
    await h.sync(key)
    assert len(pods(h)) == 2
    # The informers have seen neither the pods nor the job's new status: no pod is created,
    # and the status write conflicts so the sync is retried from a fresher cache.
    with pytest.raises(Exception, match="modified"):
        await h.ctrl.sync(key)
    assert len(pods(h)) == 2
    await h.sync(key)  # now it has: nothing more is wanted
    assert len(pods(h)) == 2


async def test_completions_and_parallelism_then_complete(h: Harness) -> None:
    key = add_job(h, completions=3, parallelism=2)
    await h.sync(key)
    first, second = pods(h)
    set_pod(h, first, "Running", ready=True)
    await h.sync(key)
    assert job_of(h)["status"]["ready"] == 1
    set_pod(h, first, "Succeeded", exit_code=0)
    await h.sync(key)
    status = job_of(h)["status"]
    assert status["succeeded"] == 1 and status["active"] == 2
    assert len(pods(h)) == 3
    assert h.api.objects[("pods", NS, first["metadata"]["name"])]["metadata"]["finalizers"] == []
    for p in pods(h):
        if p.get("status", {}).get("phase") != "Succeeded":
            set_pod(h, p, "Succeeded", exit_code=0)
    await h.sync(key)
    status = job_of(h)["status"]
    assert status["succeeded"] == 3 and "active" not in status
    assert conds(h) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                        ("Complete", "True", "CompletionsReached")]
    assert status["conditions"][1]["message"] == "Reached expected number of succeeded pods"
    assert status["completionTime"] == "2024-05-01T10:00:30Z"
    assert ("pi", "Normal", "Completed", "Job completed") in h.events()
    assert all(p["metadata"]["finalizers"] == [] for p in pods(h))


async def test_uncounted_pods_are_recorded_before_finalizers_go(h: Harness) -> None:
    key = add_job(h)
    await h.sync(key)
    (pod,) = pods(h)
    set_pod(h, pod, "Succeeded", exit_code=0)
    h.api.fail["patch"] = StatusError(500, "InternalError", "etcd is sad")
    with pytest.raises(Exception, match="etcd is sad"):
        await h.sync(key)
    status = job_of(h)["status"]
    assert status["uncountedTerminatedPods"] == {"succeeded": [pod["metadata"]["uid"]]}
    assert "succeeded" not in status
    await h.sync(key)  # the retry removes the finalizer and counts the pod once
    status = job_of(h)["status"]
    assert status["succeeded"] == 1 and status["uncountedTerminatedPods"] == {}
    assert ("Complete", "True", "CompletionsReached") in conds(h)


async def test_failed_pods_back_off_then_backoff_limit_exceeded(h: Harness) -> None:
    key = add_job(h, backoffLimit=1)
    await h.sync(key)
    (p1,) = pods(h)
    set_pod(h, p1, "Failed", exit_code=1)
    await h.sync(key)
    assert job_of(h)["status"]["failed"] == 1
    assert len(pods(h)) == 1  # the replacement waits for the 10s backoff
    assert h.due_in(key) == pytest.approx(10.0)
    h.clock.advance(10)
    await h.sync(key)
    assert len(pods(h)) == 2
    p2 = next(p for p in pods(h) if p["metadata"]["name"] != p1["metadata"]["name"])
    set_pod(h, p2, "Failed", exit_code=1)
    await h.sync(key)
    status = job_of(h)["status"]
    assert status["failed"] == 2
    assert conds(h) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                        ("Failed", "True", "BackoffLimitExceeded")]
    assert status["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in status
    assert ("pi", "Warning", "BackoffLimitExceeded",
            "Job has reached the specified backoff limit") in h.events()
    await h.sync(key)  # finished jobs are left alone
    assert len(pods(h)) == 2


async def test_backoff_doubles_per_failure(h: Harness) -> None:
    key = add_job(h, backoffLimit=6)
    await h.sync(key)
    for expected in (10.0, 20.0, 40.0):
        current = [p for p in pods(h) if p.get("status", {}).get("phase") != "Failed"]
        set_pod(h, current[0], "Failed", exit_code=1)
        await h.sync(key)
        assert h.due_in(key) == pytest.approx(expected)
        h.clock.advance(expected)
        await h.sync(key)


async def test_restarts_with_on_failure_count_against_backoff_limit(h: Harness) -> None:
    job = make_job(backoffLimit=2)
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    h.api.put(JOBS, job)
    await h.sync("default/pi")
    (pod,) = pods(h)
    set_pod(h, pod, "Running", restarts=2)
    await h.sync("default/pi")
    assert ("FailureTarget", "True", "BackoffLimitExceeded") in conds(h)
    assert h.api.objects[("pods", NS, pod["metadata"]["name"])]["metadata"].get(
        "deletionTimestamp")


async def test_active_deadline_deletes_pods_and_fails_once_they_are_gone(h: Harness) -> None:
    key = add_job(h, activeDeadlineSeconds=30, parallelism=2, completions=2)
    await h.sync(key)
    assert h.due_in(key) == pytest.approx(30.0)
    h.clock.advance(30)
    await h.sync(key)  # deletes the pods; Failed waits until they are gone
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(h))
    assert conds(h) == [("FailureTarget", "True", "DeadlineExceeded")]
    await h.sync(key)
    assert conds(h) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert job_of(h)["status"]["terminating"] == 2
    assert all(p["metadata"]["finalizers"] == [] for p in pods(h))
    for p in pods(h):  # the kubelet finishes deleting them
        h.api.remove("pods", NS, p["metadata"]["name"])
    await h.sync(key)
    assert conds(h)[-1] == ("Failed", "True", "DeadlineExceeded")
    assert job_of(h)["status"]["conditions"][-1]["message"] == \
        "Job was active longer than specified deadline"
    assert job_of(h)["status"]["failed"] == 2


def _policy(*rules: dict) -> dict:
    return {"rules": list(rules)}


async def test_pod_failure_policy_fail_job_on_exit_code(h: Harness) -> None:
    key = add_job(h, backoffLimit=6, podReplacementPolicy="Failed", podFailurePolicy=_policy(
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}))
    await h.sync(key)
    (pod,) = pods(h)
    set_pod(h, pod, "Failed", exit_code=42)
    await h.sync(key)
    name = pod["metadata"]["name"]
    msg = f"Container main for pod default/{name} failed with exit code 42 matching FailJob " \
          "rule at index 0"
    assert conds(h) == [("FailureTarget", "True", "PodFailurePolicy"),
                        ("Failed", "True", "PodFailurePolicy")]
    assert job_of(h)["status"]["conditions"][1]["message"] == msg
    assert ("pi", "Warning", "PodFailurePolicy", msg) in h.events()


async def test_pod_failure_policy_ignore_does_not_count(h: Harness) -> None:
    key = add_job(h, backoffLimit=0, podReplacementPolicy="Failed", podFailurePolicy=_policy(
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}}))
    await h.sync(key)
    (pod,) = pods(h)
    set_pod(h, pod, "Failed", exit_code=137)
    stored = h.api.objects[("pods", NS, pod["metadata"]["name"])]
    stored["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True"})
    await h.sync(key)
    status = job_of(h)["status"]
    assert "failed" not in status and conds(h) == []
    assert h.api.objects[("pods", NS, pod["metadata"]["name"])]["metadata"]["finalizers"] == []
    # A counted failure (Count rule) with backoffLimit 0 fails the job.
    h.clock.advance(10)
    await h.sync(key)
    new = next(p for p in pods(h) if p["metadata"]["name"] != pod["metadata"]["name"])
    set_pod(h, new, "Failed", exit_code=1)
    await h.sync(key)
    assert conds(h)[-1] == ("Failed", "True", "BackoffLimitExceeded")


async def test_suspend_then_resume(h: Harness) -> None:
    key = add_job(h, suspend=True)
    await h.sync(key)
    assert pods(h) == []
    status = job_of(h)["status"]
    assert "startTime" not in status
    assert conds(h) == [("Suspended", "True", "JobSuspended")]
    assert ("pi", "Normal", "Suspended", "Job suspended") in h.events()
    job_of(h)["spec"]["suspend"] = False
    h.clock.advance(5)
    await h.sync(key)
    assert len(pods(h)) == 1
    assert conds(h) == [("Suspended", "False", "JobResumed")]
    assert job_of(h)["status"]["startTime"] == "2024-05-01T10:00:35Z"
    assert ("pi", "Normal", "Resumed", "Job resumed") in h.events()
    job_of(h)["spec"]["suspend"] = True  # suspending again deletes the running pod
    await h.sync(key)
    (pod,) = pods(h)
    assert pod["metadata"].get("deletionTimestamp") and pod["metadata"]["finalizers"] == []
    assert conds(h)[0][:2] == ("Suspended", "True")


async def test_indexed_job(h: Harness) -> None:
    key = add_job(h, completionMode="Indexed", completions=3, parallelism=2)
    await h.sync(key)
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
                for p in pods(h)}
    assert sorted(by_index) == ["0", "1"]
    p1 = by_index["1"]
    assert p1["metadata"]["name"].startswith("pi-1-")
    assert p1["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
    assert p1["spec"]["hostname"] == "pi-1"
    assert p1["spec"]["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {
        "fieldRef": {"fieldPath":
                     "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    set_pod(h, p1, "Succeeded", exit_code=0)
    await h.sync(key)
    status = job_of(h)["status"]
    assert status["completedIndexes"] == "1" and status["succeeded"] == 1
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                     for p in pods(h))
    assert indexes == ["0", "1", "2"]
    for p in pods(h):
        if p.get("status", {}).get("phase") != "Succeeded":
            set_pod(h, p, "Succeeded", exit_code=0)
    await h.sync(key)
    assert job_of(h)["status"]["completedIndexes"] == "0-2"
    assert conds(h)[-1] == ("Complete", "True", "CompletionsReached")


async def test_deleted_job_releases_its_pods_finalizers(h: Harness) -> None:
    key = add_job(h)
    await h.sync(key)
    (pod,) = pods(h)
    h.api.remove("jobs", NS, "pi")
    h.settle()
    orphan_key = f"{h.ctrl.ORPHAN}default/{pod['metadata']['name']}"
    assert orphan_key in h.queued()
    await h.ctrl.sync(orphan_key)
    assert h.api.objects[("pods", NS, pod["metadata"]["name"])]["metadata"]["finalizers"] == []


async def test_status_conflict_is_raised_for_a_retry(h: Harness) -> None:
    key = add_job(h)
    h.settle()
    job_of(h)["metadata"]["resourceVersion"] = "999"  # someone else wrote the job
    with pytest.raises(Exception, match="modified"):
        await h.ctrl.sync(key)


async def test_jobs_managed_by_another_controller_are_left_alone(h: Harness) -> None:
    key = add_job(h, managedBy="example.com/queue-controller")
    await h.sync(key)
    assert pods(h) == [] and job_of(h)["status"] == {}
