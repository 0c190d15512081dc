"""List handling for strategic merge patch: merging by key, scalar unions, and element order.

Kept apart from `strategic.py` because list order is the subtle part of strategic merge patch:
kube re-sorts every merged list (patch items in patch / `$setElementOrder` order, server-only
items in their live order, then interleaved by `mergeSortedSlice`), and kubectl relies on that
exact order. The algorithms follow apimachinery `strategicpatch/patch.go` step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pocketkube.api.errors import StatusError, bad_request
from pocketkube.api.patch._common import go_format, go_type

PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList"

MAP = "map"
SCALAR = "scalar"

MergeMap = Callable[[dict, dict, Any], dict]


def no_merge_key(item: dict, merge_key: str) -> StatusError:
    return bad_request(f"map: {go_format(item)} does not contain declared merge key: {merge_key}")


class _Drop:
    """Marker for a value that removeDirectives says not to keep."""


_DROP: Any = _Drop()


def clean_value(value: Any) -> Any:
    """A copy of a patch value without nulls in maps and without directive maps or keys.

    Returns `_DROP` when the value itself is a `$patch` directive map.
    """
    if isinstance(value, dict):
        if PATCH in value:
            return _DROP
        out = {}
        for k, v in value.items():
            if v is None or k == RETAIN_KEYS or k.startswith((SET_ORDER, DELETE_PRIMITIVE)):
                continue
            cleaned = clean_value(v)
            if cleaned is not _DROP:
                out[k] = cleaned
        return out
    if isinstance(value, list):
        out_list = []
        for v in value:
            cleaned = clean_value(v)
            if cleaned is not _DROP:
                out_list.append(cleaned)
        return out_list
    return value


def _bad_arg(expected: str, actual: Any) -> StatusError:
    return bad_request(f"expected a {expected}, but received a {go_type(actual)}")



def slice_kind(*lists: list) -> str | None:
    """MAP or SCALAR for the elements of `lists` (sliceElementType); None when all are empty."""
    first: str | None = None
    for lst in lists:
        for v in lst:
            t = go_type(v)
            if first is None:
                if isinstance(v, list):
                    raise StatusError(
                        422, "Invalid", "the server rejected our request due to an error in our request", {}
                    )
                first = t
            elif t != first:
                raise bad_request(
                    "list element types are not identical: " + go_format(list(lists))
                )
    if first is None:
        return None
    return MAP if first == "map[string]interface {}" else SCALAR


def merge_slice(
    original: list, patch: list, merge_key: str, delete_list: bool, item_schema: Any,
    merge_map: MergeMap,
) -> list:
    """mergeSlice: merge a patch list into a (private) original list with strategy `merge`."""
    if not original and not patch:
        return original
    kind = slice_kind(original, patch)
    if kind == SCALAR:
        if delete_list:
            drop = [v for v in patch]
            return [v for v in original if v not in drop]
        merged: list = []
        for v in original + patch:
            if v not in merged:
                merged.append(v)
    else:
        if not merge_key:
            raise bad_request("cannot merge lists without merge key")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_by_key(original, patch, merge_key, item_schema, merge_map)
    ordered, server_only = partition(merged, patch, merge_key)
    return normalize_element_order(ordered, server_only, patch, original, merge_key, kind)


def _special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """Apply `$patch` elements: delete entries by key, or replace the whole list."""
    plain = []
    replace = False
    for item in patch:
        if PATCH not in item:
            plain.append(item)
            continue
        directive = item[PATCH]
        if directive == "delete":
            if merge_key not in item:
                raise no_merge_key(item, merge_key)
            value = item[merge_key]
            for o in original:
                if not isinstance(o, dict):
                    raise bad_request(f"value for key {original.index(o)} is not a map")
            original = [o for o in original if not (merge_key in o and o[merge_key] == value)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise bad_request("merging lists cannot yet be specified in the patch")
        else:
            raise bad_request(f"unknown patch type: {go_format(directive)} in map: {go_format(item)}")
    if replace:
        return [c for c in (clean_value(v) for v in plain) if c is not _DROP], []
    return original, plain


def _find(items: list, key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request(f"value for key {i} is not a map")
        if key in item and item[key] == value:
            return i
    return -1


def _merge_by_key(
    original: list, patch: list, merge_key: str, item_schema: Any, merge_map: MergeMap
) -> list:
    result = list(original)
    for item in patch:
        if merge_key not in item:
            raise no_merge_key(item, merge_key)
        i = _find(result, merge_key, item[merge_key])
        if i >= 0:
            result[i] = merge_map(result[i], item, item_schema)
        else:
            cleaned = clean_value(item)
            if cleaned is not _DROP:
                result.append(cleaned)
    return result


def partition(merged: list, by: list, merge_key: str) -> tuple[list, list]:
    """Split `merged` into items present in `by` (by merge key for maps) and the rest."""
    if not merge_key:
        present = [v for v in by]
        inside, outside = [], []
        for v in merged:
            (inside if v in present else outside).append(v)
        return inside, outside
    inside, outside = [], []
    for v in merged:
        if not isinstance(v, dict):
            raise _bad_arg("map[string]interface {}", v)
        if merge_key not in v:
            raise no_merge_key(v, merge_key)
        (inside if _find(by, merge_key, v[merge_key]) >= 0 else outside).append(v)
    return inside, outside


def _index(items: list, value: Any, merge_key: str, kind: str) -> int:
    if kind == MAP:
        wanted = value.get(merge_key) if isinstance(value, dict) else None
        for i, item in enumerate(items):
            if (item.get(merge_key) if isinstance(item, dict) else None) == wanted:
                return i
        return -1
    for i, item in enumerate(items):
        if item == value:
            return i
    return -1


def _normalize_slice_order(to_sort: list, order: list, merge_key: str, kind: str) -> list:
    deletes: list = []
    if kind == MAP:
        for lst in (to_sort, order):
            for v in lst:
                if not isinstance(v, dict):
                    raise _bad_arg("map[string]interface {}", v)
                if merge_key not in v:
                    raise no_merge_key(v, merge_key)
        deletes = [v for v in to_sort if v.get(PATCH) == "delete"]
        to_sort = [v for v in to_sort if v.get(PATCH) != "delete"]

    def position(pair: tuple[int, Any]) -> tuple[int, int]:
        i = _index(order, pair[1], merge_key, kind)
        return (0, i) if i >= 0 else (-1, pair[0])

    ordered = [v for _, v in sorted(enumerate(to_sort), key=position)]
    return ordered + deletes


def normalize_element_order(
    patch: list, server_only: list, patch_order: list, server_order: list, merge_key: str,
    kind: str,
) -> list:
    """Sort patch items by the patch order and server-only items by the live order, then
    interleave them (normalizeElementOrder + mergeSortedSlice)."""
    patch = _normalize_slice_order(patch, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    out = []
    i = j = 0
    while i < len(server_only) or j < len(patch):
        if i >= len(server_only):
            out.append(patch[j])
            j += 1
        elif j >= len(patch):
            out.append(server_only[i])
            i += 1
        else:
            li = _index(server_order, server_only[i], merge_key, kind)
            ri = _index(server_order, patch[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[i])
                i += 1
            else:
                out.append(patch[j])
                j += 1
    return out
