"""The garbage collector (kube's `pkg/controller/garbagecollector`): deletes objects whose
owners are gone and carries out the deletion policies the API server records as finalizers.

- Background (the default): once an owner is gone — by uid: a new object with the owner's
  name is a different owner — each dependent is deleted, in turn collecting its own dependents.
- Foreground: an owner with a deletionTimestamp and the `foregroundDeletion` finalizer has its
  dependents deleted (those with dependents of their own in the foreground too); once no
  dependent with `blockOwnerDeletion: true` is left, the finalizer is removed and the API
  server deletes the owner.
- Orphan: an owner with the `orphan` finalizer has the ownerReferences to it removed from its
  dependents, then the finalizer is removed.

The graph (gc_graph.py) is fed by the shared informers of the kinds that own or are owned in
practice; an owner of another kind is looked up through the API and, as it is not watched,
its dependents are checked again every RECHECK seconds. Work items are "delete:<uid>" and
"orphan:<uid>"; every decision re-reads the object from the API first, as kube does, so a stale
cache never deletes an object that was just adopted.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.resources import TABLE, Resource
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory
from pocketkube.controllers.gc_graph import FOREGROUND, ORPHAN, GNode, Graph, decide

Obj = dict[str, Any]
RECHECK = 60.0

# What the collector watches (events are never owners nor collected, as in kube).
MONITORED = [("", "pods"), ("apps", "replicasets"), ("apps", "deployments"),
             ("apps", "statefulsets"), ("apps", "daemonsets"), ("batch", "jobs"),
             ("batch", "cronjobs"), ("apps", "controllerrevisions"),
             ("", "replicationcontrollers"), ("", "services"), ("", "endpoints"),
             ("discovery.k8s.io", "endpointslices"), ("", "configmaps"), ("", "secrets"),
             ("", "serviceaccounts"), ("", "persistentvolumeclaims"), ("", "nodes"),
             ("coordination.k8s.io", "leases")]


def _by_kind() -> dict[tuple[str, str], Resource]:
    out: dict[tuple[str, str], Resource] = {}
    for r in TABLE.resources:
        if r.stored and not r.storage_version and "get" in r.verbs:
            out.setdefault((r.group, r.kind), r)
    return out


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 4

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None) -> None:
        super().__init__(client, informers, clock)
        self.graph = Graph()
        self.kinds = _by_kind()
        self.watched: set[tuple[str, str]] = set()
        self.resources: dict[str, Resource] = {}  # uid -> its resource, for observed objects
        for group, plural in MONITORED:
            try:
                r = resource(group, plural)
            except KeyError:
                continue
            self.watched.add((r.group, r.kind))
            inf = informers.informer(r)
            inf.on(add=lambda o, r=r: self._observe(r, o),
                   update=lambda old, new, r=r: self._observe(r, new, old),
                   delete=self._forget)

    # -- graph maintenance (handlers: no I/O) ---------------------------------------------------
    def _observe(self, r: Resource, obj: Obj, old: Obj | None = None) -> None:
        if old is not None and _same_for_gc(old, obj):
            return
        if old is not None and old["metadata"].get("uid") != obj["metadata"].get("uid"):
            self._forget(old)  # replaced while the watch was down: the old one is gone
        self.resources[obj["metadata"].get("uid", "")] = r
        obj = {**obj, "apiVersion": r.group_version, "kind": r.kind}
        self._act(self.graph.observe(obj))

    def _forget(self, obj: Obj) -> None:
        self.resources.pop((obj.get("metadata") or {}).get("uid", ""), None)
        self._act(self.graph.forget(obj))

    def _act(self, actions: list[tuple[str, str]]) -> None:
        for verb, uid in actions:
            self.queue.add(f"{verb}:{uid}")

    # -- sync -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        verb, _, uid = key.partition(":")
        node = self.graph.observed(uid)
        r = self.resources.get(uid)
        if node is None or r is None:
            return
        if verb == "delete" and self._settled(node):
            return
        latest = await self._latest(r, node)
        if latest is None:
            self.resources.pop(uid, None)
            self._act(self.graph.remove(uid))
            return
        if verb == "orphan":
            await self._orphan(r, node, latest)
        else:
            await self._attempt_to_delete(r, node, latest)

    def _settled(self, node: GNode) -> bool:
        """Whether the graph alone shows there is nothing to do (every owner is there and
        none is deleted in the foreground), so the common case costs no API read."""
        if node.deleting:
            return not node.deleting_dependents
        for ref in node.owners:
            owner = self.graph.observed(ref["uid"])
            if owner is None or owner.deleting_dependents:
                return False
        return True

    async def _latest(self, r: Resource, node: GNode) -> Obj | None:
        try:
            obj = await self.client.get(r, node.name, node.namespace)
        except StatusError as e:
            if e.code == 404:
                return None
            raise
        return obj if obj["metadata"].get("uid") == node.uid else None

    async def _attempt_to_delete(self, r: Resource, node: GNode, latest: Obj) -> None:
        meta = latest["metadata"]
        fins = meta.get("finalizers") or []
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting and FOREGROUND in fins:
            await self._deleting_dependents(r, node, latest)
            return
        if deleting:
            return
        refs = [ref for ref in meta.get("ownerReferences") or [] if ref.get("uid")]
        state: dict[str, str] = {}
        recheck = False
        for ref in refs:
            state[ref["uid"]], unwatched = await self._owner_state(ref, node)
            recheck = recheck or (unwatched and state[ref["uid"]] != "absent")
        action, arg = decide(node, refs, state, ORPHAN in fins, FOREGROUND in fins)
        if recheck:
            self.queue.add_after(f"delete:{node.uid}", RECHECK)
        if action == "unref":
            await self._remove_refs(r, latest, set(arg))
        elif action == "delete":
            self.log.info("deleting %s %s/%s (owners gone), propagation %s", node.kind,
                          node.namespace or "", node.name, arg)
            await self._delete(r, node, arg)

    async def _owner_state(self, ref: Obj, dep: GNode) -> tuple[str, bool]:
        """(state of the owner, whether its kind is unwatched)."""
        ouid = ref["uid"]
        if ouid in self.graph.absent:
            return "absent", False
        owner = self.graph.observed(ouid)
        if owner is not None:
            return ("deleting-dependents" if owner.deleting_dependents else "present"), False
        key = (_group(ref.get("apiVersion", "")), ref.get("kind", ""))
        r = self.kinds.get(key)
        if r is None:
            self.log.warning("ownerReference of %s/%s to unknown kind %s %s is kept",
                             dep.namespace or "", dep.name, ref.get("apiVersion"),
                             ref.get("kind"))
            return "present", True
        if r.namespaced and not dep.namespace:
            return "absent", False  # a cluster-scoped object cannot have a namespaced owner
        try:
            owner_obj = await self.client.get(r, ref.get("name", ""),
                                              dep.namespace if r.namespaced else None)
        except StatusError as e:
            if e.code != 404:
                raise
            self.graph.absent.add(ouid)
            return "absent", key not in self.watched
        meta = owner_obj["metadata"]
        if meta.get("uid") != ouid:
            self.graph.absent.add(ouid)
            return "absent", key not in self.watched
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            return "deleting-dependents", key not in self.watched
        return "present", key not in self.watched

    async def _deleting_dependents(self, r: Resource, node: GNode, latest: Obj) -> None:
        blocking = self.graph.blocking_dependents(node.uid)
        if not blocking:
            await self._remove_finalizer(r, latest, FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting:
                self.queue.add(f"delete:{dep.uid}")

    async def _orphan(self, r: Resource, node: GNode, latest: Obj) -> None:
        meta = latest["metadata"]
        if not meta.get("deletionTimestamp") or ORPHAN not in (meta.get("finalizers") or []):
            return
        for dep in self.graph.dependents(node.uid):
            dr = self.resources.get(dep.uid)
            if dr is None:
                continue
            obj = await self._latest(dr, dep)
            if obj is not None:
                await self._remove_refs(dr, obj, {node.uid})
        await self._remove_finalizer(r, latest, ORPHAN)

    # -- writes ---------------------------------------------------------------------------------
    async def _delete(self, r: Resource, node: GNode, policy: str) -> None:
        try:
            await self.client.delete(r, node.name, node.namespace, propagationPolicy=policy,
                                     preconditions={"uid": node.uid})
        except StatusError as e:
            if e.code != 404:  # a 409 (replaced under us) is retried from fresh state
                raise

    async def _remove_refs(self, r: Resource, obj: Obj, uids: set[str]) -> None:
        meta = obj["metadata"]
        keep = [ref for ref in meta.get("ownerReferences") or [] if ref.get("uid") not in uids]
        if len(keep) == len(meta.get("ownerReferences") or []):
            return
        patch = {"metadata": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
                              "ownerReferences": keep or None}}
        await self._patch(r, obj, patch)

    async def _remove_finalizer(self, r: Resource, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]
        keep = [f for f in meta.get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
                              "finalizers": keep or None}}
        await self._patch(r, obj, patch)

    async def _patch(self, r: Resource, obj: Obj, patch: Obj) -> None:
        meta = obj["metadata"]
        try:
            await self.client.patch(r, meta["name"], patch, meta.get("namespace"))
        except StatusError as e:
            if e.code != 404:
                raise


def _same_for_gc(old: Obj, new: Obj) -> bool:
    """Whether an update changes nothing the graph holds (most updates: status, leases)."""
    a, b = old.get("metadata") or {}, new.get("metadata") or {}
    return a.get("ownerReferences") == b.get("ownerReferences") and \
        bool(a.get("deletionTimestamp")) == bool(b.get("deletionTimestamp")) and \
        a.get("finalizers") == b.get("finalizers") and a.get("uid") == b.get("uid")
