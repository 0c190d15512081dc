"""JSON merge patch (`application/merge-patch+json`, RFC 7386), as kube-apiserver applies it.

kube uses evanphx/json-patch `MergePatch`, which differs from the RFC in small ways a client can
see: nulls are also pruned from inside newly added arrays, and a patch value replacing a map
with an array keeps its nulls. Those quirks are reproduced; the function is short enough that a
library would only hide them.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.errors import bad_request
from pocketkube.api.patch._common import copy_json, json_kind


def merge_patch(original: dict, patch: Any) -> dict:
    """Apply JSON merge patch `patch` to `original`; returns a new object.

    Keys whose patch value is null are deleted; maps merge recursively; any other value
    (including arrays) replaces the original value, with nulls pruned from it. The inputs are
    never modified. A patch that is not a JSON object is rejected with 400 BadRequest, with the
    message kube-apiserver gives under fieldValidation=Strict (what kubectl sends).
    """
    if patch is None:
        raise bad_request("Invalid JSON Patch")
    if not isinstance(patch, dict):
        kind = json_kind(patch)
        raise bad_request(
            f"error decoding patch: json: cannot unmarshal {kind} into Go value of type "
            "map[string]interface {}"
        )
    doc = copy_json(original) if isinstance(original, dict) else {}
    return _merge_docs(doc, patch)


def _merge_docs(doc: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif key not in doc:
            doc[key] = _pruned(value)
        else:
            doc[key] = _merge_value(doc[key], value)
    return doc


def _merge_value(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        return _pruned(patch)
    if not isinstance(patch, dict):
        return copy_json(patch)
    return _merge_docs(current, patch)


def _pruned(value: Any) -> Any:
    """A copy of `value` without nulls, in maps and arrays alike (evanphx pruneNulls)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value if v is not None]
    return value
