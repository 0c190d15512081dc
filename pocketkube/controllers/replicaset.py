"""The ReplicaSet and ReplicationController controllers (kube's `pkg/controller/replicaset`;
the ReplicationController manager is the same controller over another kind).

For each set it claims the active pods its selector matches (adopting orphans, releasing owned
pods whose labels stopped matching), creates pods from the template up to spec.replicas in
slow-start batches, deletes the extras in kube's preference order, and reports status
(replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration and a
ReplicaFailure condition when creating or deleting fails). Expectations keep a lagging pod cache
from causing a second round of creations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import key_of
from pocketkube.controllers import podcontrol as pc
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.replicaset_util import (
    REPLICASET,
    REPLICATION_CONTROLLER,
    SetKind,
    calculate_status,
    is_pod_active,
    is_pod_ready,
    pods_to_delete,
    selector_matches,
    status_patch,
)

Obj = dict[str, Any]
BURST_REPLICAS = 500  # kube's --replicaset-burst-replicas default


def _pod_key(pod: Obj) -> str:
    return key_of(pod)


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 5

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: Any = None, kind: SetKind = REPLICASET,
                 wall: Callable[[], float] | None = None) -> None:
        super().__init__(client, informers, clock)
        self.kind = kind
        self.recorder = recorder or EventRecorder(client, kind.component)
        self.pod_control = pc.PodControl(client, self.recorder)
        self.expectations = pc.Expectations(self.clock)
        self.wall = wall or pc.wall_clock(self.clock)
        self.burst = BURST_REPLICAS
        self.sets = informers.informer(kind.resource)
        self.pods = informers.informer(pc.PODS)
        pc.add_owner_indexes(self.pods)
        pc.add_owner_indexes(self.sets)
        self.sets.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                     delete=self._set_deleted)
        self.pods.on(add=self._pod_added, update=self._pod_updated, delete=self._pod_deleted)

    # -- event handlers ---------------------------------------------------------------------------
    def _set_deleted(self, obj: Obj) -> None:
        key = key_of(obj)
        self.expectations.delete(key)
        self.queue.add(key)

    def _resolve(self, ns: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != self.kind.kind:
            return None
        owner = self.sets.get(f"{ns}/{ref.get('name')}")
        return owner if owner is not None and owner["metadata"].get("uid") == ref.get("uid") \
            else None

    def _matching_sets(self, pod: Obj) -> list[Obj]:
        ns = pod["metadata"].get("namespace", "")
        return [s for s in self.sets.by_index(pc.NAMESPACE_INDEX, ns)
                if selector_matches(self.kind.selector(s), pod)]

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = pc.controller_of(pod)
        if ref is not None:
            owner = self._resolve(pod["metadata"].get("namespace", ""), ref)
            if owner is not None:
                key = key_of(owner)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for s in self._matching_sets(pod):
            self.enqueue(s)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        label_changed = old["metadata"].get("labels") != cur["metadata"].get("labels")
        if cur["metadata"].get("deletionTimestamp"):
            self._pod_deleted(cur)
            if label_changed:
                self._pod_deleted(old)
            return
        ns = cur["metadata"].get("namespace", "")
        cur_ref, old_ref = pc.controller_of(cur), pc.controller_of(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            prev = self._resolve(ns, old_ref)
            if prev is not None:
                self.enqueue(prev)
        if cur_ref is not None:
            owner = self._resolve(ns, cur_ref)
            if owner is None:
                return
            self.enqueue(owner)
            # Availability after minReadySeconds changes no pod, so look again then.
            min_ready = (owner.get("spec") or {}).get("minReadySeconds", 0) or 0
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                self.queue.add_after(key_of(owner), min_ready + 1)
            return
        if label_changed or ref_changed:
            for s in self._matching_sets(cur):
                self.enqueue(s)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._resolve(pod["metadata"].get("namespace", ""), pc.controller_of(pod))
        if owner is None:
            return
        key = key_of(owner)
        self.expectations.deletion_observed(key, _pod_key(pod))
        self.queue.add(key)

    # -- sync -------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        rs = self.sets.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        pods = await self.claim_pods(rs)
        err: BaseException | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self.manage_replicas(key, rs, pods)
            except (StatusError, ValueError) as e:
                err = e
        status = calculate_status(rs, pods, err, self.wall())
        await self._update_status(rs, status)
        spec = rs.get("spec") or {}
        min_ready = spec.get("minReadySeconds", 0) or 0
        if err is None and min_ready > 0 and \
                status["readyReplicas"] == spec.get("replicas", 1) and \
                status["availableReplicas"] != spec.get("replicas", 1):
            self.queue.add_after(key, min_ready)
        if err is not None:
            raise err

    async def claim_pods(self, rs: Obj) -> list[Obj]:
        """The active pods this set owns and selects, after adopting and releasing."""
        meta = rs["metadata"]
        sel = self.kind.selector(rs)
        deleting = bool(meta.get("deletionTimestamp"))
        claimed: list[Obj] = []
        for pod in self.pods.by_index(pc.CONTROLLER_UID_INDEX, meta["uid"]):
            if pod["metadata"].get("namespace") != meta.get("namespace") or \
                    not is_pod_active(pod):
                continue
            if selector_matches(sel, pod):
                claimed.append(pod)
            elif not deleting:
                await self._patch_owner(pc.release_patch(rs, pod), pod)
        orphans = [p for p in self.pods.by_index(pc.ORPHANS_INDEX, meta.get("namespace", ""))
                   if is_pod_active(p) and selector_matches(sel, p)]
        if orphans and not deleting:
            await self._can_adopt(rs)
            for pod in orphans:
                adopted = await self._patch_owner(pc.adopt_patch(self._owner(rs), pod), pod)
                if adopted is not None:
                    claimed.append(adopted)
        return claimed

    def _owner(self, rs: Obj) -> Obj:
        return {**rs, "apiVersion": self.kind.api_version, "kind": self.kind.kind}

    async def _can_adopt(self, rs: Obj) -> None:
        """RecheckDeletionTimestamp: adopt only for a set that still exists and is not being
        deleted, according to the API server rather than the cache."""
        meta = rs["metadata"]
        fresh = await self.client.get(self.kind.resource, meta["name"], meta.get("namespace"))
        if fresh["metadata"].get("uid") != meta["uid"]:
            raise StatusError(409, "Conflict",
                              f"original {meta.get('namespace')}/{meta['name']} is gone: got uid "
                              f"{fresh['metadata'].get('uid')}, wanted {meta['uid']}")
        if fresh["metadata"].get("deletionTimestamp"):
            raise StatusError(409, "Conflict",
                              f"{meta.get('namespace')}/{meta['name']} has just been deleted at "
                              f"{fresh['metadata']['deletionTimestamp']}")

    async def _patch_owner(self, patch: Obj, pod: Obj) -> Obj | None:
        try:
            return await self.client.patch(pc.PODS, pod["metadata"]["name"], patch,
                                           pod["metadata"].get("namespace"), "strategic")
        except StatusError as e:
            if e.code in (404, 422):  # gone, or already deleted/owned: nothing to claim
                return None
            raise

    async def manage_replicas(self, key: str, rs: Obj, pods: list[Obj]) -> None:
        spec = rs.get("spec") or {}
        diff = len(pods) - spec.get("replicas", 1)
        if diff < 0:
            count = min(-diff, self.burst)
            self.expectations.expect_creations(key, count)
            owner = self._owner(rs)
            ref = pc.controller_ref(owner)
            template = spec.get("template") or {}

            async def create() -> None:
                try:
                    await self.pod_control.create(owner, template, ref)
                except StatusError as e:
                    if not pc.namespace_terminating(e):
                        raise

            done, err = await pc.slow_start_batch(count, 1, create)
            if count - done > 0:
                self.expectations.creation_observed(key, count - done)
            if err is not None:
                raise err
        elif diff > 0:
            count = min(diff, self.burst)
            victims = pods_to_delete(pods, self._related_pods(rs), count, self.wall())
            self.expectations.expect_deletions(key, [_pod_key(p) for p in victims])
            owner = self._owner(rs)

            async def delete(pod: Obj) -> None:
                try:
                    await self.pod_control.delete(owner, pod["metadata"]["namespace"],
                                                  pod["metadata"]["name"])
                except StatusError as e:
                    self.expectations.deletion_observed(key, _pod_key(pod))
                    if e.code != 404:
                        raise

            results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
            errs = [r for r in results if isinstance(r, BaseException)]
            if errs:
                raise errs[0]

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Pods of every set with the same controller as `rs` (its siblings in a Deployment)."""
        ref = pc.controller_of(rs)
        if ref is None:
            return []
        ns = rs["metadata"].get("namespace", "")
        siblings = [s for s in self.sets.by_index(pc.CONTROLLER_UID_INDEX, ref["uid"])
                    if s["metadata"].get("namespace") == ns]
        seen: set[str] = set()
        out: list[Obj] = []
        candidates = self.pods.by_index(pc.NAMESPACE_INDEX, ns)
        for s in siblings:
            sel = self.kind.selector(s)
            for p in candidates:
                uid = p["metadata"].get("uid", "")
                if uid not in seen and selector_matches(sel, p):
                    seen.add(uid)
                    out.append(p)
        return out

    async def _update_status(self, rs: Obj, status: Obj) -> None:
        body = status_patch(rs.get("status") or {},
                            dict(status, observedGeneration=rs["metadata"].get("generation", 0)),
                            always=("replicas",))
        if body is None:
            return
        meta = rs["metadata"]
        try:
            await self.client.patch(self.kind.resource, meta["name"], {"status": body},
                                    meta.get("namespace"), subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise


class ReplicationControllerController(ReplicaSetController):
    """kube's ReplicationManager: the ReplicaSet controller over ReplicationControllers."""

    name = "replicationcontroller"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: Any = None, wall: Callable[[], float] | None = None) -> None:
        super().__init__(client, informers, clock, recorder, REPLICATION_CONTROLLER, wall)
