"""Jobs and CronJobs in a real `pocketkube server` with two simulated nodes, driven by the real
kubectl: a job runs to completion (`kubectl wait --for=condition=complete`, COMPLETIONS 1/1),
completions with parallelism, a failing job stopping at its backoff limit, `kubectl create
job`, and `kubectl create job --from=cronjob/…`. Schedule timing is covered by the unit tests
on a fake clock (an e2e test would wait for the wall-clock minute).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("jobs"), extra_args=["--simulated-nodes", "2"])
    c.start()
    try:
        yield c
    finally:
        c.close()




def job_manifest(name: str, run_seconds: int = 1, exit_code: int = 0, **spec: Any) -> dict:
    annotations = {"pocketkube.io/simulate-run-seconds": str(run_seconds)}
    if exit_code:
        annotations["pocketkube.io/simulate-exit-code"] = str(exit_code)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"annotations": annotations},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": name, "image": "perl:5.34",
                                                           "command": ["perl", "-e", "1"]}]}},
                     **spec}}


def events(k: Kubectl, name: str) -> list[tuple[str, str, str]]:
    items = json.loads(k("get", "events", "--field-selector", f"involvedObject.name={name}",
                         "-o", "json").stdout)["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


def job_pods(k: Kubectl, job: str) -> list[dict]:
    return json.loads(k("get", "pods", "-l", f"batch.kubernetes.io/job-name={job}", "-o",
                        "json").stdout)["items"]


def test_job_runs_to_completion(k: Kubectl) -> None:
    k.create(job_manifest("pi"))
    k("wait", "--for=condition=complete", "job/pi", "--timeout=60s")
    row = k("get", "jobs").stdout.splitlines()[1].split()
    assert row[:3] == ["pi", "Complete", "1/1"]
    job = k.json("job", "pi")
    status = job["status"]
    assert status["succeeded"] == 1 and status["ready"] == 0 and status["terminating"] == 0
    assert status["uncountedTerminatedPods"] == {}
    assert status["startTime"] <= status["completionTime"]
    types = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]
    assert types == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                     ("Complete", "True", "CompletionsReached")]
    (pod,) = job_pods(k, "pi")
    assert pod["metadata"]["name"].startswith("pi-")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"].get("finalizers", []) == []
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("Job", "pi", job["metadata"]["uid"], True)
    evs = eventually(lambda: (lambda e: len(e) >= 2 and e)(events(k, "pi")))
    assert ("Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}") in evs
    assert ("Normal", "Completed", "Job completed") in evs
    described = k("describe", "job", "pi").stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed" in described


def test_completions_with_parallelism(k: Kubectl) -> None:
    k.create(job_manifest("batch", completions=3, parallelism=2))
    # Never more than two pods run at once.
    running = eventually(lambda: (lambda ps: ps and ps)(
        [p for p in job_pods(k, "batch") if p["status"].get("phase") in ("Pending", "Running")]))
    assert len(running) <= 2
    k("wait", "--for=condition=complete", "job/batch", "--timeout=60s")
    row = k("get", "job", "batch").stdout.splitlines()[1].split()
    assert row[:3] == ["batch", "Complete", "3/3"]
    pods = job_pods(k, "batch")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)


def test_failing_job_stops_at_backoff_limit(k: Kubectl) -> None:
    k.create(job_manifest("boom", exit_code=1, backoffLimit=1))
    k("wait", "--for=condition=failed", "job/boom", "--timeout=60s")
    job = k.json("job", "boom")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == \
        ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert job["status"]["failed"] == 2 and "succeeded" not in job["status"]
    row = k("get", "job", "boom").stdout.splitlines()[1].split()
    assert row[:3] == ["boom", "Failed", "0/1"]
    assert len(job_pods(k, "boom")) == 2
    evs = eventually(lambda: (lambda e: any(x[1] == "BackoffLimitExceeded" for x in e) and e)(
        events(k, "boom")))
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") \
        in evs


def test_finished_job_is_deleted_after_its_ttl(k: Kubectl) -> None:
    k.create(job_manifest("short", ttlSecondsAfterFinished=2))
    k("wait", "--for=delete", "job/short", "--timeout=60s")
    eventually(lambda: not job_pods(k, "short"))


def test_kubectl_create_job(k: Kubectl) -> None:
    out = k("create", "job", "x", "--image=busybox").stdout
    assert out.strip() == "job.batch/x created"
    pods = eventually(lambda: (lambda ps: ps and all(
        p["status"].get("phase") == "Running" for p in ps) and ps)(job_pods(k, "x")))
    assert len(pods) == 1
    assert pods[0]["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    job = eventually(lambda: (lambda j: j["status"].get("ready") == 1 and j)(k.json("job", "x")))
    assert job["status"]["active"] == 1
    assert k("get", "job", "x").stdout.splitlines()[1].split()[:3] == ["x", "Running", "0/1"]
    # Deleting the job releases its pod's tracking finalizer.
    k("delete", "job", "x", "--cascade=orphan")
    eventually(lambda: job_pods(k, "x")[0]["metadata"].get("finalizers") in (None, []))


def test_create_job_from_cronjob(k: Kubectl) -> None:
    # Suspended, so the schedule itself never fires during the test.
    k.create({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
              "spec": {"schedule": "* * * * *", "suspend": True,
                       "jobTemplate": {"spec": job_manifest("c")["spec"]}}})
    k("create", "job", "--from=cronjob/c", "manual")
    k("wait", "--for=condition=complete", "job/manual", "--timeout=60s")
    job = k.json("job", "manual")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    owner = job["metadata"]["ownerReferences"][0]
    cj = k.json("cronjob", "c")
    assert (owner["kind"], owner["name"], owner["uid"]) == ("CronJob", "c", cj["metadata"]["uid"])
    # The CronJob controller did not create it, so it says so and keeps it out of status.active.
    evs = eventually(lambda: (lambda e: e)(
        [x for x in events(k, "c") if x[1] == "UnexpectedJob"]))
    assert evs[0] == ("Warning", "UnexpectedJob",
                      "Saw a job that the controller did not create or forgot: manual")
    assert not k.json("cronjob", "c").get("status", {}).get("active")
    row = k("get", "cronjob", "c").stdout.splitlines()[1].split()
    assert row[:3] == ["c", "*", "*"] and "True" in row
