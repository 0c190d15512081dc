"""The pure StatefulSet rules and the ControllerRevision helpers: ordinals and identity,
claims, which revision a recreated pod gets, status counts, claim ownership under each
retention policy, revision hashing and history truncation."""

from __future__ import annotations

import copy

import pytest

from pocketkube.controllers import history as hist
from pocketkube.controllers import statefulset_util as su


def sts(**spec: object) -> dict:
    base = {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid", "generation": 1},
            "spec": base}


def test_parent_and_ordinal_from_names() -> None:
    assert su.parent_and_ordinal("web-0") == ("web", 0)
    assert su.parent_and_ordinal("my-web-12") == ("my-web", 12)
    assert su.parent_and_ordinal("web") == ("", -1)
    assert su.parent_and_ordinal("web-x") == ("", -1)


def test_ordinals_start_shifts_the_range() -> None:
    s = sts(ordinals={"start": 5}, replicas=2)
    assert [su.in_range({"metadata": {"name": f"web-{i}"}}, s) for i in (4, 5, 6, 7)] == \
        [False, True, True, False]


def test_new_pod_identity_claims_and_revision() -> None:
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"},
                                   "spec": {"accessModes": ["ReadWriteOnce"]}}])
    s["spec"]["template"]["spec"]["volumes"] = [{"name": "cfg", "emptyDir": {}}]
    pod = su.new_pod(s, s["spec"]["template"], 2, "web-abc")
    meta = pod["metadata"]
    assert meta["name"] == "web-2" and meta["namespace"] == "ns"
    assert meta["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "web-2",
                              "apps.kubernetes.io/pod-index": "2",
                              "controller-revision-hash": "web-abc"}
    assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                        "name": "web", "uid": "set-uid", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("web-2", "web")
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
        {"name": "cfg", "emptyDir": {}}]
    pod["metadata"]["uid"] = "u"
    assert su.identity_matches(s, pod) and su.storage_matches(s, pod)
    [claim] = su.claims(s, 2)
    assert claim["metadata"] == {"name": "data-web-2", "namespace": "ns",
                                 "labels": {"app": "web"}}


@pytest.mark.parametrize(("partition", "current_for"), [(0, []), (2, [0, 1]), (3, [0, 1, 2])])
def test_recreated_pods_below_the_partition_keep_the_current_revision(
        partition: int, current_for: list[int]) -> None:
    s = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": partition}})
    assert [o for o in range(3) if su.uses_current_revision(s, o)] == current_for


def test_on_delete_recreates_at_the_update_revision() -> None:
    s = sts(updateStrategy={"type": "OnDelete"})
    s["status"] = {"currentReplicas": 3}
    assert not any(su.uses_current_revision(s, o) for o in range(3))


def pod(name: str, rev: str, phase: str = "Running", ready: bool = True,
        deleting: bool = False) -> dict:
    p = {"metadata": {"name": name, "labels": {"controller-revision-hash": rev}},
         "status": {"phase": phase, "conditions": [
             {"type": "Ready", "status": "True" if ready else "False",
              "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:01Z"
    return p


def test_status_counts_and_completed_rolling_update() -> None:
    pods = [pod("web-0", "r1"), pod("web-1", "r2"), pod("web-2", "r2", ready=False),
            pod("web-3", "r1", deleting=True)]
    n = su.count_status(pods, 0, 2e9, "r1", "r2")
    assert n == {"replicas": 4, "readyReplicas": 3, "availableReplicas": 3,
                 "currentReplicas": 1, "updatedReplicas": 2}
    s = sts()
    status = {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 0,
              "currentRevision": "r1", "updateRevision": "r2"}
    su.complete_rolling_update(s, status)
    assert (status["currentRevision"], status["currentReplicas"]) == ("r2", 3)


def test_available_needs_min_ready_seconds_of_readiness() -> None:
    p = pod("web-0", "r1")
    since = 1704067200.0  # 2024-01-01T00:00:00Z
    assert not su.is_available(p, 10, since + 5)
    assert su.is_available(p, 10, since + 11)
    assert su.is_unavailable(pod("web-0", "r1", phase="Pending"), 0, since)


@pytest.mark.parametrize(("deleted", "scaled", "in_range_owner", "out_of_range_owner"), [
    ("Retain", "Retain", None, None),
    ("Delete", "Retain", "StatefulSet", "StatefulSet"),
    ("Retain", "Delete", None, "Pod"),
    ("Delete", "Delete", "StatefulSet", "Pod"),
])
def test_claim_owners_follow_the_retention_policy(deleted: str, scaled: str,
                                                  in_range_owner: str | None,
                                                  out_of_range_owner: str | None) -> None:
    s = sts(replicas=1, persistentVolumeClaimRetentionPolicy={"whenDeleted": deleted,
                                                              "whenScaled": scaled})
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm"}
    claim = {"metadata": {"name": "data-web-0", "ownerReferences": [other]}}
    for name, want in (("web-0", in_range_owner), ("web-3", out_of_range_owner)):
        p = {"metadata": {"name": name, "uid": f"{name}-uid"}}
        refs = su.claim_owner_refs(copy.deepcopy(claim), s, p)
        assert refs[0] == other
        assert [r["kind"] for r in refs[1:]] == ([want] if want else [])


def test_fnv32_and_safe_encoding() -> None:
    assert hist.fnv32(b"") == 0x811C9DC5
    assert hist.fnv32(b"a") == 0x050C5D7E
    assert hist.safe_encode("0123456789") == "456789bcdf"


def test_revision_hash_name_and_collisions() -> None:
    s = sts()
    r1 = hist.new_revision(s, "apps/v1", "StatefulSet", 1, 0)
    assert r1["metadata"]["name"] == f"web-{r1['metadata']['labels']['controller-revision-hash']}"
    assert r1["data"]["spec"]["template"]["$patch"] == "replace"
    assert r1["revision"] == 1 and r1["metadata"]["ownerReferences"][0]["uid"] == "set-uid"
    assert hist.new_revision(s, "apps/v1", "StatefulSet", 1, 1)["metadata"]["name"] != \
        r1["metadata"]["name"]
    assert hist.hash_revision(r1["data"], 0) == hist.hash_revision(
        copy.deepcopy(r1["data"]), 0)
    changed = copy.deepcopy(s)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    r2 = hist.new_revision(changed, "apps/v1", "StatefulSet", 2, 0)
    assert not hist.equal_revision(r1, r2)
    assert hist.template_of(r2)["spec"]["containers"][0]["image"] == "nginx:1.28"


def test_truncate_keeps_live_revisions_and_the_newest_history() -> None:
    revs = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in (3, 1, 4, 2, 5)]
    ordered = hist.sort_revisions(revs)
    assert [r["revision"] for r in ordered] == [1, 2, 3, 4, 5]
    doomed = hist.truncate(ordered, live={"r1", "r5"}, limit=1)
    assert [r["metadata"]["name"] for r in doomed] == ["r2", "r3"]
    assert hist.truncate(ordered, live=set(), limit=10) == []
