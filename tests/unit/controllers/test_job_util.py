"""Pure rules of the Job controller: completed-index intervals, generated pod names, pod
failure policy matching, the pod-failure backoff record and which active pods go first."""

from __future__ import annotations

import pytest

from pocketkube.controllers import job_status as js
from pocketkube.controllers import job_util as u


def pod(name: str, phase: str = "Running", index: int | None = None, ready: bool = False,
        node: str = "n1", created: str = "2024-05-01T10:00:00Z", **status: object) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                  "creationTimestamp": created}
    if index is not None:
        meta["annotations"] = {u.COMPLETION_INDEX: str(index)}
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conds, **status}}


@pytest.mark.parametrize(("text", "n", "indexes"), [
    ("", 5, set()), ("1,3-5,7", 10, {1, 3, 4, 5, 7}), ("0-9", 4, {0, 1, 2, 3}),
])
def test_parse_indexes(text: str, n: int, indexes: set[int]) -> None:
    assert u.parse_indexes(text, n) == indexes


def test_format_indexes() -> None:
    assert u.format_indexes([7, 1, 3, 4, 5, 0]) == "0-1,3-5,7"
    assert u.format_indexes([]) == ""


def test_pod_generate_name() -> None:
    assert u.pod_generate_name("pi", None) == "pi-"
    assert u.pod_generate_name("pi", 3) == "pi-3-"
    long = "j" * 60
    assert u.pod_generate_name(long, 12) == "j" * 54 + "-12-"


def test_failure_policy_on_pod_condition_and_exit_code_operators() -> None:
    policy = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "NotIn",
                                              "values": [1, 2]}},
        {"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue", "status": "True"}]},
    ]}
    term = {"state": {"terminated": {"exitCode": 3}}}
    p = pod("a", "Failed", containerStatuses=[{"name": "main", **term}])
    msg, counts, action = u.match_failure_policy(policy, p)
    assert (counts, action) == (True, "FailJob")
    assert msg == "Container main for pod ns/a failed with exit code 3 matching FailJob rule " \
        "at index 1"
    p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 2
    assert u.match_failure_policy(policy, p) == (None, True, None)
    p["status"]["conditions"].append({"type": "ConfigIssue", "status": "True"})
    assert u.match_failure_policy(policy, p)[0] == \
        "Pod ns/a has condition ConfigIssue matching FailJob rule at index 2"
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True"})
    assert u.match_failure_policy(policy, p) == (None, False, "Ignore")


def finished(name: str, phase: str, at: str) -> dict:
    state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": at}}
    return pod(name, phase, containerStatuses=[{"name": "c", "state": state}])


def test_backoff_record() -> None:
    t0 = u.parse_time("2024-05-01T10:00:00Z") or 0.0
    rec = u.BackoffRecord().updated([], [finished("a", "Failed", "2024-05-01T10:00:00Z")])
    assert rec.remaining(t0 + 4) == pytest.approx(6.0)
    rec = rec.updated([], [finished("b", "Failed", "2024-05-01T10:00:10Z")])
    assert rec.failures_after_success == 2
    assert rec.remaining(t0 + 10) == pytest.approx(20.0)
    # A success resets the count to the failures after it.
    rec = rec.updated([finished("c", "Succeeded", "2024-05-01T10:00:20Z")],
                      [finished("d", "Failed", "2024-05-01T10:00:30Z")])
    assert (rec.failures_after_success, rec.remaining(t0 + 30)) == (1, pytest.approx(10.0))
    assert u.BackoffRecord(12, t0).remaining(t0) == 600.0  # capped at ten minutes


def test_deleted_pods_count_as_failed_unless_only_failed_pods_are_replaced() -> None:
    p = pod("a", "Running")
    p["metadata"]["deletionTimestamp"] = "2024-05-01T10:00:00Z"
    job = {"spec": {"podReplacementPolicy": "TerminatingOrFailed"}}
    assert u.is_failed(p, job) and u.is_terminating(p) and not u.is_active(p)
    assert not u.is_failed(p, {"spec": {"podReplacementPolicy": "Failed"}})


def test_pods_for_removal_prefers_unready_and_duplicates() -> None:
    ready, unready = pod("r", ready=True), pod("u")
    pending = pod("p", "Pending", node="")
    assert js.pods_for_removal({"spec": {}}, [ready, unready, pending], 2) == [pending, unready]
    job = {"spec": {"completionMode": "Indexed", "completions": 2}}
    a, dup, out = pod("a", index=0, ready=True), pod("dup", index=0), pod("out", index=5)
    assert {p["metadata"]["name"] for p in js.pods_for_removal(job, [a, dup, out], 0)} == \
        {"dup", "out"}


def test_pending_indexes_skip_succeeded_and_running() -> None:
    job = {"spec": {"completionMode": "Indexed", "completions": 6}}
    pods = [pod("a", index=1), pod("b", "Succeeded", index=4)]
    assert js.pending_indexes(job, pods, {0, 2}, 3) == [3, 4, 5]
