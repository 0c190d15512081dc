"""The PATCH types kube-apiserver accepts, as pure functions over JSON-like dicts.

- `strategic_merge` — `application/strategic-merge-patch+json` (schema-driven list merging)
- `merge_patch` — `application/merge-patch+json` (RFC 7386, evanphx/json-patch flavour)
- `json_patch` — `application/json-patch+json` (RFC 6902)
- `server_side_apply` — `application/apply-patch+yaml`, with managedFields and conflicts
- `track_update` — managedFields bookkeeping for every other write (create/update/patch)
- `fields_of`, `to_fields_v1`, `from_fields_v1`, `path_string` — field sets and their encoding

All raise `pocketkube.api.errors.StatusError` with kube's code, reason and message on bad input.
"""

from pocketkube.api.patch.apply import server_side_apply, track_update
from pocketkube.api.patch.fieldpath import FieldSet, from_fields_v1, path_string, to_fields_v1
from pocketkube.api.patch.jsonpatch import json_patch
from pocketkube.api.patch.merge import merge_patch
from pocketkube.api.patch.strategic import strategic_merge
from pocketkube.api.patch.typed import fields_of

__all__ = [
    "FieldSet",
    "fields_of",
    "from_fields_v1",
    "json_patch",
    "merge_patch",
    "path_string",
    "server_side_apply",
    "strategic_merge",
    "to_fields_v1",
    "track_update",
]
