"""The garbage collector's dependency graph, as kube's `garbagecollector/graph_builder.go`
keeps it: one node per object uid, edges from each ownerReference, and the transitions that
need the collector's attention.

Informer events go in (`observe`, `forget`); what comes out is the set of work items they
make necessary: ("delete", uid) — check whether that object has lost its owners, or, for an
owner being deleted in the foreground, whether its blocking dependents are gone — and
("orphan", uid) — an owner deleted with the orphan policy whose dependents must be released.
Owners referenced but not (yet) observed are kept as virtual nodes so their dependents can be
found when they turn out to be absent. Pure data: no I/O, so the decisions can be unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Action = tuple[str, str]  # ("delete" | "orphan", uid)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


@dataclass
class GNode:
    uid: str
    api_version: str = ""
    kind: str = ""
    namespace: str | None = None
    name: str = ""
    owners: list[Obj] = field(default_factory=list)  # the object's ownerReferences
    dependents: set[str] = field(default_factory=set)
    deleting: bool = False  # has a deletionTimestamp
    deleting_dependents: bool = False  # deleting with the foregroundDeletion finalizer
    orphaning: bool = False  # deleting with the orphan finalizer
    observed: bool = False  # False: only known as someone's owner (a virtual node)

    def owner_ref(self, owner_uid: str) -> Obj | None:
        return next((r for r in self.owners if r.get("uid") == owner_uid), None)

    def blocks(self, owner_uid: str) -> bool:
        ref = self.owner_ref(owner_uid)
        return bool(ref and ref.get("blockOwnerDeletion"))


def _flags(obj: Obj) -> tuple[bool, bool, bool]:
    meta = obj.get("metadata") or {}
    deleting = bool(meta.get("deletionTimestamp"))
    fins = meta.get("finalizers") or []
    return deleting, deleting and FOREGROUND in fins, deleting and ORPHAN in fins


class Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, GNode] = {}
        # Owners known to be gone (uids are never reused), so dependents need no lookup.
        self.absent: set[str] = set()

    def get(self, uid: str) -> GNode | None:
        return self.nodes.get(uid)

    def observed(self, uid: str) -> GNode | None:
        n = self.nodes.get(uid)
        return n if n is not None and n.observed else None

    # -- events ---------------------------------------------------------------------------------
    def observe(self, obj: Obj) -> list[Action]:
        """An object was added or changed; the work items this makes necessary."""
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return []
        actions: list[Action] = []
        node = self.nodes.get(uid)
        if node is None:
            node = self.nodes[uid] = GNode(uid)
        old_owners = node.owners if node.observed else []
        was_deleting_dependents = node.deleting_dependents
        node.api_version, node.kind = obj.get("apiVersion", ""), obj.get("kind", "")
        node.namespace, node.name = meta.get("namespace"), meta.get("name", "")
        node.owners = [r for r in meta.get("ownerReferences") or [] if r.get("uid")]
        node.deleting, node.deleting_dependents, node.orphaning = _flags(obj)
        node.observed = True
        self.absent.discard(uid)

        old = {r["uid"]: r for r in old_owners}
        new = {r["uid"]: r for r in node.owners}
        for ouid, ref in old.items():
            gone = ouid not in new
            unblocked = not gone and ref.get("blockOwnerDeletion") and \
                not new[ouid].get("blockOwnerDeletion")
            owner = self.nodes.get(ouid)
            if gone and owner is not None:
                owner.dependents.discard(uid)
                self._drop_if_unneeded(owner)
            if (gone or unblocked) and owner is not None and owner.deleting_dependents:
                actions.append(("delete", ouid))  # one less dependent blocking it
        for ouid in new:
            owner = self.nodes.get(ouid)
            if owner is None:
                owner = self.nodes[ouid] = GNode(ouid)
            owner.dependents.add(uid)
            if ouid not in old and (not owner.observed or ouid in self.absent):
                actions.append(("delete", uid))  # is that owner there at all?
            if owner.deleting_dependents:
                actions.append(("delete", uid))  # created under an owner deleted in foreground
        if node.orphaning:
            actions.append(("orphan", uid))
        if node.deleting_dependents:
            actions.append(("delete", uid))
            if not was_deleting_dependents:
                actions.extend(("delete", d) for d in sorted(node.dependents))
        return _unique(actions)

    def forget(self, obj: Obj) -> list[Action]:
        """An object was deleted: its dependents may have lost their last owner, and an owner
        waiting for it in the foreground may be done."""
        uid = (obj.get("metadata") or {}).get("uid")
        node = self.nodes.get(uid or "")
        if node is None:
            return []
        return self.remove(node.uid)

    def remove(self, uid: str) -> list[Action]:
        node = self.nodes.get(uid)
        if node is None:
            return []
        actions: list[Action] = [("delete", d) for d in sorted(node.dependents)]
        self.absent.add(uid)
        for ref in node.owners:
            owner = self.nodes.get(ref["uid"])
            if owner is None:
                continue
            owner.dependents.discard(uid)
            if owner.deleting_dependents:
                actions.append(("delete", owner.uid))
            self._drop_if_unneeded(owner)
        node.observed = False
        node.owners = []
        node.deleting = node.deleting_dependents = node.orphaning = False
        self._drop_if_unneeded(node)
        return _unique(actions)

    def _drop_if_unneeded(self, node: GNode) -> None:
        if not node.observed and not node.dependents:
            self.nodes.pop(node.uid, None)

    # -- queries --------------------------------------------------------------------------------
    def dependents(self, uid: str) -> list[GNode]:
        node = self.nodes.get(uid)
        if node is None:
            return []
        return [self.nodes[d] for d in sorted(node.dependents)
                if d in self.nodes and self.nodes[d].observed]

    def blocking_dependents(self, uid: str) -> list[GNode]:
        """Dependents that hold a foreground deletion of `uid` back."""
        return [d for d in self.dependents(uid) if d.blocks(uid)]


def classify(refs: list[Obj], state: dict[str, str]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """Split ownerReferences into (solid, dangling, waiting for dependents' deletion), given
    each owner uid's state: "present", "absent" or "deleting-dependents"."""
    solid, dangling, waiting = [], [], []
    for ref in refs:
        s = state.get(ref["uid"], "present")
        (dangling if s == "absent" else waiting if s == "deleting-dependents" else solid
         ).append(ref)
    return solid, dangling, waiting


def decide(item: GNode, refs: list[Obj], state: dict[str, str], has_orphan: bool,
           has_foreground: bool) -> tuple[str, Any]:
    """What to do with an object given its owners' states, as kube's attemptToDeleteItem:
    ("none", None), ("unref", [owner uids to remove]) or ("delete", propagation policy)."""
    if not refs:
        return "none", None
    solid, dangling, waiting = classify(refs, state)
    if solid:
        if not dangling and not waiting:
            return "none", None
        return "unref", [r["uid"] for r in dangling + waiting]
    if waiting and item.dependents:
        return "delete", "Foreground"
    if has_orphan:
        return "delete", "Orphan"
    if has_foreground:
        return "delete", "Foreground"
    return "delete", "Background"


def _unique(actions: list[Action]) -> list[Action]:
    return list(dict.fromkeys(actions))
