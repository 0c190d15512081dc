"""Small in-place helpers shared by the defaulting modules.

Defaulting runs on request bodies that have not been validated yet, so every helper tolerates
a field of the wrong JSON type by leaving it alone (validation reports it afterwards).
"""

from __future__ import annotations

from typing import Any

from pocketkube.api import schema as S
from pocketkube.api.validation import quantity

_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def child(parent: Any, key: str) -> dict[str, Any] | None:
    """The object at `key`, created when absent or null; None when it is not an object."""
    if not isinstance(parent, dict):
        return None
    v = parent.get(key)
    if v is None:
        v = parent[key] = {}
    return v if isinstance(v, dict) else None


def existing(parent: Any, key: str) -> dict[str, Any] | None:
    """The object at `key` if present (no creation)."""
    v = parent.get(key) if isinstance(parent, dict) else None
    return v if isinstance(v, dict) else None


def objects(parent: Any, key: str) -> list[dict[str, Any]]:
    """The object entries of the list at `key`."""
    v = parent.get(key) if isinstance(parent, dict) else None
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def setdefault(d: Any, key: str, value: Any) -> None:
    """Set `key` when it is absent or null (Go: a nil pointer or zero value)."""
    if isinstance(d, dict) and d.get(key) is None:
        d[key] = value


def set_if_empty(d: Any, key: str, value: Any) -> None:
    """Set `key` when it is absent, null or empty (Go: `if x == ""` / `len(x) == 0`)."""
    if isinstance(d, dict) and d.get(key) in (None, "", [], {}):
        d[key] = value


def template_meta(template: Any) -> None:
    """A nested ObjectMeta serializes a zero creationTimestamp as `null` in 1.32."""
    md = child(template, "metadata")
    if md is not None and "creationTimestamp" not in md:
        md["creationTimestamp"] = None


def canonicalize_quantities(obj: Any, sch: S.Schema | None) -> None:
    """Rewrite every quantity to the canonical string kube serves (`0.5` -> `500m`); resource
    lists are also rounded up to milli precision, as `SetDefaults_ResourceList` does."""
    resolved = S.resolve(sch)
    if resolved is None or obj is None:
        return
    if isinstance(obj, list):
        elem = S.items(sch)
        if elem is not None:
            for v in obj:
                canonicalize_quantities(v, elem)
        return
    if not isinstance(obj, dict):
        return
    props = resolved.get("properties")
    if props is not None:
        for key, v in obj.items():
            fs = props.get(key)
            if fs is None:
                continue
            if S.ref_name(fs) == _QUANTITY:
                obj[key] = quantity.canonicalize(v)
            elif isinstance(v, (dict, list)):
                canonicalize_quantities(v, fs)
        return
    extra = S.additional(sch)
    if extra is None:
        return
    if S.ref_name(extra) == _QUANTITY:
        for key, v in obj.items():
            obj[key] = quantity.canonicalize(v, round_milli=True)
    else:
        for v in obj.values():
            if isinstance(v, (dict, list)):
                canonicalize_quantities(v, extra)
