"""The Deployment controller (kube's `pkg/controller/deployment/deployment_controller.go`).

A Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`; the one whose template
equals the Deployment's is the new one, the rest are old. Each sync claims the ReplicaSets the
selector matches (adopting orphans, releasing the ones that stopped matching), then either only
resizes them (a scaling event, or a paused Deployment) or rolls out by the Deployment's strategy
(deployment_rollout.py), keeping revisions, the Progressing/Available conditions and the status
counts that `kubectl rollout status` waits on. `kubectl rollout undo` needs nothing special: it
puts an old template back, the old ReplicaSet becomes the new one and gets the next revision.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.selectors import selector_from_label_selector
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import key_of
from pocketkube.controllers import deployment_status as ds
from pocketkube.controllers import deployment_util as du
from pocketkube.controllers import podcontrol as pc
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.deployment_rollout import DeploymentRollout
from pocketkube.controllers.deployment_sync import DEPLOYMENTS, REPLICASETS, _owner
from pocketkube.controllers.replicaset_util import selector_matches

Obj = dict[str, Any]


class DeploymentController(DeploymentRollout, Controller):
    name = "deployment"
    workers = 5

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: Any = None, wall: Callable[[], float] | None = None) -> None:
        Controller.__init__(self, client, informers, clock)
        self.recorder = recorder or EventRecorder(client, "deployment-controller")
        self.wall = wall or pc.wall_clock(self.clock)
        self.deployments = informers.informer(DEPLOYMENTS)
        self.sets = informers.informer(REPLICASETS)
        self.pods = informers.informer(pc.PODS)
        pc.add_owner_indexes(self.deployments)
        pc.add_owner_indexes(self.sets)
        pc.add_owner_indexes(self.pods)
        self.deployments.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                            delete=self.enqueue)
        self.sets.on(add=self._rs_added, update=self._rs_updated, delete=self._rs_deleted)
        self.pods.on(delete=self._pod_deleted)

    # -- event handlers ---------------------------------------------------------------------------
    def _resolve(self, ns: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(f"{ns}/{ref.get('name')}")
        return d if d is not None and d["metadata"].get("uid") == ref.get("uid") else None

    def _deployments_for(self, rs: Obj) -> list[Obj]:
        ns = rs["metadata"].get("namespace", "")
        return [d for d in self.deployments.by_index(pc.NAMESPACE_INDEX, ns)
                if selector_matches(selector_from_label_selector(
                    (d.get("spec") or {}).get("selector")), rs)]

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = pc.controller_of(rs)
        if ref is not None:
            d = self._resolve(rs["metadata"].get("namespace", ""), ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_for(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        ns = cur["metadata"].get("namespace", "")
        cur_ref, old_ref = pc.controller_of(cur), pc.controller_of(old)
        if cur_ref != old_ref and old_ref is not None:
            prev = self._resolve(ns, old_ref)
            if prev is not None:
                self.enqueue(prev)
        if cur_ref is not None:
            d = self._resolve(ns, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if cur_ref != old_ref or old["metadata"].get("labels") != cur["metadata"].get("labels"):
            for d in self._deployments_for(cur):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._resolve(rs["metadata"].get("namespace", ""), pc.controller_of(rs))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for the old pods to be gone: their deletion is the next step."""
        ns = pod["metadata"].get("namespace", "")
        ref = pc.controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.get(f"{ns}/{ref.get('name')}")
        if rs is None:
            return
        d = self._resolve(ns, pc.controller_of(rs))
        if d is not None and ((d.get("spec") or {}).get("strategy") or {}).get("type") == \
                "Recreate":
            self.enqueue(d)

    # -- sync -------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        d.setdefault("status", {})
        sel = (d.get("spec") or {}).get("selector") or {}
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            self.recorder.record(_owner(d), "Warning", "SelectingAll",
                                 "This deployment is selecting all pods. A non-empty selector "
                                 "is required.")
            if d["status"].get("observedGeneration", 0) < d["metadata"].get("generation", 0):
                d["status"]["observedGeneration"] = d["metadata"]["generation"]
                await self.write_status(d)
            return
        rs_list = await self.claim_replica_sets(d)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self.get_all_rss_and_sync_revision(d, rs_list, False)
            await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)
            return
        await self.check_paused_conditions(d)
        if d["spec"].get("paused") or await self.is_scaling_event(d, rs_list):
            await self.sync_scaling(d, rs_list)
            return
        if ((d["spec"].get("strategy") or {}).get("type")) == "Recreate":
            await self.rollout_recreate(d, rs_list, self.pod_map(d, rs_list))
        else:
            await self.rollout_rolling(d, rs_list)

    async def check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        status = d["status"]
        cond = ds.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == ds.TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == ds.PAUSED
        now = self.wall()
        if d["spec"].get("paused") and not paused_cond:
            ds.set_condition(status, ds.new_condition("Progressing", "Unknown", ds.PAUSED,
                                                      "Deployment is paused", now))
        elif not d["spec"].get("paused") and paused_cond:
            ds.set_condition(status, ds.new_condition("Progressing", "Unknown", ds.RESUMED,
                                                      "Deployment is resumed", now))
        else:
            return
        await self.write_status(d)

    async def claim_replica_sets(self, d: Obj) -> list[Obj]:
        """The ReplicaSets this Deployment owns and selects, after adopting and releasing."""
        meta = d["metadata"]
        ns = meta.get("namespace", "")
        sel = selector_from_label_selector(d["spec"].get("selector"))
        deleting = bool(meta.get("deletionTimestamp"))
        owned: list[Obj] = []
        for rs in self.sets.by_index(pc.CONTROLLER_UID_INDEX, meta["uid"]):
            if rs["metadata"].get("namespace") != ns:
                continue
            if selector_matches(sel, rs):
                owned.append(rs)
            elif not deleting and not rs["metadata"].get("deletionTimestamp"):
                await self._patch_rs(pc.release_patch(d, rs), rs)
        orphans = [rs for rs in self.sets.by_index(pc.ORPHANS_INDEX, ns)
                   if selector_matches(sel, rs) and not rs["metadata"].get("deletionTimestamp")]
        if orphans and not deleting:
            fresh = await self.client.get(DEPLOYMENTS, meta["name"], ns)
            if fresh["metadata"].get("uid") != meta["uid"] or \
                    fresh["metadata"].get("deletionTimestamp"):
                raise StatusError(409, "Conflict", f"{ns}/{meta['name']} is gone or going")
            for rs in orphans:
                adopted = await self._patch_rs(pc.adopt_patch(_owner(d), rs), rs)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _patch_rs(self, patch: Obj, rs: Obj) -> Obj | None:
        try:
            return await self.client.patch(REPLICASETS, rs["metadata"]["name"], patch,
                                           rs["metadata"].get("namespace"), "strategic")
        except StatusError as e:
            if e.code in (404, 422):
                return None
            raise

    def pod_map(self, d: Obj, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        """The Deployment's pods by the uid of the ReplicaSet that controls them."""
        uids = {rs["metadata"]["uid"] for rs in rs_list}
        out: dict[str, list[Obj]] = {uid: [] for uid in uids}
        sel = selector_from_label_selector(d["spec"].get("selector"))
        for uid in uids:
            for pod in self.pods.by_index(pc.CONTROLLER_UID_INDEX, uid):
                if selector_matches(sel, pod):
                    out[uid].append(pod)
        return out

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))
