"""Deletion as kube's store does it: preconditions (uid, resourceVersion), the propagation
policy turned into the `orphan`/`foregroundDeletion` finalizers, graceful deletion (a
deletionTimestamp and grace period while someone finishes the object), and immediate deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pocketkube.api import errors
from pocketkube.registry.codec import decode, encode, now_rfc3339
from pocketkube.registry.strategy import Context
from pocketkube.storage.interface import ConflictError, KeyNotFoundError, KeyValue

if TYPE_CHECKING:
    from pocketkube.registry.store import Store

Obj = dict[str, Any]
UPDATE_RETRIES = 16


async def delete(store: Store, ns: str | None, name: str, options: Obj, ctx: Context
                 ) -> tuple[Obj, bool]:
    """(object, deleted now). Not deleted now means graceful deletion or finalizers hold it."""
    key = store.key(ns, name)
    ctx.now = ctx.now or now_rfc3339()
    pre = options.get("preconditions") or {}
    for _ in range(UPDATE_RETRIES):
        kv = await store.backend.get(key)
        if kv is None:
            raise store.not_found(name)
        cur = decode(kv)
        meta = cur["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise store.conflict(name, f"Precondition failed: UID in precondition: "
                                      f"{pre['uid']}, UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise store.conflict(name, f"Precondition failed: ResourceVersion in precondition:"
                                      f" {pre['resourceVersion']}, ResourceVersion in object "
                                      f"meta: {meta['resourceVersion']}")
        new = mark_deleting(store, cur, options)
        if new is None:
            try:
                return await delete_now(store, key, kv, cur, ctx), True
            except ConflictError:
                continue  # changed under us (a status write): decide again on the new state
        if new is cur or ctx.dry_run:
            return new, False
        try:
            rev = await store.backend.update(key, encode(new), kv.mod_revision)
        except ConflictError:
            continue
        new["metadata"]["resourceVersion"] = str(rev)
        return new, False
    raise store.conflict(name, "the object is being changed too often; try again")


def mark_deleting(store: Store, cur: Obj, options: Obj) -> Obj | None:
    """The object marked for graceful/finalized deletion, `cur` if nothing changes, or None
    to delete it now."""
    meta = cur["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    policy = policy or store.strategy.default_propagation()
    if policy not in ("Orphan", "Background", "Foreground"):
        raise errors.invalid("DeleteOptions", "", [errors.field_error(
            "FieldValueNotSupported", "propagationPolicy",
            f'Unsupported value: "{policy}": supported values: "Foreground", '
            f'"Background", "Orphan"')])
    if not meta.get("deletionTimestamp"):
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
    grace = store.strategy.grace_period(cur, options)
    held = store.strategy.holds_deletion(cur)
    if not finalizers and grace == 0 and not held:
        return None
    if meta.get("deletionTimestamp"):
        # Already deleting: only a shorter grace period changes anything.
        old_grace = meta.get("deletionGracePeriodSeconds") or 0
        if (finalizers or held) and grace == 0 and old_grace == 0:
            return cur
        if grace >= old_grace:
            return cur
    new = store.strategy.copy(cur)
    nm = new["metadata"]
    ts = datetime.now(UTC) + timedelta(seconds=grace)
    nm["deletionTimestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    nm["deletionGracePeriodSeconds"] = grace
    if finalizers:
        nm["finalizers"] = finalizers
    store.strategy.mark_deleting(new)
    if "generation" in nm and not meta.get("deletionTimestamp"):
        nm["generation"] = nm["generation"] + 1
    return new

async def delete_now(store: Store, key: str, kv: KeyValue, cur: Obj, ctx: Context) -> Obj:
    """Delete the object at `kv`'s revision. Raises ConflictError when it changed since, for
    the caller to decide again."""
    if ctx.dry_run:
        return cur
    try:
        rev, _prev = await store.backend.delete(key, kv.mod_revision)
    except KeyNotFoundError:
        raise store.not_found(cur["metadata"].get("name", "")) from None
    await store.strategy.release(cur)
    out = dict(cur)
    out["metadata"] = {**cur["metadata"], "resourceVersion": str(rev)}
    return out


