"""The DaemonSet controller's sync against an in-memory API: one pod per eligible node with
kube's events, expectations guarding a lagging cache, rolling update and OnDelete, nodes coming
and going, revisions and status."""

from __future__ import annotations

import copy

from pocketkube.client.rest import resource
from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.daemonset import DaemonSetController
from pocketkube.controllers.daemonset_util import target_node
from pocketkube.controllers.history import REVISIONS
from tests.unit.controllers.workloads_fake import FakeApi, Recorder, drain

DAEMONSETS = resource("apps", "daemonsets")
PODS = resource("", "pods")
NODES = resource("", "nodes")


def manifest(**spec: object) -> dict:
    body = {"selector": {"matchLabels": {"app": "fluentd"}}, "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "template": {"metadata": {"labels": {"app": "fluentd"}},
                         "spec": {"containers": [{"name": "c", "image": "fluentd:v1"}]}}}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "fluentd", "namespace": "ns"}, "spec": body}


async def setup(nodes: int = 3, **kw: object) -> tuple[FakeApi, DaemonSetController, Recorder]:
    api = FakeApi()
    rec = Recorder()
    ctrl = DaemonSetController(api, api.informers, FakeClock(), recorder=rec)
    for i in range(nodes):
        await api.create(NODES, {"metadata": {"name": f"sim-{i}"}, "spec": {}})
    await api.create(DAEMONSETS, manifest(**kw))
    return api, ctrl, rec


def live(api: FakeApi) -> list[dict]:
    return [p for p in api.all(PODS) if not p["metadata"].get("deletionTimestamp")]


def run_all(api: FakeApi) -> None:
    """Bind and start every pod on its node, as the scheduler and the node agent would."""
    for p in live(api):
        if p["status"]["phase"] == "Pending":
            api.set_pod(p["metadata"]["name"], "ns", node=target_node(p))


def ds(api: FakeApi) -> dict:
    return api.all(DAEMONSETS)[0]


async def test_one_pod_per_node_with_events_and_status() -> None:
    api, ctrl, rec = await setup()
    await drain(ctrl)
    pods = live(api)
    assert sorted(target_node(p) for p in pods) == ["sim-0", "sim-1", "sim-2"]
    assert sorted(rec.messages("SuccessfulCreate")) == sorted(
        f"Created pod: {p['metadata']['name']}" for p in pods)
    [rev] = api.all(REVISIONS)
    assert rev["metadata"]["name"] == f"fluentd-{rev['metadata']['labels']['controller-revision-hash']}"
    run_all(api)
    await drain(ctrl)
    assert ds(api)["status"] == {
        "currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3,
        "numberReady": 3, "updatedNumberScheduled": 3, "numberAvailable": 3,
        "observedGeneration": 1}


async def test_a_lagging_cache_never_doubles_pods() -> None:
    api, ctrl, _ = await setup()
    api.hold("pods")
    await ctrl.sync("ns/fluentd")
    await ctrl.sync("ns/fluentd")
    assert len(api.all(PODS)) == 3, "expectations wait for the informer to see the pods"
    api.release("pods")
    await drain(ctrl)
    assert len(api.all(PODS)) == 3


async def test_nodes_joining_and_tainted() -> None:
    api, ctrl, _ = await setup(nodes=1)
    await drain(ctrl)
    await api.create(NODES, {"metadata": {"name": "sim-1"}, "spec": {
        "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}})
    await api.create(NODES, {"metadata": {"name": "sim-2"}, "spec": {}})
    await drain(ctrl)
    assert sorted(target_node(p) for p in live(api)) == ["sim-0", "sim-2"]
    # A NoExecute taint the daemon does not tolerate evicts its pod.
    node = copy.deepcopy(api.all(NODES)[2])
    node["spec"]["taints"] = [{"key": "gone", "effect": "NoExecute"}]
    await api.update(NODES, node)
    await drain(ctrl)
    assert sorted(target_node(p) for p in live(api)) == ["sim-0"]


async def test_rolling_update_replaces_one_node_at_a_time() -> None:
    api, ctrl, rec = await setup()
    await drain(ctrl)
    run_all(api)
    await drain(ctrl)
    cur = copy.deepcopy(ds(api))
    cur["spec"]["template"]["spec"]["containers"][0]["image"] = "fluentd:v2"
    await api.update(DAEMONSETS, cur)
    for _ in range(3):
        await drain(ctrl)
        doomed = [p for p in api.all(PODS) if p["metadata"].get("deletionTimestamp")]
        assert len(doomed) == 1, "maxUnavailable 1"
        api.remove(PODS, doomed[0]["metadata"]["name"], "ns")
        await drain(ctrl)
        run_all(api)
    await drain(ctrl)
    assert {p["spec"]["containers"][0]["image"] for p in live(api)} == {"fluentd:v2"}
    assert len(live(api)) == 3 and len(rec.messages("SuccessfulDelete")) == 3
    assert sorted(r["revision"] for r in api.all(REVISIONS)) == [1, 2]
    st = ds(api)["status"]
    assert (st["updatedNumberScheduled"], st["numberAvailable"], st["observedGeneration"]) == \
        (3, 3, 2)


async def test_on_delete_waits_for_pods_to_be_deleted() -> None:
    api, ctrl, _ = await setup(updateStrategy={"type": "OnDelete"})
    await drain(ctrl)
    run_all(api)
    cur = copy.deepcopy(ds(api))
    cur["spec"]["template"]["spec"]["containers"][0]["image"] = "fluentd:v2"
    await api.update(DAEMONSETS, cur)
    await drain(ctrl)
    assert not [p for p in api.all(PODS) if p["metadata"].get("deletionTimestamp")]
    assert ds(api)["status"].get("updatedNumberScheduled") is None
