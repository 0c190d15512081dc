"""The PATCH types kube-apiserver accepts, as pure functions over JSON-like dicts.

- `strategic_merge` — `application/strategic-merge-patch+json` (schema-driven list merging)
- `merge_patch` — `application/merge-patch+json` (RFC 7386)
- `json_patch` — `application/json-patch+json` (RFC 6902)
- `server_side_apply` / `track_update` — `application/apply-patch+yaml` and managedFields
"""

from pocketkube.api.patch.strategic import strategic_merge

__all__ = ["strategic_merge"]
