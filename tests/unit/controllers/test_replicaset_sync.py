"""ReplicaSetController.sync against an in-memory API: pods from the template with controller
owner references, kube's events, expectations against a lagging cache, slow-start on failures,
scale-down order, adoption and release, terminating pods, minReadySeconds, and the
ReplicationController variant."""

from __future__ import annotations

from typing import Any

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers.replicaset import (
    ReplicaSetController,
    ReplicationControllerController,
)
from pocketkube.controllers.replicaset_util import format_time
from tests.unit.controllers.replicaset_fake import FakeApi, FakeFactory, FakeRecorder

Obj = dict[str, Any]


def rs_manifest(replicas: int = 3, min_ready: int = 0) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"},
                                               "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


class Env:
    def __init__(self, kind: str = "rs") -> None:
        self.factory = FakeFactory()
        self.api = FakeApi(self.factory)
        self.recorder = FakeRecorder()
        self.clock = FakeClock()
        cls = ReplicaSetController if kind == "rs" else ReplicationControllerController
        self.ctl = cls(self.api, self.factory, self.clock, self.recorder,
                       wall=lambda: self.clock.now() + 1_700_000_000)
        self.plural = "replicasets" if kind == "rs" else "replicationcontrollers"

    def pods(self) -> list[Obj]:
        return self.api.of("pods")

    def set(self) -> Obj:
        return self.api.objects[(self.plural, "ns/web")]

    def mark(self, p: Obj, ready: bool = True, node: str = "n1", since: float = 0.0) -> None:
        """Play the scheduler and node agent: bind the pod and report it Running/Ready."""
        stamp = format_time(since or self.ctl.wall())
        p = dict(p, spec=dict(p["spec"], nodeName=node),
                 status={"phase": "Running", "conditions": [
                     {"type": "Ready", "status": "True" if ready else "False",
                      "lastTransitionTime": stamp}]})
        self.api.seed("pods", p)


