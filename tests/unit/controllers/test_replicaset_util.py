"""Pure parts of the ReplicaSet controller: which pods go first on scale-down, availability with
minReadySeconds, the status a set reports, and status patches that leave out Go's zero values."""

from __future__ import annotations

from typing import Any

from pocketkube.controllers.replicaset_util import (
    calculate_status,
    format_time,
    is_pod_available,
    pods_to_delete,
    status_patch,
)

NOW = 1_700_000_000.0


def pod(name: str, node: str = "n1", phase: str = "Running", ready: bool = True,
        ready_since: float = NOW - 100, created: float = NOW - 200, restarts: int = 0,
        cost: int | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"u-{name}",
                            "creationTimestamp": format_time(created),
                            "labels": labels or {"app": "web"}}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastTransitionTime": format_time(ready_since)}],
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


def first(pods: list[dict[str, Any]], related: list[dict[str, Any]] | None = None) -> str:
    return pods_to_delete(pods, related or [], 1, NOW)[0]["metadata"]["name"]


def test_unassigned_before_assigned() -> None:
    assert first([pod("a"), pod("b", node="", phase="Pending", ready=False)]) == "b"


def test_pending_before_running_and_unready_before_ready() -> None:
    assert first([pod("run"), pod("pend", phase="Pending", ready=False)]) == "pend"
    assert first([pod("ready"), pod("unready", ready=False)]) == "unready"


def test_lower_deletion_cost_first() -> None:
    assert first([pod("cheap", cost=-5), pod("dear", cost=10)]) == "cheap"
    assert first([pod("dear", cost=10), pod("default")]) == "default"


def test_doubled_up_node_first() -> None:
    pods = [pod("alone", node="n1"), pod("crowded", node="n2")]
    related = [*pods, pod("other", node="n2")]
    assert first(pods, related) == "crowded"


def test_ready_more_recently_first_on_a_log_scale() -> None:
    assert first([pod("old", ready_since=NOW - 10_000), pod("new", ready_since=NOW - 10)]) \
        == "new"
    # Ready times within the same power-of-two bucket are decided by uid, not restarts.
    a = pod("a", ready_since=NOW - 100, restarts=1)
    b = pod("b", ready_since=NOW - 101, restarts=5)
    assert first([b, a]) == "a"


def test_more_restarts_first_then_newer_first() -> None:
    assert first([pod("calm", restarts=0), pod("crashy", restarts=3)]) == "crashy"
    assert first([pod("older", created=NOW - 100_000), pod("newer", created=NOW - 10)]) \
        == "newer"


def test_pods_to_delete_takes_all_when_diff_covers_them() -> None:
    pods = [pod("a"), pod("b")]
    assert pods_to_delete(pods, [], 5, NOW) == pods


def test_availability_waits_min_ready_seconds() -> None:
    p = pod("a", ready_since=NOW - 5)
    assert is_pod_available(p, 0, NOW)
    assert not is_pod_available(p, 10, NOW)
    assert is_pod_available(p, 4, NOW)
    assert not is_pod_available(pod("b", ready=False), 0, NOW)


def rs(replicas: int = 3, min_ready: int = 0, status: dict[str, Any] | None = None) -> dict:
    return {"metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}},
            "status": status or {}}


def test_status_counts_labels_readiness_and_availability() -> None:
    pods = [pod("a", labels={"app": "web", "tier": "fe"}, ready_since=NOW - 100),
            pod("b", labels={"app": "web"}, ready_since=NOW - 1),
            pod("c", ready=False, labels={"app": "web", "tier": "fe"})]
    st = calculate_status(rs(min_ready=10), pods, None, NOW)
    assert (st["replicas"], st["fullyLabeledReplicas"], st["readyReplicas"],
            st["availableReplicas"]) == (3, 2, 2, 1)
    assert "conditions" not in st


def test_replica_failure_condition_set_and_cleared() -> None:
    st = calculate_status(rs(replicas=3), [pod("a")], ValueError("quota exceeded"), NOW)
    cond = st["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == \
        ("ReplicaFailure", "True", "FailedCreate", "quota exceeded")
    cleared = calculate_status(rs(replicas=1, status=st), [pod("a")], None, NOW)
    assert "conditions" not in cleared
    deleting = calculate_status(rs(replicas=0), [pod("a")], ValueError("nope"), NOW)
    assert deleting["conditions"][0]["reason"] == "FailedDelete"


def test_status_patch_omits_zero_values_and_skips_no_change() -> None:
    old = {"replicas": 3, "readyReplicas": 3, "observedGeneration": 1}
    assert status_patch(old, dict(old, availableReplicas=0), always=("replicas",)) is None
    p = status_patch(old, {"replicas": 0, "readyReplicas": 0, "observedGeneration": 2},
                     always=("replicas",))
    assert p == {"replicas": 0, "readyReplicas": None, "observedGeneration": 2}
