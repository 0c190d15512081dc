"""Namespaces: kube's `pkg/registry/core/namespace`.

A namespace starts Active with the `kubernetes` finalizer in its spec. Deleting it only marks it
Terminating (deletionTimestamp + phase); the namespace controller empties it and clears the
finalizer through the `finalize` subresource, and then the namespace goes away. The system
namespaces may not be deleted.
"""

from __future__ import annotations

from pocketkube.api import errors
from pocketkube.registry.strategy import Context, Obj, Strategy

IMMORTAL = ("default", "kube-system", "kube-public")


class NamespaceStrategy(Strategy):
    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Active"}

    def prepare_for_create(self, obj: Obj, ctx: Context) -> None:
        super().prepare_for_create(obj, ctx)
        meta = obj["metadata"]
        labels = meta.setdefault("labels", {})
        # The NamespaceDefaultLabelName feature: every namespace carries its own name.
        labels["kubernetes.io/metadata.name"] = meta.get("name", "")
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])

    def prepare_for_update(self, new: Obj, old: Obj, ctx: Context) -> None:
        super().prepare_for_update(new, old, ctx)
        meta = new["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        # spec.finalizers only change through the finalize subresource.
        new["spec"] = old.get("spec", {})

    def grace_period(self, obj: Obj, options: Obj) -> int:
        name = obj["metadata"].get("name", "")
        if name in IMMORTAL:
            raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may not '
                                   f"be deleted")
        return 0

    def prepare_finalize(self, new: Obj, old: Obj) -> Obj:
        """`namespaces/finalize`: only spec.finalizers changes."""
        out = self.copy(old)
        out["spec"] = {"finalizers": list((new.get("spec") or {}).get("finalizers") or [])}
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get(
            "resourceVersion", "")
        return out

    def holds_deletion(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"