async def test_creates_pods_from_the_template() -> None:
    env = Env()
    owner = env.api.seed("replicasets", rs_manifest())
    await env.ctl.sync("ns/web")
    pods = env.pods()
    assert len(pods) == 3
    for p in pods:
        meta = p["metadata"]
        assert meta["name"].startswith("web-")
        assert meta["labels"] == {"app": "web"} and meta["annotations"] == {"a": "b"}
        assert meta["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    assert sorted(e[3] for e in env.recorder.events) == \
        sorted(f"Created pod: {p['metadata']['name']}" for p in pods)
    assert {e[2] for e in env.recorder.events} == {"SuccessfulCreate"}
    # Status counts the pods a sync started from; the pods' add events bring the next sync.
    assert env.set()["status"]["replicas"] == 0
    assert env.ctl.queue._dirty == {"ns/web"}
    await env.ctl.sync("ns/web")
    st = env.set()["status"]
    assert st["replicas"] == 3 and st["observedGeneration"] == 1
    assert "readyReplicas" not in st


async def test_expectations_hold_back_a_second_round_until_the_cache_catches_up() -> None:
    env = Env()
    env.api.seed("replicasets", rs_manifest())
    env.api.hold = True  # the pod watch lags
    await env.ctl.sync("ns/web")
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 3
    env.api.release()
    assert env.ctl.expectations.satisfied("ns/web")
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 3


async def test_expectations_expire() -> None:
    env = Env()
    env.api.seed("replicasets", rs_manifest(replicas=1))
    env.api.hold = True
    await env.ctl.sync("ns/web")
    env.api.pending.clear()  # the creation is never seen
    env.api.hold = False
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 1
    env.clock.advance(301)
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 2


async def test_failed_create_stops_the_batch_and_reports() -> None:
    env = Env()
    env.api.seed("replicasets", rs_manifest(replicas=10))
    env.api.fail_create = StatusError(403, "Forbidden", 'pods "web-x" is forbidden: quota')
    with pytest.raises(StatusError):
        await env.ctl.sync("ns/web")
    assert env.recorder.events == [("web", "Warning", "FailedCreate",
                                    'Error creating: pods "web-x" is forbidden: quota')]
    cond = env.set()["status"]["conditions"][0]
    assert (cond["type"], cond["reason"]) == ("ReplicaFailure", "FailedCreate")
    assert env.ctl.expectations.satisfied("ns/web")
    env.api.fail_create = None
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 10
    assert "conditions" not in env.set()["status"]


async def test_scale_down_deletes_the_least_useful_pods() -> None:
    env = Env()
    env.api.seed("replicasets", rs_manifest())
    await env.ctl.sync("ns/web")
    a, b, c = sorted(env.pods(), key=lambda p: p["metadata"]["name"])
    env.mark(a)
    env.mark(b, ready=False)
    env.mark(c)
    env.api.seed("replicasets", dict(env.set(), spec=dict(env.set()["spec"], replicas=2)))
    await env.ctl.sync("ns/web")
    assert sorted(p["metadata"]["name"] for p in env.pods()) == \
        sorted([a["metadata"]["name"], c["metadata"]["name"]])
    assert env.recorder.events[-1] == ("web", "Normal", "SuccessfulDelete",
                                       f"Deleted pod: {b['metadata']['name']}")


async def test_adopts_orphans_and_releases_pods_that_stop_matching() -> None:
    env = Env()
    owner = env.api.seed("replicasets", rs_manifest(replicas=2))
    env.api.seed("pods", {"metadata": {"name": "orphan", "namespace": "ns",
                                       "labels": {"app": "web"}}, "spec": {}})
    env.api.seed("pods", {"metadata": {"name": "stranger", "namespace": "ns",
                                       "labels": {"app": "db"}}, "spec": {}})
    await env.ctl.sync("ns/web")
    orphan = env.api.objects[("pods", "ns/orphan")]
    assert orphan["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    assert len(env.pods()) == 3  # the orphan plus one new pod; the stranger is left alone
    env.api.seed("pods", dict(orphan, metadata=dict(orphan["metadata"], labels={"app": "x"})))
    await env.ctl.sync("ns/web")
    assert env.api.objects[("pods", "ns/orphan")]["metadata"]["ownerReferences"] == []
    assert len([p for p in env.pods() if p["metadata"]["labels"] == {"app": "web"}]) == 2


async def test_terminating_pods_are_replaced() -> None:
    env = Env()
    env.api.seed("replicasets", rs_manifest(replicas=1))
    await env.ctl.sync("ns/web")
    (p,) = env.pods()
    env.api.seed("pods", dict(p, metadata=dict(p["metadata"],
                                              deletionTimestamp="2024-01-01T00:00:00Z")))
    assert env.ctl.queue._dirty == {"ns/web"}
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 2
    await env.ctl.sync("ns/web")
    assert len(env.pods()) == 2
    assert env.set()["status"]["replicas"] == 1


async def test_min_ready_seconds_delays_availability() -> None:
    env = Env()
    env.api.seed("replicasets", rs_manifest(replicas=1, min_ready=10))
    await env.ctl.sync("ns/web")
    env.mark(env.pods()[0])
    await env.ctl.sync("ns/web")
    st = env.set()["status"]
    assert st["readyReplicas"] == 1 and "availableReplicas" not in st
    env.clock.advance(11)
    await env.ctl.sync("ns/web")
    assert env.set()["status"]["availableReplicas"] == 1


async def test_replication_controller_uses_its_map_selector() -> None:
    env = Env("rc")
    rc = {"apiVersion": "v1", "kind": "ReplicationController",
          "metadata": {"name": "web", "namespace": "ns"},
          "spec": {"replicas": 2, "selector": {"app": "web"},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    env.api.seed("replicationcontrollers", rc)
    await env.ctl.sync("ns/web")
    pods = env.pods()
    assert len(pods) == 2
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
    await env.ctl.sync("ns/web")
    assert env.set()["status"]["replicas"] == 2
