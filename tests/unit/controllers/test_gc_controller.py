"""The garbage collector against an in-memory API: background, orphan and foreground
deletion, owners replaced under the same name, and dependents with several owners."""

import pytest

from pocketkube.client.rest import resource
from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.garbagecollector import GarbageCollector
from tests.unit.controllers.informing_fakeapi import FakeApi, drain

CM = resource("", "configmaps")
RS = resource("apps", "replicasets")
PODS = resource("", "pods")
DEPLOY = resource("apps", "deployments")


@pytest.fixture
def env():
    api = FakeApi()
    informers = InformerFactory(api)
    api.informers = informers
    gc = GarbageCollector(api, informers)
    return api, gc


def ref(owner, block=False, controller=True):
    m = owner["metadata"]
    out = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"],
           "uid": m["uid"], "controller": controller}
    if block:
        out["blockOwnerDeletion"] = True
    return out


async def make(api, r, name, *owners, block=False):
    body = {"metadata": {"name": name, "namespace": "ns",
                         "ownerReferences": [ref(o, block) for o in owners]}}
    if not owners:
        del body["metadata"]["ownerReferences"]
    return await api.create(r, body)


async def test_background_deletion_collects_dependents_and_theirs(env):
    api, gc = env
    top = await make(api, CM, "top")
    mid = await make(api, CM, "mid", top)
    await make(api, CM, "leaf", mid)
    await make(api, CM, "unrelated")
    await drain(gc)
    assert api.find(CM, "mid", "ns") is not None
    await api.delete(CM, "top", "ns")
    await drain(gc)
    assert api.find(CM, "mid", "ns") is None
    assert api.find(CM, "leaf", "ns") is None
    assert api.find(CM, "unrelated", "ns") is not None


async def test_dependents_of_an_owner_that_never_existed_are_collected(env):
    api, gc = env
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "ghost", "uid": "no-such-uid"}}
    await make(api, PODS, "p", ghost)
    await drain(gc)
    assert api.find(PODS, "p", "ns") is None
    assert ("get", "replicasets", "ghost") in api.calls


async def test_an_owner_replaced_under_the_same_name_is_gone(env):
    api, gc = env
    old = await make(api, RS, "web")
    await make(api, PODS, "p", old)
    # Deleted and recreated while the collector was not looking.
    gc.graph.forget(old)
    del api.objects[("replicasets", "ns", "web")]
    new = await make(api, RS, "web")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    gc.queue.add(f"delete:{api.find(PODS, 'p', 'ns')['metadata']['uid']}")
    await drain(gc)
    assert api.find(PODS, "p", "ns") is None
    assert api.find(RS, "web", "ns") is not None


async def test_a_dependent_with_another_live_owner_only_loses_the_reference(env):
    api, gc = env
    a = await make(api, CM, "a")
    b = await make(api, CM, "b")
    await make(api, CM, "shared", a, b)
    await drain(gc)
    await api.delete(CM, "a", "ns")
    await drain(gc)
    shared = api.find(CM, "shared", "ns")
    assert shared is not None
    assert [r["name"] for r in shared["metadata"]["ownerReferences"]] == ["b"]


async def test_orphan_removes_references_then_the_finalizer(env):
    api, gc = env
    rs = await make(api, RS, "web")
    await make(api, PODS, "p1", rs, block=True)
    await make(api, PODS, "p2", rs, block=True)
    await drain(gc)
    await api.delete(RS, "web", "ns", propagationPolicy="Orphan")
    assert api.find(RS, "web", "ns")["metadata"]["finalizers"] == ["orphan"]
    await drain(gc)
    assert api.find(RS, "web", "ns") is None
    for name in ("p1", "p2"):
        pod = api.find(PODS, name, "ns")
        assert pod is not None and "ownerReferences" not in pod["metadata"]


async def test_foreground_deletes_dependents_before_the_owner(env):
    api, gc = env
    deploy = await make(api, DEPLOY, "web")
    rs = await make(api, RS, "web-1", deploy, block=True)
    await make(api, PODS, "p1", rs, block=True)
    await make(api, PODS, "p2", rs, block=True)
    await drain(gc)
    await api.delete(DEPLOY, "web", "ns", propagationPolicy="Foreground")
    await drain(gc)
    # The ReplicaSet has dependents, so it goes in the foreground too: pods first.
    assert api.find(PODS, "p1", "ns") is None and api.find(PODS, "p2", "ns") is None
    assert api.find(RS, "web-1", "ns") is None
    assert api.find(DEPLOY, "web", "ns") is None
    # Finalizers come off (and the objects go) only after their dependents are gone.
    calls = api.calls
    last_pod = max(i for i, c in enumerate(calls) if c[:2] == ("delete", "pods"))
    rs_done = calls.index(("patch", "replicasets", "web-1"))
    deploy_done = calls.index(("patch", "deployments", "web"))
    assert last_pod < rs_done < deploy_done


async def test_foreground_waits_for_a_blocking_dependent_that_is_still_terminating(env):
    api, gc = env
    rs = await make(api, RS, "web")
    pod = await make(api, PODS, "p", rs, block=True)
    # The pod has a finalizer of its own, so its deletion takes a while.
    api.objects[("pods", "ns", "p")]["metadata"]["finalizers"] = ["example.com/hold"]
    await drain(gc)
    await api.delete(RS, "web", "ns", propagationPolicy="Foreground")
    await drain(gc)
    assert api.find(PODS, "p", "ns")["metadata"].get("deletionTimestamp")
    assert api.find(RS, "web", "ns")["metadata"]["finalizers"] == ["foregroundDeletion"]
    await api.patch(PODS, "p", {"metadata": {"finalizers": None}}, "ns")
    await drain(gc)
    assert api.find(PODS, "p", "ns") is None
    assert api.find(RS, "web", "ns") is None
    assert pod["metadata"]["uid"] in gc.graph.absent


async def test_updates_that_do_not_touch_ownership_queue_nothing(env):
    api, gc = env
    rs = await make(api, RS, "web")
    await make(api, PODS, "p", rs)
    await drain(gc)
    await api.patch(PODS, "p", {"status": {"phase": "Running"}}, "ns")
    assert len(gc.queue) == 0


async def test_an_owner_replaced_while_the_watch_was_down_releases_its_dependents(env):
    api, gc = env
    old = await make(api, CM, "owner")
    await make(api, CM, "dep", old)
    await drain(gc)
    # A relist shows the same name with a new uid: to the informer, an update.
    del api.objects[("configmaps", "ns", "owner")]
    await make(api, CM, "owner")
    await drain(gc)
    assert api.find(CM, "dep", "ns") is None
    assert gc.graph.observed(old["metadata"]["uid"]) is None
