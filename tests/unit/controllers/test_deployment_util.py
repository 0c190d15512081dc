"""Pure parts of the Deployment controller: the pod-template hash, surge/unavailable arithmetic,
how far the new ReplicaSet may grow, revision bookkeeping, proportional scaling and the
Progressing/Available conditions."""

from __future__ import annotations

from typing import Any

import pytest

from pocketkube.controllers import deployment_status as ds
from pocketkube.controllers import deployment_util as du
from pocketkube.controllers.replicaset_util import format_time

NOW = 1_700_000_000.0


def template(image: str = "nginx:1.25") -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}}


def deployment(replicas: int = 3, surge: Any = "25%", unavailable: Any = "25%",
               strategy: str = "RollingUpdate", **extra: Any) -> dict[str, Any]:
    strat: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "generation": 1, "annotations": extra.pop("ann", {})},
            "spec": {"replicas": replicas, "strategy": strat, "template": template(),
                     "progressDeadlineSeconds": 600, **extra},
            "status": extra.pop("status", {})}


def rs(name: str, replicas: int, revision: int | None = None, created: float = NOW,
       available: int = 0, ann: dict[str, str] | None = None) -> dict[str, Any]:
    a = dict(ann or {})
    if revision is not None:
        a[du.REVISION] = str(revision)
    return {"metadata": {"name": name, "uid": f"u-{name}", "annotations": a,
                         "creationTimestamp": format_time(created)},
            "spec": {"replicas": replicas, "template": template()},
            "status": {"replicas": replicas, "availableReplicas": available}}


# -- hash -------------------------------------------------------------------------------------------
def test_safe_encode_and_fnv() -> None:
    assert du.safe_encode("0123456789") == "456789bcdf"
    assert du.fnv32a(b"") == 0x811C9DC5
    assert du.fnv32a(b"a") == 0xE40C292C


def test_hash_is_stable_and_sensitive() -> None:
    h = du.compute_hash(template())
    assert h == du.compute_hash(template())
    assert 1 <= len(h) <= 10 and set(h) <= set("456789bcdf")
    assert du.compute_hash(template("nginx:1.26")) != h
    assert du.compute_hash(template(), 1) != h
    assert du.compute_hash(template(), 1) != du.compute_hash(template(), 2)
    # Key order and explicit nulls do not change the template.
    t = template()
    t["metadata"]["creationTimestamp"] = None
    t = {"spec": t["spec"], "metadata": t["metadata"]}
    assert du.compute_hash(t) == h


def test_equal_ignore_hash() -> None:
    with_hash = template()
    with_hash["metadata"]["labels"][du.HASH_LABEL] = "abc"
    assert du.equal_ignore_hash(with_hash, template())
    assert not du.equal_ignore_hash(with_hash, template("other"))


# -- fenceposts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("surge", "unavailable", "desired", "want"), [
    ("25%", "25%", 3, (1, 0)),
    ("25%", "25%", 10, (3, 2)),
    (0, 0, 3, (0, 1)),
    ("0%", "10%", 5, (0, 1)),
    (2, "50%", 5, (2, 2)),
])
def test_resolve_fenceposts(surge: Any, unavailable: Any, desired: int,
                            want: tuple[int, int]) -> None:
    assert du.resolve_fenceposts(surge, unavailable, desired) == want


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    assert du.max_unavailable(deployment(replicas=2, unavailable=5)) == 2
    assert du.max_unavailable(deployment(strategy="Recreate")) == 0
    assert du.max_surge(deployment(strategy="Recreate")) == 0
    assert du.max_unavailable(deployment(replicas=0)) == 0


def test_new_rs_new_replicas() -> None:
    d = deployment(replicas=3)  # surge 1
    new = rs("new", 0)
    assert du.new_rs_new_replicas(d, [rs("old", 3), new], new) == 1
    assert du.new_rs_new_replicas(d, [rs("old", 3), rs("new", 1)], rs("new", 1)) == 1
    assert du.new_rs_new_replicas(d, [rs("old", 1), rs("new", 1)], rs("new", 1)) == 3
    assert du.new_rs_new_replicas(deployment(strategy="Recreate"), [], new) == 3


