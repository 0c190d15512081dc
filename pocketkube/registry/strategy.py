"""The base resource strategy: the fixed per-write pipeline of kube's registry
(`apiserver/pkg/registry/rest/create.go`, `update.go`): prepare (reset status on create, keep
status on a main-resource update, keep everything but status on a status update), default,
validate (never mutates), and decide whether the generation moves.

Kinds whose behaviour differs subclass `Strategy` in a module of their own (pods.py, services.py,
…); every other kind uses this class as it is.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from pocketkube.api import defaulting, validation
from pocketkube.api.resources import Resource

if TYPE_CHECKING:
    from pocketkube.registry.registry import Registry

Obj = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery utilrand alphanums: no vowels


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(n))


@dataclass
class Context:
    """Who is asking, and how (per request)."""

    user: str = "system:admin"
    groups: list[str] = field(default_factory=lambda: ["system:masters"])
    uid: str = ""
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"
    warnings: list[str] = field(default_factory=list)
    now: str = ""  # RFC3339, set by the store per request
    applied: bool = False  # server-side apply already recorded managedFields


def spec_of(obj: Obj) -> Obj:
    """Everything but metadata and status: what a generation counts."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


# The metadata fields a status write may not change (metav1.ResetObjectMetaForStatus).
_STATUS_META = ("labels", "annotations", "finalizers", "ownerReferences", "deletionTimestamp",
                "deletionGracePeriodSeconds", "managedFields", "generation")


class Strategy:
    """Default behaviour for a stored resource."""

    allow_create_on_update = False
    allow_unconditional_update = True
    # Only some kinds count spec changes in metadata.generation (workloads, policies); pods,
    # services, namespaces and nodes have none in 1.32.
    tracks_generation = False
    # Status set by the client on create is kept (nodes) instead of reset.
    keep_status_on_create = False

    def __init__(self, resource: Resource, registry: Registry) -> None:
        self.resource = resource
        self.registry = registry
        self.has_status = resource.subresource("status") is not None

    # -- create -------------------------------------------------------------------------------
    def prepare_for_create(self, obj: Obj, ctx: Context) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = ctx.now
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(f, None)
        if self.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if self.has_status and not self.keep_status_on_create:
            obj["status"] = self.initial_status(obj)

    def initial_status(self, obj: Obj) -> Obj:
        """The status a new object starts with (kube resets what the client sent)."""
        return {}

    def defaults(self, obj: Obj) -> None:
        r = self.resource
        defaulting.apply_defaults(r.group, r.version, r.kind, obj)

    def validate(self, obj: Obj, old: Obj | None) -> list[dict[str, str]]:
        r = self.resource
        # The store has already type-checked the object (registry.fields.check_types).
        return validation.validate(r.group, r.version, r.kind, obj, old, types_checked=True)

    async def started(self) -> None:
        """Called once the registry's cache is loaded (rebuild allocations and the like)."""

    async def admit(self, obj: Obj, old: Obj | None, ctx: Context) -> None:
        """Stateful admission (allocations, lookups). Runs after validation."""

    async def release(self, obj: Obj) -> None:
        """Undo what `admit` allocated, when the write did not happen or the object is gone."""

    # -- update -------------------------------------------------------------------------------
    def prepare_for_update(self, new: Obj, old: Obj, ctx: Context) -> None:
        meta, old_meta = new.setdefault("metadata", {}), old.get("metadata", {})
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "name", "namespace"):
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        if "generateName" not in old_meta:
            meta.pop("generateName", None)
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self._bump_generation(new, old)

    def _bump_generation(self, new: Obj, old: Obj) -> None:
        meta, old_meta = new["metadata"], old.get("metadata", {})
        if not self.tracks_generation or "generation" not in old_meta:
            if "generation" in old_meta:
                meta["generation"] = old_meta["generation"]
            else:
                meta.pop("generation", None)
            return
        gen = old_meta.get("generation", 1)
        if spec_of(new) != spec_of(old) or (
            meta.get("deletionTimestamp") and not old_meta.get("deletionTimestamp")
        ):
            gen += 1
        meta["generation"] = gen

    def prepare_for_status_update(self, new: Obj, old: Obj, ctx: Context) -> Obj:
        """A status write keeps everything of `old` except the status (and harmless metadata)."""
        out = {k: v for k, v in old.items() if k != "status"}
        meta = dict(old.get("metadata", {}))
        new_meta = new.get("metadata", {})
        for f, v in new_meta.items():
            if f not in _STATUS_META and f not in ("uid", "creationTimestamp", "name",
                                                    "namespace", "resourceVersion"):
                meta[f] = v
        meta["resourceVersion"] = new_meta.get("resourceVersion", "")
        out["metadata"] = meta
        if "status" in new:
            out["status"] = new["status"]
        return out

    def validate_status(self, new: Obj, old: Obj) -> list[dict[str, str]]:
        return []

    # -- delete -------------------------------------------------------------------------------
    def grace_period(self, obj: Obj, options: Obj) -> int:
        """Seconds of graceful deletion; 0 deletes at once (unless finalizers hold it)."""
        return 0

    def holds_deletion(self, obj: Obj) -> bool:
        """True while something other than metadata.finalizers keeps a deleted object
        (a namespace's spec.finalizers)."""
        return False

    def mark_deleting(self, obj: Obj) -> None:
        """Adjust an object being marked for deletion (a namespace becomes Terminating)."""

    def default_propagation(self) -> str:
        return "Background"

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def copy(obj: Obj) -> Obj:
        return orjson.loads(orjson.dumps(obj))

    @staticmethod
    def int_or(value: Any, default: int) -> int:
        with contextlib.suppress(TypeError, ValueError):
            return int(value)
        return default
