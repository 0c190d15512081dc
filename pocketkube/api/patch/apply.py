"""Server-side apply (`application/apply-patch+yaml`) and field ownership of ordinary writes.

The behaviour of kube-apiserver's field manager (apimachinery `pkg/util/managedfields`, on top of
structured-merge-diff's `merge.Updater`), reduced to its essentials:

- every write records in `metadata.managedFields` which manager set which fields;
- an apply merges the applier's configuration into the live object, removes the fields the
  applier set last time and no longer sets (unless another manager owns them), and fails with a
  409 Conflict when it would change a value another manager owns — unless forced, which moves
  the fields to the applier;
- an update (create, update, any other patch) takes the fields it changed away from the other
  managers.

Kept out: version conversion of managed sets (pocketkube serves one version per kind), the
probabilistic skipping of untracked objects, and the last-applied-annotation conflict
reconciliation for client-side apply upgrades.
"""

from __future__ import annotations

import logging
from typing import Any

from pocketkube.api import schema as sch
from pocketkube.api.errors import bad_request
from pocketkube.api.patch._common import copy_json
from pocketkube.api.patch.fieldpath import FieldSet, canonical_json, prefixes
from pocketkube.api.patch.managed import (
    APPLY,
    STRIPPED,
    UPDATE,
    Entry,
    Ident,
    Managed,
    cap_update_managers,
    conflict_error,
    decode_lenient,
    encode,
    identity,
)
from pocketkube.api.patch.typed import compare, fields_of
from pocketkube.api.patch.typed_merge import merge, prune

log = logging.getLogger("pocketkube.api.patch")

