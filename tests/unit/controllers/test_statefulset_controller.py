"""The StatefulSet controller's sync against an in-memory API: ordered creation waiting for
readiness, Parallel creation, scale-down from the highest ordinal one pod at a time, partitioned
rolling updates, claims from volumeClaimTemplates, failed pods, revisions and their truncation,
and the events and status kube writes."""

from __future__ import annotations

import copy

from pocketkube.client.rest import resource
from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.history import REVISIONS
from pocketkube.controllers.statefulset import StatefulSetController
from tests.unit.controllers.workloads_fake import FakeApi, Recorder, drain

SETS = resource("apps", "statefulsets")
PODS = resource("", "pods")
CLAIMS = resource("", "persistentvolumeclaims")


def manifest(replicas: int = 3, **spec: object) -> dict:
    body = {"replicas": replicas, "serviceName": "web", "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "web"}}, "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns"}, "spec": body}


async def setup(**kw: object) -> tuple[FakeApi, StatefulSetController, Recorder]:
    api = FakeApi()
    rec = Recorder()
    ctrl = StatefulSetController(api, api.informers, FakeClock(), recorder=rec)
    await api.create(SETS, manifest(**kw))
    return api, ctrl, rec


def pods(api: FakeApi) -> list[str]:
    return api.names(PODS)


def live(api: FakeApi) -> list[str]:
    return [p["metadata"]["name"] for p in api.all(PODS)
            if not p["metadata"].get("deletionTimestamp")]


def sts(api: FakeApi) -> dict:
    return api.all(SETS)[0]


async def edit(api: FakeApi, change: dict) -> None:
    cur = copy.deepcopy(sts(api))
    for path, value in change.items():
        target = cur
        *parents, last = path.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    await api.update(SETS, cur)


async def test_ordered_ready_creates_one_pod_at_a_time() -> None:
    api, ctrl, rec = await setup()
    await drain(ctrl)
    assert pods(api) == ["web-0"]
    await drain(ctrl)
    assert pods(api) == ["web-0"], "web-1 waits for web-0 to be Running and Ready"
    api.set_pod("web-0", "ns", ready=False)
    await drain(ctrl)
    assert pods(api) == ["web-0"]
    api.set_pod("web-0", "ns")
    await drain(ctrl)
    assert pods(api) == ["web-0", "web-1"]
    api.set_pod("web-1", "ns")
    await drain(ctrl)
    api.set_pod("web-2", "ns")
    await drain(ctrl)
    assert pods(api) == ["web-0", "web-1", "web-2"]
    assert rec.messages("SuccessfulCreate") == [
        f"create Pod web-{i} in StatefulSet web successful" for i in range(3)]
    st = sts(api)["status"]
    [rev] = api.all(REVISIONS)
    assert st == {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3,
                  "availableReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
                  "currentRevision": rev["metadata"]["name"],
                  "updateRevision": rev["metadata"]["name"], "collisionCount": 0}
    assert rev["revision"] == 1 and rev["metadata"]["ownerReferences"][0]["name"] == "web"


async def test_parallel_creates_every_pod_at_once() -> None:
    api, ctrl, _ = await setup(podManagementPolicy="Parallel")
    await drain(ctrl)
    assert pods(api) == ["web-0", "web-1", "web-2"]


async def test_ordinals_start() -> None:
    api, ctrl, _ = await setup(podManagementPolicy="Parallel", replicas=2, ordinals={"start": 3})
    await drain(ctrl)
    assert pods(api) == ["web-3", "web-4"]


async def running(replicas: int = 3, **kw: object) -> tuple[FakeApi, StatefulSetController,
                                                             Recorder]:
    api, ctrl, rec = await setup(replicas=replicas, **kw)
    for i in range(replicas):
        await drain(ctrl)
        api.set_pod(f"web-{i}", "ns")
    await drain(ctrl)
    return api, ctrl, rec


async def test_scale_down_removes_the_highest_ordinal_first_one_at_a_time() -> None:
    api, ctrl, rec = await running()
    await edit(api, {"spec.replicas": 1})
    await drain(ctrl)
    assert live(api) == ["web-0", "web-1"]
    await drain(ctrl)
    assert live(api) == ["web-0", "web-1"], "web-1 waits until web-2 is gone"
    api.remove(PODS, "web-2", "ns")
    await drain(ctrl)
    assert live(api) == ["web-0"]
    assert rec.messages("SuccessfulDelete") == ["delete Pod web-2 in StatefulSet web successful",
                                                "delete Pod web-1 in StatefulSet web successful"]


async def test_partitioned_update_replaces_from_the_top_down_to_the_partition() -> None:
    api, ctrl, _ = await running()
    old_rev = sts(api)["status"]["currentRevision"]
    await edit(api, {"spec.updateStrategy": {"type": "RollingUpdate",
                                             "rollingUpdate": {"partition": 1}},
                     "spec.template.spec.containers": [{"name": "app", "image": "nginx:1.28"}]})
    await drain(ctrl)
    assert live(api) == ["web-0", "web-1"]
    new_rev = sts(api)["status"]["updateRevision"]
    assert new_rev != old_rev and len(api.all(REVISIONS)) == 2
    api.remove(PODS, "web-2", "ns")
    await drain(ctrl)
    web2 = api.find_pod("web-2")
    assert web2["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert web2["metadata"]["labels"]["controller-revision-hash"] == new_rev
    assert live(api) == ["web-0", "web-1", "web-2"], "web-1 waits for the new web-2"
    api.set_pod("web-2", "ns")
    await drain(ctrl)
    assert live(api) == ["web-0", "web-2"]
    api.remove(PODS, "web-1", "ns")
    await drain(ctrl)
    api.set_pod("web-1", "ns")
    await drain(ctrl)
    assert live(api) == ["web-0", "web-1", "web-2"], "web-0 is below the partition"
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in api.all(PODS)}
    assert images == {"web-0": "nginx:1.27", "web-1": "nginx:1.28", "web-2": "nginx:1.28"}
    st = sts(api)["status"]
    assert (st["currentRevision"], st["updateRevision"]) == (old_rev, new_rev)
    assert (st["currentReplicas"], st["updatedReplicas"]) == (1, 2)
    # Lowering the partition to 0 finishes the rollout; the update becomes current.
    await edit(api, {"spec.updateStrategy.rollingUpdate.partition": 0})
    await drain(ctrl)
    api.remove(PODS, "web-0", "ns")
    await drain(ctrl)
    api.set_pod("web-0", "ns")
    await drain(ctrl)
    st = sts(api)["status"]
    assert st["currentRevision"] == st["updateRevision"] == new_rev
    assert st["currentReplicas"] == 3


async def test_on_delete_leaves_pods_until_they_are_deleted() -> None:
    api, ctrl, _ = await running(updateStrategy={"type": "OnDelete"})
    await edit(api, {"spec.template.spec.containers": [{"name": "app", "image": "v2"}]})
    await drain(ctrl)
    assert live(api) == ["web-0", "web-1", "web-2"]
    api.remove(PODS, "web-1", "ns")
    await drain(ctrl)
    assert api.find_pod("web-1")["spec"]["containers"][0]["image"] == "v2"
    assert api.find_pod("web-0")["spec"]["containers"][0]["image"] == "nginx:1.27"


async def test_claims_are_created_before_the_pod_and_owned_per_policy() -> None:
    api, ctrl, rec = await setup(
        replicas=1,
        volumeClaimTemplates=[{"metadata": {"name": "data"},
                               "spec": {"accessModes": ["ReadWriteOnce"]}}],
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"})
    await drain(ctrl)
    assert [c for c in api.calls if c[0] == "create"][-2:] == [
        ("create", "persistentvolumeclaims", "data-web-0"), ("create", "pods", "web-0")]
    [claim] = api.all(CLAIMS)
    assert claim["metadata"]["labels"] == {"app": "web"}
    assert [(r["kind"], r["name"]) for r in claim["metadata"]["ownerReferences"]] == \
        [("StatefulSet", "web")]
    assert "create Claim data-web-0 Pod web-0 in StatefulSet web success" in \
        rec.messages("SuccessfulCreate")


async def test_claims_retained_by_default_have_no_owner() -> None:
    api, ctrl, _ = await setup(
        replicas=1, volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    await drain(ctrl)
    assert api.all(CLAIMS)[0]["metadata"].get("ownerReferences") is None


async def test_a_failed_pod_is_deleted_and_recreated() -> None:
    api, ctrl, _ = await running(replicas=1)
    api.set_pod("web-0", "ns", phase="Failed", ready=False)
    await drain(ctrl)
    assert live(api) == []
    api.remove(PODS, "web-0", "ns")
    await drain(ctrl)
    assert pods(api) == ["web-0"] and api.find_pod("web-0")["status"]["phase"] == "Pending"


async def test_revision_history_is_truncated_but_live_revisions_stay() -> None:
    api, ctrl, _ = await running(replicas=1, revisionHistoryLimit=1,
                                 updateStrategy={"type": "OnDelete"})
    first = sts(api)["status"]["currentRevision"]
    for image in ("v2", "v3", "v4"):
        await edit(api, {"spec.template.spec.containers": [{"name": "app", "image": image}]})
        await drain(ctrl)
    names = {r["metadata"]["name"]: r["revision"] for r in api.all(REVISIONS)}
    # web-0 still runs the first revision (live); of v2 and v3 only the newest one is kept.
    assert first in names and len(names) == 3
    assert sorted(names.values()) == [1, 3, 4]


async def test_rollback_reuses_the_equal_revision_with_a_new_number() -> None:
    api, ctrl, _ = await running(replicas=1, updateStrategy={"type": "OnDelete"})
    first = sts(api)["status"]["updateRevision"]
    await edit(api, {"spec.template.spec.containers": [{"name": "app", "image": "v2"}]})
    await drain(ctrl)
    await edit(api, {"spec.template.spec.containers": [{"name": "app", "image": "nginx:1.27"}]})
    await drain(ctrl)
    revs = {r["metadata"]["name"]: r["revision"] for r in api.all(REVISIONS)}
    assert len(revs) == 2 and revs[first] == 3
    assert sts(api)["status"]["updateRevision"] == first


async def test_orphan_pods_are_adopted_and_foreign_ones_ignored() -> None:
    api, ctrl, _ = await setup(replicas=1)
    await api.create(PODS, {"metadata": {"name": "web-0", "namespace": "ns",
                                         "labels": {"app": "web"}}, "spec": {}})
    await api.create(PODS, {"metadata": {"name": "other-0", "namespace": "ns",
                                         "labels": {"app": "web"}}, "spec": {}})
    await drain(ctrl)
    assert api.find_pod("web-0")["metadata"]["ownerReferences"][0]["name"] == "web"
    assert "ownerReferences" not in api.find_pod("other-0")["metadata"]
