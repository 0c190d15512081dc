"""The pod-template hash that names a Deployment's ReplicaSets (`<deployment>-<hash>`) and
labels their pods, as kube's `controller.ComputeHash`: FNV-32a, the collision count appended as
8 little-endian bytes, the decimal value rendered with `rand.SafeEncodeString`.

kube hashes a Go-specific dump of the PodTemplateSpec struct, which has no equivalent over
JSON; here the input is the template's canonical JSON (sorted keys, no nulls), so the names
have kube's form and stability but not its exact values.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand: no vowels, no 0/1/3


def safe_encode(s: str) -> str:
    """rand.SafeEncodeString: map every character onto letters that spell no words."""
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in s)


def _canonical(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _canonical(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_canonical(x) for x in v]
    return v


def _normalized(template: Obj | None) -> Obj:
    t = _canonical(template or {})
    meta = t.get("metadata")
    if isinstance(meta, dict):
        for f in ("labels", "annotations"):
            if f in meta and not meta[f]:
                del meta[f]
        if not meta:
            del t["metadata"]
    return t


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: Obj | None, collision_count: int | None = None) -> str:
    """The pod-template-hash: FNV-32a over the template (canonical JSON: sorted keys, no nulls),
    then the collision count as 8 little-endian bytes, rendered with safe_encode."""
    data = orjson.dumps(_normalized(template), option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def without_hash(template: Obj | None) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return _normalized(t)


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """Two pod templates are the same apart from the pod-template-hash label."""
    return without_hash(a) == without_hash(b)