BEFORE_FIRST_APPLY = "before-first-apply"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _without_managed_fields(obj: dict | None) -> dict:
    """A shallow view of `obj` without metadata.managedFields (nothing is copied deeply)."""
    if not obj:
        return {}
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _with_managed_fields(obj: dict, managed: Managed) -> dict:
    """`obj` with managedFields set from `managed` (or removed); copies only `obj` and its
    metadata map."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    entries = encode(managed)
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def _take_away(managed: Managed, me: Ident | None, lose: dict[Ident, FieldSet] | FieldSet) -> None:
    """Remove fields from every manager but `me` (a set for all, or a set per manager)."""
    for ident in list(managed):
        if ident == me:
            continue
        entry = managed[ident]
        gone = lose.get(ident, set()) if isinstance(lose, dict) else lose
        if gone and not entry.fields.isdisjoint(gone):
            entry.fields = entry.fields - gone
            if not entry.fields:
                del managed[ident]


def track_update(
    old: dict | None,
    new: dict,
    manager: str,
    operation: str = UPDATE,
    schema: Any = None,
    api_version: str = "",
    now: str | None = None,
    subresource: str = "",
) -> dict:
    """Record in managedFields what a non-apply write (create, update, patch) changed.

    `old` is the live object (None on create), `new` the object about to be stored. The fields
    added or modified by the write go to the entry of (`manager`, Update, `api_version`,
    `subresource`) with time `now`, and are taken from every other manager; removed fields are
    taken from everyone. The request's own managedFields are honoured when present (a `[{}]`
    list resets them), except on subresources, which always start from the live object's.
    An existing object without managedFields stays untracked, like kube. Returns a new dict that
    shares all but its `metadata` map with `new`.
    """
    if operation != UPDATE:
        raise ValueError("track_update records Update operations; use server_side_apply")
    new_meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
    old_meta = (old or {}).get("metadata") or {}
    requested = new_meta.get("managedFields")
    if subresource:
        managed = decode_lenient(old_meta.get("managedFields"))
    elif requested == [{}]:
        managed = {}
    else:
        managed = decode_lenient(requested) if requested else {}
        if not managed:
            managed = decode_lenient(old_meta.get("managedFields"))
    if not managed and old is not None:
        return _with_managed_fields(new, {})

    diff = compare(_without_managed_fields(old), _without_managed_fields(new), schema)
    changed = diff.modified | diff.added
    _take_away(managed, None, changed | diff.removed)
    mine = changed - STRIPPED
    if mine:
        name = manager or "unknown"
        ident = identity(name, UPDATE, api_version, subresource)
        previous = managed.get(ident)
        fields = mine | previous.fields if previous else mine
        managed[ident] = Entry(name, UPDATE, api_version, subresource, now, fields)
    cap_update_managers(managed)
    return _with_managed_fields(new, managed)


def _gvk_string(api_version: Any, kind: Any) -> str:
    gv = str(api_version or "")
    if "/" not in gv:
        gv = "/" + gv
    return f"{gv}, Kind={kind or ''}"


def _expected_kind(schema: Any, api_version: str) -> str | None:
    group, _, version = api_version.rpartition("/")
    for gvk in (sch.resolve(schema) or {}).get("x-kubernetes-group-version-kind", ()):
        if gvk.get("group", "") == group and gvk.get("version") == version:
            return gvk.get("kind")
    return None


def _check_applied(applied: Any, live: dict | None, schema: Any, api_version: str,
                   kind: str | None) -> None:
    if not isinstance(applied, dict):
        raise bad_request("error decoding patch: the apply configuration must be an object")
    expected = kind or (live or {}).get("kind") or _expected_kind(schema, api_version)
    if applied.get("apiVersion") != api_version or (expected and applied.get("kind") != expected):
        raise bad_request(
            f"invalid object type: {_gvk_string(applied.get('apiVersion'), applied.get('kind'))}"
        )
    meta = applied.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")


def server_side_apply(
    live: dict | None,
    applied: dict,
    manager: str,
    schema: Any,
    force: bool,
    api_version: str,
    now: str,
    subresource: str = "",
    kind: str | None = None,
) -> dict:
    """Apply the configuration `applied` for field manager `manager`; returns the new object.

    `live` is the stored object, or None to create. The result is `live` with `applied` merged
    in (granular maps per key, list-maps per key, sets per value, atomic values replaced),
    minus the fields this manager applied before but left out now and nobody else owns. The
    applier's managedFields entry (operation Apply) becomes exactly the fields of `applied`;
    its time is `now` when the object changed. An object never tracked before gets a
    `before-first-apply` entry for its existing fields first.

    Raises StatusError 409 Conflict (kube's message and FieldManagerConflict causes) when the
    apply changes fields another manager owns and `force` is false; with `force` those fields
    move to the applier. 400 BadRequest for a configuration of the wrong apiVersion/kind, with
    managedFields set, or with duplicate list keys. Inputs are never modified.
    """
    _check_applied(applied, live, schema, api_version, kind)
    name = manager or "unknown"
    live_view = _without_managed_fields(live)
    managed = decode_lenient(((live or {}).get("metadata") or {}).get("managedFields"))
    if not managed and live is not None:
        existing = compare({}, live_view, schema).added - STRIPPED
        if existing:
            ident = identity(BEFORE_FIRST_APPLY, UPDATE, api_version, subresource)
            managed[ident] = Entry(BEFORE_FIRST_APPLY, UPDATE, api_version, subresource, now,
                                   existing)

    me = identity(name, APPLY, api_version, subresource)
    config_fields = fields_of(applied, schema)
    merged = merge(live_view, applied, schema)
    previous = managed.get(me)
    if previous is not None and previous.fields:
        owned = set(config_fields)
        for ident, entry in managed.items():
            if ident != me:
                owned |= entry.fields
        merged = prune(merged, previous.fields, owned, prefixes(owned), schema)

    diff = compare(live_view, merged, schema)
    changed = diff.modified | diff.added
    conflicts = {
        ident: entry.fields & changed
        for ident, entry in managed.items()
        if ident != me and not entry.fields.isdisjoint(changed)
    }
    if conflicts and not force:
        raise conflict_error(conflicts, managed)
    _take_away(managed, me, conflicts)
    _take_away(managed, me, diff.removed)

    mine = config_fields - STRIPPED
    time = now if merged != live_view else (previous.time if previous else None)
    if mine:
        managed[me] = Entry(name, APPLY, api_version, subresource, time, mine)
    else:
        managed.pop(me, None)

    result = copy_json(merged)
    if name == "kubectl":
        _update_last_applied(result, applied)
    return _with_managed_fields(result, managed)


def _update_last_applied(result: dict, applied: dict) -> None:
    """Keep a client-side-apply annotation in step when `kubectl` applies server-side
    (lastappliedupdater.go)."""
    annotations = (result.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(LAST_APPLIED):
        return
    config = copy_json(applied)
    meta = config.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED, None)
        if not meta["annotations"]:
            del meta["annotations"]
    annotations[LAST_APPLIED] = canonical_json(config) + "\n"
