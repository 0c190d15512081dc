"""JSON patch (`application/json-patch+json`, RFC 6902) with kube-apiserver's error mapping.

The operations themselves come from the `jsonpatch` library; this module adds what the API
server does around them (apiserver `pkg/endpoints/handlers/patch.go`): a body that is not a list
of operation objects is 400 BadRequest, more than 10000 operations is 413, and any operation that
cannot be applied (a failed `test`, a missing path, an unknown op) is the generic 422 Invalid
"the server rejected our request due to an error in our request" — kube does not pass the
library's message through, so neither do we (it is logged at debug level).
"""

from __future__ import annotations

import logging
from typing import Any

import jsonpatch as _jsonpatch
import jsonpointer

from pocketkube.api.errors import StatusError, bad_request, too_large
from pocketkube.api.patch._common import copy_json, json_kind

log = logging.getLogger("pocketkube.api.patch")

MAX_OPERATIONS = 10000


def json_patch(original: dict, ops: Any) -> dict:
    """Apply the RFC 6902 operation list `ops` to `original`; returns a new object.

    Raises StatusError: 400 when `ops` is not a list of objects, 413 beyond 10000 operations,
    422 Invalid when an operation fails or the result is not a JSON object. Inputs are never
    modified.
    """
    if not isinstance(ops, list):
        kind = json_kind(ops)
        raise bad_request(
            f"error decoding patch: json: cannot unmarshal {kind} into Go value of type "
            "[]handlers.jsonPatchOp"
        )
    for op in ops:
        if not isinstance(op, dict):
            kind = json_kind(op)
            raise bad_request(
                f"error decoding patch: json: cannot unmarshal {kind} into Go value of type "
                "handlers.jsonPatchOp"
            )
    if len(ops) > MAX_OPERATIONS:
        raise too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(ops)}"
        )
    doc = copy_json(original)
    try:
        result = _jsonpatch.JsonPatch(copy_json(ops)).apply(doc, in_place=True)
    except (_jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError,
            KeyError, IndexError, ValueError) as exc:
        log.debug("json patch failed: %s", exc)
        raise unprocessable() from None
    if not isinstance(result, dict):
        raise unprocessable()
    return result


def unprocessable() -> StatusError:
    """kube's `NewGenericServerResponse(422, …)`: reason Invalid, generic message, empty details."""
    return StatusError(
        422, "Invalid", "the server rejected our request due to an error in our request", {}
    )
