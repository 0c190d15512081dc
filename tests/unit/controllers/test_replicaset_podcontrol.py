"""The pod-control helpers shared by the workload controllers: slow-start batches, expectations,
pods from templates and owner references."""

from __future__ import annotations

from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers import podcontrol as pc


async def test_slow_start_batches_double_and_stop_at_the_first_failing_batch() -> None:
    calls: list[int] = []
    n = 0

    async def ok() -> None:
        calls.append(1)

    assert await pc.slow_start_batch(10, 1, ok) == (10, None)
    assert len(calls) == 10  # batches of 1, 2, 4, then the 3 left

    async def fails_from_the_fourth() -> None:
        nonlocal n
        n += 1
        if n >= 4:
            raise ValueError("quota")

    done, err = await pc.slow_start_batch(100, 1, fails_from_the_fourth)
    # Batches 1 and 2 succeed (3 calls); the batch of 4 has all four fail; nothing more runs.
    assert (done, str(err), n) == (3, "quota", 7)


def test_expectations() -> None:
    clock = FakeClock()
    exp = pc.Expectations(clock)
    assert exp.satisfied("ns/web")
    exp.expect_creations("ns/web", 2)
    assert not exp.satisfied("ns/web")
    exp.creation_observed("ns/web")
    assert not exp.satisfied("ns/web")
    exp.creation_observed("ns/web")
    assert exp.satisfied("ns/web")
    exp.expect_deletions("ns/web", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/web", "ns/a")
    exp.deletion_observed("ns/web", "ns/a")  # seen twice, counted once
    assert not exp.satisfied("ns/web")
    clock.advance(pc.EXPECTATIONS_TIMEOUT + 1)
    assert exp.satisfied("ns/web")
    exp.delete("ns/web")
    assert exp.pending("ns/web") == (0, 0)


def test_pod_from_template() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "web-7d4b9", "namespace": "ns", "uid": "u1"}}
    template = {"metadata": {"name": "ignored", "labels": {"app": "web"},
                             "finalizers": ["x/y"]},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
    pod = pc.pod_from_template(template, owner, pc.controller_ref(owner))
    assert pod["metadata"] == {
        "generateName": "web-7d4b9-", "namespace": "ns", "labels": {"app": "web"},
        "finalizers": ["x/y"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9",
                             "uid": "u1", "controller": True, "blockOwnerDeletion": True}]}
    assert pod["spec"] == template["spec"] and pod["spec"] is not template["spec"]
    assert pc.controller_of(pod)["uid"] == "u1"
    assert pc.pods_prefix("Bad_Name") == "Bad_Name"


def test_adopt_and_release_patches() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "web", "uid": "u1"}}
    obj = {"metadata": {"name": "p", "uid": "p1"}}
    assert pc.adopt_patch(owner, obj)["metadata"]["uid"] == "p1"
    assert pc.release_patch(owner, obj) == {"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": "u1"}], "uid": "p1"}}
