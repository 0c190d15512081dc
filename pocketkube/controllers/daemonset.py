"""The DaemonSet controller (kube's `pkg/controller/daemon`): one pod on every node the daemon
fits (nodeSelector, required node affinity, taints against its tolerations), each pinned to its
node with a `metadata.name` node-affinity field so the default scheduler binds it; rolling
updates within maxUnavailable / maxSurge, or OnDelete; ControllerRevisions of the template; and
the status `kubectl rollout status` reads.

Creations and deletions are guarded by expectations: until the pod informer has seen what the
last sync did, a sync only refreshes status, so a cache that is behind never puts a second pod
on a node.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.selectors import selector_from_label_selector
from pocketkube.client.events import EventRecorder
from pocketkube.client.informer import key_of
from pocketkube.client.rest import resource
from pocketkube.controllers import daemonset_update as plan
from pocketkube.controllers import daemonset_util as du
from pocketkube.controllers import history as hist
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.statefulset_util import WallClock

Obj = dict[str, Any]
DAEMONSETS = resource("apps", "daemonsets")
PODS = resource("", "pods")
NODES = resource("", "nodes")
BURST = 250  # kube's BurstReplicas: pods created or deleted per sync at most
FAILED_BACKOFF, FAILED_BACKOFF_MAX = 1.0, 900.0
_ALWAYS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
           "numberReady")


class DaemonSetController(Controller):
    name = "daemonset"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.recorder = recorder or EventRecorder(client, "daemonset-controller")
        self.wall = WallClock(self.clock)
        self.expectations = du.Expectations(self.clock.now)
        self._failed: dict[str, tuple[float, float]] = {}  # ds uid/node -> (delay, last kill)
        self.sets = informers.informer(DAEMONSETS)
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self.revisions = informers.informer(hist.REVISIONS)
        for inf in (self.sets, self.pods, self.revisions):
            inf.add_index(hist.NAMESPACE_INDEX, hist.namespace_of)
        self.sets.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                     delete=self._set_deleted)
        self.pods.on(add=self._pod_added, update=self._pod_updated, delete=self._pod_deleted)
        self.nodes.on(add=lambda n: self._all(), update=self._node_updated,
                      delete=lambda n: self._all())
        self.revisions.on(add=self._owner, update=lambda old, new: self._owner(new),
                          delete=self._owner)

    # -- event handlers ------------------------------------------------------------------------
    def _all(self) -> None:
        for ds in self.sets.list():
            self.enqueue(ds)

    def _set_deleted(self, ds: Obj) -> None:
        self.expectations.forget(key_of(ds))

    def _owner_key(self, obj: Obj) -> str | None:
        ref = hist.controller_ref(obj)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        return f"{obj['metadata'].get('namespace')}/{ref['name']}"

    def _owner(self, obj: Obj) -> None:
        key = self._owner_key(obj)
        if key is not None:
            self.queue.add(key)
        elif hist.controller_ref(obj) is None:
            ns = obj["metadata"].get("namespace") or ""
            for ds in self.sets.by_index(hist.NAMESPACE_INDEX, ns):
                if selector_from_label_selector(ds["spec"].get("selector")).matches(
                        obj["metadata"].get("labels")):
                    self.enqueue(ds)

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
        self._owner(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        key = self._owner_key(new)
        if key is not None and new["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(key, key_of(new))
        self._owner(new)
        if hist.controller_ref(old) != hist.controller_ref(new):
            self._owner(old)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, key_of(pod))
        self._owner(pod)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("labels") != new["metadata"].get("labels") or \
                (old.get("spec") or {}) != (new.get("spec") or {}):
            self._all()

    # -- sync ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        ds = {**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}
        ns = ds["metadata"]["namespace"]
        selector = selector_from_label_selector(ds["spec"].get("selector"))
        nodes = sorted(self.nodes.list(), key=lambda n: n["metadata"]["name"])
        revisions = await hist.claim(self.client, ds, "apps/v1", hist.REVISIONS,
                                     self.revisions.by_index(hist.NAMESPACE_INDEX, ns), selector)
        pods = await hist.claim(self.client, ds, "apps/v1", PODS, [
            p for p in self.pods.by_index(hist.NAMESPACE_INDEX, ns)
            if not (p["metadata"].get("deletionTimestamp")
                    and (p.get("status") or {}).get("phase") in ("Failed", "Succeeded"))],
            selector)
        cur, old = await self._history(ds, revisions)
        hash_ = cur["metadata"]["labels"][hist.HASH_LABEL]
        now = self.wall.now()
        if not self.expectations.satisfied(key):
            await self._write_status(key, ds, nodes, pods, hash_, observed=False)
            return
        by_node = plan.pods_by_node(pods)
        create, delete, failed = plan.manage_plan(
            ds, nodes, by_node, hash_, lambda node: self._may_kill_failed(key, ds, node), now)
        for pod in failed:
            self.recorder.record(ds, "Warning", "FailedDaemonPod",
                                 f"Found failed daemon pod {ns}/{pod['metadata']['name']} on "
                                 f"node {du.target_node(pod)}, will try to kill it")
        try:
            await self._sync_nodes(key, ds, delete, create, hash_)
            strategy = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
            if self.expectations.satisfied(key) and strategy == "RollingUpdate":
                delete, create = plan.rolling_update_plan(ds, nodes, by_node, hash_, now)
                await self._sync_nodes(key, ds, delete, create, hash_)
            await self._cleanup_history(ds, old, pods)
        finally:
            await self._write_status(key, ds, nodes, pods, hash_, observed=True)

    def _may_kill_failed(self, key: str, ds: Obj, node: str) -> bool:
        """Back off between killing failed pods on one node, so a daemon the node keeps
        rejecting does not hot-loop."""
        bkey = f"{ds['metadata']['uid']}/{node}"
        now = self.clock.now()
        delay, last = self._failed.get(bkey, (0.0, -1e18))
        if now - last < delay:
            self.queue.add_after(key, delay - (now - last))
            return False
        fresh = now - last > 2 * FAILED_BACKOFF_MAX
        self._failed[bkey] = (FAILED_BACKOFF if fresh else min(delay * 2, FAILED_BACKOFF_MAX),
                              now)
        return True

    async def _sync_nodes(self, key: str, ds: Obj, delete: list[Obj], create: list[str],
                          hash_: str) -> None:
        create, delete = create[:BURST], delete[:BURST]
        self.expectations.expect(key, len(create), {key_of(p) for p in delete})
        template = du.pod_template(ds, hash_)
        errors: list[BaseException] = []
        batch, done = 1, 0
        while done < len(create) and not errors:
            # Slow start: a failing create (quota, admission) fails a batch, not all of them.
            nodes = create[done:done + batch]
            results = await asyncio.gather(
                *(self._create(ds, du.pod_for_node(ds, template, n)) for n in nodes),
                return_exceptions=True)
            errors += [r for r in results if isinstance(r, BaseException)]
            self.expectations.lower_adds(key, len([r for r in results
                                                   if isinstance(r, BaseException)]))
            done += len(nodes)
            batch *= 2
        self.expectations.lower_adds(key, len(create) - done)
        results = await asyncio.gather(*(self._delete(key, ds, p) for p in delete),
                                       return_exceptions=True)
        errors += [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _create(self, ds: Obj, pod: Obj) -> None:
        try:
            created = await self.client.create(PODS, pod)
        except StatusError as e:
            self.recorder.record(ds, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.recorder.record(ds, "Normal", "SuccessfulCreate",
                             f"Created pod: {created['metadata']['name']}")

    async def _delete(self, key: str, ds: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"])
        except StatusError as e:
            self.expectations.deletion_observed(key, key_of(pod))
            if e.code == 404:
                return
            self.recorder.record(ds, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            raise
        self.recorder.record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # -- history -----------------------------------------------------------------------------------
    async def _history(self, ds: Obj, revisions: list[Obj]) -> tuple[Obj, list[Obj]]:
        """The revision of the current template (created if missing) and the older ones
        (constructHistory)."""
        want = hist.template_patch(ds)
        current, old = [], []
        for rev in revisions:
            if hist.HASH_LABEL not in (rev["metadata"].get("labels") or {}):
                rev = await self.client.patch(hist.REVISIONS, rev["metadata"]["name"], {
                    "metadata": {"labels": {hist.HASH_LABEL: rev["metadata"]["name"]}}},
                    rev["metadata"]["namespace"])
            (current if hist.canonical(rev.get("data")) == hist.canonical(want)
             else old).append(rev)
        number = max((r.get("revision", 0) for r in old), default=0) + 1
        if not current:
            return await self._snapshot(ds, number), old
        current = hist.sort_revisions(current)
        keep = current[-1]
        for dup in current[:-1]:
            await self._drop_duplicate(ds, dup, keep)
        return await hist.set_revision_number(self.client, keep, max(
            number, keep.get("revision", 0))), old

    async def _drop_duplicate(self, ds: Obj, dup: Obj, keep: Obj) -> None:
        """Point pods of a duplicate revision at the kept one, then delete the duplicate."""
        old_hash = dup["metadata"]["labels"][hist.HASH_LABEL]
        new_hash = keep["metadata"]["labels"][hist.HASH_LABEL]
        for pod in self.pods.by_index(hist.NAMESPACE_INDEX, ds["metadata"]["namespace"]):
            if hist.owned_by(pod, ds) and \
                    (pod["metadata"].get("labels") or {}).get(hist.HASH_LABEL) == old_hash:
                await self.client.patch(PODS, pod["metadata"]["name"], {"metadata": {
                    "labels": {hist.HASH_LABEL: new_hash}}}, pod["metadata"]["namespace"])
        try:
            await self.client.delete(hist.REVISIONS, dup["metadata"]["name"],
                                     dup["metadata"]["namespace"])
        except StatusError as e:
            if e.code != 404:
                raise

    async def _snapshot(self, ds: Obj, number: int) -> Obj:
        collisions = (ds.get("status") or {}).get("collisionCount")
        rev = hist.new_revision(ds, "apps/v1", "DaemonSet", number, collisions,
                                hist.hash_revision(ds["spec"]["template"], collisions))
        try:
            return await self.client.create(hist.REVISIONS, rev)
        except StatusError as e:
            if not (e.code == 409 and e.reason == "AlreadyExists"):
                raise
        existing = await self.client.get(hist.REVISIONS, rev["metadata"]["name"],
                                         rev["metadata"]["namespace"])
        if hist.equal_revision(existing, rev):
            return existing
        # A different template hashed to the same name: try the next name on the next sync.
        await self.client.patch(DAEMONSETS, ds["metadata"]["name"], {"status": {
            "collisionCount": (collisions or 0) + 1}}, ds["metadata"]["namespace"],
            subresource="status")
        raise RuntimeError(f"found a hash collision for DaemonSet {ds['metadata']['name']}")

    async def _cleanup_history(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        limit = ds["spec"].get("revisionHistoryLimit")
        to_kill = len(old) - (10 if limit is None else limit)
        if to_kill <= 0:
            return
        live = {(p["metadata"].get("labels") or {}).get(hist.HASH_LABEL) for p in pods}
        for rev in hist.sort_revisions(old):
            if to_kill <= 0:
                break
            if rev["metadata"]["labels"].get(hist.HASH_LABEL) in live:
                continue
            try:
                await self.client.delete(hist.REVISIONS, rev["metadata"]["name"],
                                         rev["metadata"]["namespace"])
            except StatusError as e:
                if e.code != 404:
                    raise
            to_kill -= 1

    # -- status ------------------------------------------------------------------------------------
    async def _write_status(self, key: str, ds: Obj, nodes: list[Obj], pods: list[Obj],
                            hash_: str, observed: bool) -> None:
        counts = plan.compute_status(ds, nodes, plan.pods_by_node(pods), hash_, self.wall.now())
        old = ds.get("status") or {}
        status: Obj = {k: v if v or k in _ALWAYS else None for k, v in counts.items()}
        gen = ds["metadata"].get("generation")
        if observed and gen and gen != old.get("observedGeneration"):
            status["observedGeneration"] = gen
        if any(old.get(k) != v for k, v in status.items()):
            # A merge patch: a cache behind our previous write is no conflict.
            await self.client.patch(DAEMONSETS, ds["metadata"]["name"], {"status": status},
                                    ds["metadata"]["namespace"], subresource="status")
        min_ready = ds["spec"].get("minReadySeconds") or 0
        if min_ready and counts["numberReady"] != counts["numberAvailable"]:
            self.queue.add_after(key, min_ready)
