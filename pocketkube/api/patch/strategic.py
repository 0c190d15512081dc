"""Strategic merge patch (`application/strategic-merge-patch+json`), as kube-apiserver applies it.

A port of the *apply* half of apimachinery `pkg/util/strategicpatch/patch.go` (StrategicMergeMapPatch
with MergeParallelList and IgnoreUnmatchedNulls, the options the API server uses), driven by the
OpenAPI schema instead of Go struct tags: `x-kubernetes-patch-strategy` / `-patch-merge-key` say
which lists merge and by what key. No Python library implements strategic merge patch, and
kubectl's client-side apply depends on every directive it sends (`$patch`, `$setElementOrder/…`,
`$retainKeys`, `$deleteFromPrimitiveList/…`), including the exact resulting list order.

Differences from kube, on purpose: errors that kube reports as a bare 500 (a list element without
its merge key, an unknown `$patch` value, a badly typed directive) are client mistakes and come
back as 400 BadRequest with kube's message; values taken whole from the patch (new fields, list
items, replaced maps) are stored without nulls and directive keys, which is what kube ends up
storing once it decodes the result into a typed object.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api import schema as sch
from pocketkube.api.errors import bad_request
from pocketkube.api.patch._common import copy_json, go_format, go_type
from pocketkube.api.patch._smp_lists import (
    _DROP,
    DELETE_PRIMITIVE,
    PATCH,
    RETAIN_KEYS,
    SET_ORDER,
    clean_value,
    merge_slice,
    no_merge_key,
    normalize_element_order,
    partition,
    slice_kind,
)

Schema = sch.Schema | None

def strategic_merge(original: dict, patch: dict, schema: Schema) -> dict:
    """Apply strategic merge patch `patch` to `original`; returns a new object.

    `schema` is the kind's definition (`schema.for_kind(...)`), or None to merge with no patch
    metadata (maps merge, lists are replaced). Semantics, per map level of the patch:
    - `key: null` deletes the key; a value of another JSON type replaces the original;
    - nested maps merge recursively, unless the field's patch strategy is `replace`;
    - `$patch: replace` replaces the whole map, `$patch: delete` empties it;
    - `$retainKeys: [..]` drops original keys not listed (the patch's own keys must be listed);
    - lists whose field has patch strategy `merge` merge: maps by the merge key (`$patch: delete`
      elements remove entries, `$patch: replace` replaces the list), scalars as a union;
      `$deleteFromPrimitiveList/<field>` removes scalars; `$setElementOrder/<field>` fixes the
      order; lists without the strategy are replaced wholesale.
    The inputs are never modified. Raises StatusError 400 (malformed patch) or 422 (lists of
    lists), with kube's messages.
    """
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {_json_name(patch)} into Go value of type map[string]interface {{}}"
        )
    result = copy_json(original) if isinstance(original, dict) else {}
    return _merge_map(result, patch, schema)


def _json_name(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _field_schema(schema: Schema, key: str) -> Schema:
    """The schema of map entry `key`: a declared field, or the value schema of a map."""
    resolved = sch.resolve(schema)
    if not resolved:
        return None
    props = resolved.get("properties")
    if props is not None:
        return props.get(key)
    return sch.additional(resolved)


def _strategy(field_schema: Schema) -> tuple[str, str]:
    """(strategy other than retainKeys, merge key) of a field, as extractRetainKeysPatchStrategy."""
    strategy, merge_key = sch.patch_strategy(field_schema)
    parts = [s for s in strategy.split(",") if s] if strategy else []
    others = [p for p in parts if p != "retainKeys"]
    return (others[0] if others else ""), (merge_key or "")


def _merge_map(original: dict, patch: dict, schema: Schema) -> dict:
    """Merge `patch` into `original` in place (original is already a private copy)."""
    if PATCH in patch:
        directive = patch[PATCH]
        if directive == "replace":
            return clean_value({k: v for k, v in patch.items() if k != PATCH})
        if directive == "delete":
            return {}
        raise bad_request(f"unknown patch type: {go_format(directive)} in map: {go_format(patch)}")

    patch = dict(patch)  # keys are popped as they are handled; the caller's dict stays intact
    if RETAIN_KEYS in patch:
        _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)

    for key, patch_value in patch.items():
        delete_list = False
        if key.startswith(DELETE_PRIMITIVE):
            key = _directive_key(key, DELETE_PRIMITIVE, "invalid patch format of primitive list")
            delete_list = True
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not delete_list:
                _set_clean(original, key, patch_value)
            continue
        current = original[key]
        if isinstance(current, dict) and isinstance(patch_value, dict):
            field = _field_schema(schema, key)
            if _strategy(field)[0] == "replace":
                original[key] = clean_value(patch_value)
            else:
                original[key] = _merge_map(current, patch_value, field)
        elif isinstance(current, list) and isinstance(patch_value, list):
            field = _field_schema(schema, key)
            original[key] = _merge_list_field(current, patch_value, field, delete_list)
        elif not delete_list:
            _set_clean(original, key, patch_value)
    return original


def _set_clean(target: dict, key: str, value: Any) -> None:
    cleaned = clean_value(value)
    if cleaned is _DROP:
        target.pop(key, None)
    else:
        target[key] = cleaned


def _merge_list_field(current: list, patch_value: list, field: Schema, delete_list: bool) -> list:
    strategy, merge_key = _strategy(field)
    if strategy == "merge" or delete_list:
        item_schema = sch.items(field)
        return merge_slice(current, patch_value, merge_key, delete_list, item_schema, _merge_map)
    return clean_value(patch_value)


def _directive_key(key: str, prefix: str, error: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise bad_request(error)
    return rest


def _apply_retain_keys(original: dict, patch: dict) -> None:
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise bad_request("invalid patch format of retainKeys")
    keep = {v for v in retain if isinstance(v, str | int | float | bool)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_PRIMITIVE, SET_ORDER)):
            continue
        if key not in keep:
            raise bad_request("invalid patch format of retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _merge_ordered_lists(original: dict, patch: dict, schema: Schema) -> None:
    """Handle every `$setElementOrder/<field>` with its list (mergePatchIntoOriginal)."""
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise bad_request(f"expected a []interface {{}}, but received a {go_type(order)}")
        field_key = _directive_key(key, SET_ORDER, "invalid patch format of setElementOrder list")
        found_original = field_key in original
        found_patch = field_key in patch
        original_list = original.get(field_key)
        patch_list = patch.get(field_key)
        if found_original and not isinstance(original_list, list):
            raise bad_request(f"expected a []interface {{}}, but received a {go_type(original_list)}")
        if found_patch and not isinstance(patch_list, list):
            raise bad_request(f"expected a []interface {{}}, but received a {go_type(patch_list)}")
        field = _field_schema(schema, field_key)
        strategy, merge_key = _strategy(field)
        _validate_order(patch_list or [], order, merge_key)

        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = clean_value(patch_list)
        elif found_original and found_patch:
            merged = _merge_list_field(original_list, patch_list, field, False)
        else:
            continue
        kind = slice_kind(original_list or [], patch_list or [])
        if kind is not None:
            ordered, server_only = partition(merged, order, merge_key)
            merged = normalize_element_order(
                ordered, server_only, order, original_list or [], merge_key, kind
            )
        original[field_key] = merged
        patch.pop(field_key, None)


def _validate_order(patch_list: list, order: list, merge_key: str) -> None:
    """The patch list's items must appear in `$setElementOrder` in the same relative order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for v in patch_list:
            if not isinstance(v, dict):
                raise bad_request(f"expected a map[string]interface {{}}, but received a {go_type(v)}")
        items = [v for v in patch_list if v.get(PATCH) != "delete"]
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        item = items[pi]
        if isinstance(item, dict) and PATCH in item:
            pi += 1
            continue
        if _key_equal(item, order[oi], merge_key):
            pi += 1
        oi += 1
    if pi < len(items) and oi >= len(order):
        raise bad_request(
            f"The order in patch list:\n{go_format(patch_list)}\n doesn't match "
            f"$setElementOrder list:\n{go_format(order)}\n"
        )


def _key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return left == right
    for side in (left, right):
        if not isinstance(side, dict):
            raise bad_request(f"expected a map[string]interface {{}}, but received a {go_type(side)}")
        if merge_key not in side:
            raise no_merge_key(side, merge_key)
    return left[merge_key] == right[merge_key]