# -- revisions --------------------------------------------------------------------------------------
def test_new_rs_annotations_copy_deployment_annotations_and_set_revision() -> None:
    d = deployment(ann={"kubernetes.io/change-cause": "kubectl apply --record=true",
                        du.LAST_APPLIED: "{}", du.REVISION: "7"})
    ann: dict[str, str] = {}
    assert du.set_new_rs_annotations(d, ann, "1", exists=False)
    assert ann == {"kubernetes.io/change-cause": "kubectl apply --record=true",
                   du.REVISION: "1", du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    assert not du.set_new_rs_annotations(d, ann, "1", exists=True)


def test_rollback_bumps_revision_and_keeps_history() -> None:
    d = deployment()
    ann = {du.REVISION: "1"}
    assert du.set_new_rs_annotations(d, ann, "3", exists=True)
    assert ann[du.REVISION] == "3" and ann[du.REVISION_HISTORY] == "1"
    du.set_new_rs_annotations(d, ann, "5", exists=True)
    assert ann[du.REVISION_HISTORY] == "1,3"
    # A revision never goes down.
    assert not du.set_new_rs_annotations(d, ann, "2", exists=True)
    assert ann[du.REVISION] == "5"


def test_find_new_and_old_and_ordering() -> None:
    d = deployment()
    other = rs("other", 1, 1, created=NOW - 10)
    other["spec"]["template"] = template("old")
    a = rs("a", 1, 2, created=NOW - 5)
    b = rs("b", 1, 3, created=NOW)
    assert du.find_new_rs(d, [b, other, a])["metadata"]["name"] == "a"
    assert [x["metadata"]["name"] for x in du.find_old_rss(d, [b, other, a])] == ["b", "other"]
    assert du.max_revision([a, b, other]) == 3
    assert [x["metadata"]["name"] for x in du.by_revision([b, other, a])] == ["other", "a", "b"]
    big_old, big_new = rs("x", 3, created=NOW - 9), rs("y", 3, created=NOW)
    assert [x["metadata"]["name"] for x in du.by_size_newer([big_old, big_new, other])] == \
        ["y", "x", "other"]
    assert [x["metadata"]["name"] for x in du.by_size_older([big_new, big_old, other])] == \
        ["x", "y", "other"]


def test_proportional_share() -> None:
    d = deployment(replicas=20, surge=0, unavailable=1)  # was 10 (max 11 before)
    old = rs("old", 6, ann={du.MAX_REPLICAS: "11"})
    assert du.rs_proportion(old, d, 10, 0) == round(6 * 20 / 11) - 6
    assert du.rs_proportion(old, d, 2, 0) == 2  # never more than allowed
    down = deployment(replicas=0)
    assert du.rs_proportion(old, down, -6, 0) == -6
    assert du.round_half_away(2.5) == 3 and du.round_half_away(-2.5) == -3


# -- conditions -------------------------------------------------------------------------------------
def test_available_condition_and_counts() -> None:
    d = deployment(replicas=4)  # maxUnavailable 1
    st = ds.calculate_status([rs("a", 4, available=3), rs("b", 1)], rs("b", 1), d, NOW)
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"],
            st["unavailableReplicas"]) == (5, 1, 3, 2)
    assert ds.get_condition(st, "Available")["reason"] == ds.MIN_AVAILABLE
    st = ds.calculate_status([rs("a", 4, available=2)], None, d, NOW)
    cond = ds.get_condition(st, "Available")
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("False", ds.MIN_UNAVAILABLE, "Deployment does not have minimum availability.")


def test_progressing_then_complete_then_timed_out() -> None:
    d = deployment(replicas=2)
    new = rs("web-1", 2, available=1)
    d["status"] = {"replicas": 2, "updatedReplicas": 1, "observedGeneration": 1}
    st = ds.rollout_status([new], new, d, NOW)
    cond = ds.get_condition(st, "Progressing")
    assert (cond["reason"], cond["message"]) == \
        (ds.RS_UPDATED, 'ReplicaSet "web-1" is progressing.')
    done = rs("web-1", 2, available=2)
    st = ds.rollout_status([done], done, d, NOW)
    assert ds.get_condition(st, "Progressing")["message"] == \
        'ReplicaSet "web-1" has successfully progressed.'
    stalled = deployment(replicas=2, status={
        "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1,
        "conditions": [ds.new_condition("Progressing", "True", ds.RS_UPDATED, "x", NOW - 700)]})
    new = rs("web-1", 2, available=1)
    st = ds.rollout_status([new], new, stalled, NOW)
    cond = ds.get_condition(st, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("False", ds.TIMED_OUT, 'ReplicaSet "web-1" has timed out progressing.')
    assert ds.stuck_requeue_after(stalled, st, NOW - 150) == pytest.approx(51)


def test_set_condition_keeps_transition_time_for_same_status() -> None:
    status: dict[str, Any] = {}
    ds.set_condition(status, ds.new_condition("Progressing", "True", "A", "a", NOW))
    ds.set_condition(status, ds.new_condition("Progressing", "True", "B", "b", NOW + 60))
    (cond,) = status["conditions"]
    assert cond["reason"] == "B" and cond["lastTransitionTime"] == format_time(NOW)
    assert cond["lastUpdateTime"] == format_time(NOW + 60)
