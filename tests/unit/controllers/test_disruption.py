"""The disruption controller's arithmetic and the eviction API's budget check, as kube
computes them (pkg/controller/disruption, pkg/registry/core/pod/storage/eviction.go)."""

from __future__ import annotations

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.controllers.disruption import (
    SyncError,
    allowed_condition,
    count_healthy,
    disrupted_map,
    expected_and_desired,
    scaled,
)
from pocketkube.registry.eviction import can_ignore_pdb, check_and_decrement


def pod(name: str, ready: bool = True, owner: str | None = "rs-1", deleting: bool = False,
        phase: str = "Running") -> dict:
    meta: dict = {"name": name, "namespace": "ns", "labels": {"app": "a"}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(**spec: object) -> dict:
    return {"metadata": {"name": "b", "namespace": "ns", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, **spec}}


def scale_of(replicas: dict[str, int]):
    return lambda ns, ref: (ref["uid"], replicas[ref["uid"]]) if ref["uid"] in replicas else None


@pytest.mark.parametrize(("value", "total", "want"), [(2, 10, 2), ("50%", 5, 3), ("10%", 1, 1),
                                                      ("0%", 4, 0)])
def test_scaled_rounds_up(value: object, total: int, want: int) -> None:
    assert scaled(value, total) == want


def test_min_available_integer_counts_the_pods() -> None:
    pods = [pod("p1"), pod("p2"), pod("p3", owner=None)]
    assert expected_and_desired(pdb(minAvailable=2), pods, scale_of({})) == (3, 2)


def test_max_unavailable_uses_controller_scale() -> None:
    pods = [pod("p1"), pod("p2", owner="rs-2")]
    assert expected_and_desired(pdb(maxUnavailable="50%"), pods,
                                scale_of({"rs-1": 3, "rs-2": 1})) == (4, 2)
    assert expected_and_desired(pdb(minAvailable="50%"), pods,
                                scale_of({"rs-1": 3, "rs-2": 1})) == (4, 2)


def test_pod_without_controller_fails_percentage_budgets() -> None:
    with pytest.raises(SyncError, match='found no controller ref for pod "p1"'):
        expected_and_desired(pdb(maxUnavailable=1), [pod("p1", owner=None)], scale_of({}))


def test_healthy_excludes_unready_deleting_and_disrupted() -> None:
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), pod("d")]
    assert count_healthy(pods, {"d": "2026-01-01T00:00:00Z"}) == 1


def test_disrupted_entries_expire_after_two_minutes() -> None:
    pods = [pod("a"), pod("b"), pod("c", deleting=True)]
    budget = {"status": {"disruptedPods": {"a": "1970-01-01T00:01:40Z",  # t=100
                                           "b": "1970-01-01T00:00:10Z",  # t=10: expired
                                           "c": "1970-01-01T00:01:40Z",  # deleting: done
                                           "gone": "1970-01-01T00:01:40Z"}}}
    keep, recheck = disrupted_map(budget, pods, now=150.0)
    assert keep == {"a": "1970-01-01T00:01:40Z"}
    assert recheck == 220.0


def test_condition_transitions() -> None:
    conds = allowed_condition(1, [], 0.0)
    assert (conds[0]["status"], conds[0]["reason"]) == ("True", "SufficientPods")
    assert allowed_condition(2, conds, 50.0) is conds  # unchanged: not rewritten
    conds = allowed_condition(0, conds, 60.0)
    assert (conds[0]["status"], conds[0]["reason"]) == ("False", "InsufficientPods")
    failed = allowed_condition(0, conds, 70.0, "SyncFailed", "boom")
    assert (failed[0]["reason"], failed[0]["message"]) == ("SyncFailed", "boom")


def budget_status(**status: object) -> dict:
    b = pdb(minAvailable=1)
    b["status"] = {"observedGeneration": 1, **status}
    return b


def test_eviction_takes_one_disruption() -> None:
    out = check_and_decrement(budget_status(disruptionsAllowed=1, desiredHealthy=1,
                                            currentHealthy=2), "p1", dry_run=False)
    assert out["status"]["disruptionsAllowed"] == 0
    assert "p1" in out["status"]["disruptedPods"]
    assert out["status"]["conditions"][0]["reason"] == "InsufficientPods"
    dry = check_and_decrement(budget_status(disruptionsAllowed=2), "p1", dry_run=True)
    assert dry["status"]["disruptionsAllowed"] == 1 and "disruptedPods" not in dry["status"]


def test_eviction_refusals() -> None:
    with pytest.raises(StatusError) as e:
        check_and_decrement(budget_status(disruptionsAllowed=0, desiredHealthy=2,
                                          currentHealthy=2), "p1", dry_run=False)
    assert e.value.code == 429 and "Retry-After" not in e.value.headers
    assert e.value.details == {"causes": [{"reason": "DisruptionBudget", "message":
                                           "The disruption budget b needs 2 healthy pods and "
                                           "has 2 currently"}]}
    stale = budget_status(disruptionsAllowed=1)
    stale["metadata"]["generation"] = 2
    with pytest.raises(StatusError) as e:
        check_and_decrement(stale, "p1", dry_run=False)
    assert e.value.code == 429 and e.value.details["retryAfterSeconds"] == 10
    assert "still being processed" in e.value.details["causes"][0]["message"]


def test_pods_that_ignore_budgets() -> None:
    assert can_ignore_pdb(pod("a", phase="Pending"))
    assert can_ignore_pdb(pod("a", phase="Succeeded"))
    assert can_ignore_pdb(pod("a", deleting=True))
    assert not can_ignore_pdb(pod("a"))
