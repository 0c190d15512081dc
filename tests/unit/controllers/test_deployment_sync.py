"""DeploymentController.sync against an in-memory API: the first ReplicaSet, a rolling update
step by step, rollback to an old ReplicaSet, pause, Recreate, scaling mid-rollout and the
cleanup of old ReplicaSets. The ReplicaSet controller is played by hand: tests set the
ReplicaSets' status to what their pods would make it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.controllers import deployment_status as ds
from pocketkube.controllers import deployment_util as du
from pocketkube.controllers.deployment import DeploymentController
from tests.unit.controllers.replicaset_fake import FakeApi, FakeFactory, FakeRecorder

Obj = dict[str, Any]


def manifest(image: str = "nginx:1", replicas: int = 3, **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns",
                         "annotations": {"kubernetes.io/change-cause": f"image {image}"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}},
                     **spec}}


class Env:
    def __init__(self) -> None:
        self.factory = FakeFactory()
        self.api = FakeApi(self.factory)
        self.recorder = FakeRecorder()
        self.clock = FakeClock()
        self.ctl = DeploymentController(self.api, self.factory, self.clock, self.recorder,
                                        wall=lambda: self.clock.now() + 1_700_000_000)

    def deploy(self) -> Obj:
        return self.api.objects[("deployments", "ns/web")]

    def change(self, **spec: Any) -> None:
        d = copy.deepcopy(self.deploy())
        d["spec"].update(spec)
        d["metadata"]["generation"] += 1
        self.api.seed("deployments", d)

    def image(self, image: str) -> None:
        t = copy.deepcopy(self.deploy()["spec"]["template"])
        t["spec"]["containers"][0]["image"] = image
        self.change(template=t)

    def sets(self) -> dict[str, Obj]:
        return {o["metadata"]["name"]: o for o in self.api.of("replicasets")}

    def sizes(self) -> dict[str, int]:
        return {n: rs["spec"]["replicas"] for n, rs in sorted(self.sets().items())}

    def settle(self) -> None:
        """What the ReplicaSet controller would report once every pod is up and available."""
        for rs in self.api.of("replicasets"):
            n = rs["spec"]["replicas"]
            self.api.seed("replicasets", dict(rs, status={
                "replicas": n, "readyReplicas": n, "availableReplicas": n,
                "observedGeneration": rs["metadata"].get("generation", 1)}))

    async def sync(self) -> None:
        await self.ctl.sync("ns/web")

    async def roll(self) -> int:
        """Settle and sync until the rollout is complete; the number of steps it took."""
        for step in range(1, 30):
            self.settle()
            await self.sync()
            d = self.deploy()
            if ds.deployment_complete(d, d["status"]) and \
                    all(rs["status"]["replicas"] == rs["spec"]["replicas"]
                        for rs in self.api.of("replicasets")):
                return step
        raise AssertionError(f"rollout did not complete: {self.sizes()}")

    def messages(self) -> list[str]:
        return [e[3] for e in self.recorder.events]


def name_for(image: str, replicas: int = 3) -> str:
    return "web-" + du.compute_hash(manifest(image, replicas)["spec"]["template"])


async def test_first_replica_set() -> None:
    env = Env()
    d = env.api.seed("deployments", manifest())
    await env.sync()
    name = name_for("nginx:1")
    rs = env.sets()[name]
    h = name.removeprefix("web-")
    assert rs["spec"]["replicas"] == 3
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert rs["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "image nginx:1", du.REVISION: "1",
        du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    dep = env.deploy()
    assert dep["metadata"]["annotations"][du.REVISION] == "1"
    cond = ds.get_condition(dep["status"], "Progressing")
    assert (cond["reason"], cond["message"]) == \
        (ds.NEW_RS_CREATED, f'Created new replica set "{name}"')
    assert env.messages() == [f"Scaled up replica set {name} from 0 to 3"]
    env.settle()
    await env.sync()
    st = env.deploy()["status"]
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"],
            st["observedGeneration"]) == (3, 3, 3, 1)
    assert ds.get_condition(st, "Progressing")["reason"] == ds.NEW_RS_AVAILABLE
    assert ds.get_condition(st, "Available")["reason"] == ds.MIN_AVAILABLE


async def test_rolling_update_respects_surge_and_unavailable() -> None:
    env = Env()
    env.api.seed("deployments", manifest(replicas=4))  # surge 1, unavailable 1
    await env.sync()
    env.settle()
    old, new = name_for("nginx:1", 4), name_for("nginx:2", 4)
    env.image("nginx:2")
    await env.sync()  # one surge pod; old may lose one: 5 pods, 4 available, 3 needed
    assert env.sizes() == {old: 3, new: 1}
    assert env.sets()[new]["metadata"]["annotations"][du.REVISION] == "2"
    await env.sync()  # the scale-down made room for one more surge pod
    assert env.sizes() == {old: 3, new: 2}
    await env.sync()  # nothing more until the new pods become available
    assert env.sizes() == {old: 3, new: 2}
    await env.roll()
    assert env.sizes() == {old: 0, new: 4}
    assert f"Scaled down replica set {old} from 4 to 3" in env.messages()
    assert f"Scaled up replica set {new} from 0 to 1" in env.messages()
    env.settle()
    await env.sync()
    dep = env.deploy()
    assert dep["metadata"]["annotations"][du.REVISION] == "2"
    assert ds.deployment_complete(dep, dep["status"])


async def test_rollback_reuses_the_old_replica_set_with_the_next_revision() -> None:
    env = Env()
    env.api.seed("deployments", manifest())
    await env.sync()
    first = env.deploy()["spec"]["template"]
    env.image("nginx:2")
    await env.roll()
    old = name_for("nginx:1")
    assert env.sizes()[old] == 0
    env.change(template=first)  # what `kubectl rollout undo` patches in
    await env.sync()  # the old ReplicaSet is the new one again: its revision moves first
    await env.sync()
    ann = env.sets()[old]["metadata"]["annotations"]
    assert ann[du.REVISION] == "3" and ann[du.REVISION_HISTORY] == "1"
    await env.roll()
    assert env.sizes() == {old: 3, name_for("nginx:2"): 0}
    assert env.deploy()["metadata"]["annotations"][du.REVISION] == "3"
    assert len(env.sets()) == 2


async def test_paused_deployment_does_not_roll_out() -> None:
    env = Env()
    env.api.seed("deployments", manifest())
    await env.sync()
    env.settle()
    env.change(paused=True)
    env.image("nginx:2")
    await env.sync()
    assert list(env.sets()) == [name_for("nginx:1")]
    cond = ds.get_condition(env.deploy()["status"], "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("Unknown", ds.PAUSED, "Deployment is paused")
    env.change(replicas=5)  # scaling still works while paused
    await env.sync()
    assert env.sizes() == {name_for("nginx:1"): 5}
    env.change(paused=False)
    await env.sync()
    assert ds.get_condition(env.deploy()["status"], "Progressing")["reason"] in \
        (ds.RESUMED, ds.NEW_RS_CREATED)
    assert name_for("nginx:2", 5) in env.sets()


async def test_recreate_scales_old_down_before_creating_new() -> None:
    env = Env()
    env.api.seed("deployments", manifest(strategy={"type": "Recreate"}))
    await env.sync()
    env.settle()
    env.image("nginx:2")
    await env.sync()
    assert env.sizes() == {name_for("nginx:1"): 0}
    await env.sync()  # old pods still reported: wait
    assert len(env.sets()) == 1
    env.settle()
    await env.sync()
    assert env.sizes() == {name_for("nginx:1"): 0, name_for("nginx:2"): 3}


async def test_scaling_mid_rollout_is_proportional() -> None:
    env = Env()
    env.api.seed("deployments", manifest(replicas=10))  # surge 3, unavailable 2
    await env.sync()
    env.settle()
    env.image("nginx:2")
    await env.sync()
    old, new = name_for("nginx:1", 10), name_for("nginx:2", 10)
    before = env.sizes()
    assert before == {old: 8, new: 3}
    env.change(replicas=20)  # max 25 now, from 13
    await env.sync()
    after = env.sizes()
    assert sum(after.values()) == 25
    assert after[old] > before[old] and after[new] > before[new]
    assert env.sets()[old]["metadata"]["annotations"][du.DESIRED_REPLICAS] == "20"


async def test_old_replica_sets_beyond_history_limit_are_deleted() -> None:
    env = Env()
    env.api.seed("deployments", manifest(revisionHistoryLimit=1))
    await env.sync()
    for image in ("nginx:2", "nginx:3"):
        env.image(image)
        await env.roll()
    await env.sync()  # cleanup runs once the status says the rollout is complete
    assert sorted(env.sets()) == sorted([name_for("nginx:2"), name_for("nginx:3")])
    assert ("delete", "replicasets", name_for("nginx:1")) in env.api.calls


async def test_adopts_a_matching_orphan_replica_set() -> None:
    env = Env()
    d = env.api.seed("deployments", manifest())
    orphan = {"metadata": {"name": "web-manual", "namespace": "ns", "labels": {"app": "web"}},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": copy.deepcopy(manifest()["spec"]["template"])},
              "status": {"replicas": 3, "availableReplicas": 3}}
    env.api.seed("replicasets", orphan)
    await env.sync()
    adopted = env.sets()["web-manual"]
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert adopted["metadata"]["annotations"][du.REVISION] == "1"
    assert len(env.sets()) == 1


async def test_stale_old_status_never_scales_an_old_replica_set_up() -> None:
    env = Env()
    env.api.seed("deployments", manifest(replicas=4))
    await env.sync()
    env.settle()
    old, new = name_for("nginx:1", 4), name_for("nginx:2", 4)
    env.image("nginx:2")
    await env.sync()
    await env.sync()
    assert env.sizes() == {old: 3, new: 2}
    env.settle()
    # The old ReplicaSet's status still counts the 4 pods it had before the scale-down.
    rs = env.sets()[old]
    env.api.seed("replicasets", dict(rs, status=dict(rs["status"], availableReplicas=4)))
    with pytest.raises(ValueError, match="invalid request to scale down"):
        await env.sync()
    assert env.sizes() == {old: 3, new: 2}
