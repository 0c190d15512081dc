"""Shape-tolerant accessors for JSON documents under validation.

Validators read objects that may contain `null`s where Go would hold zero values; these helpers
return the Go zero value for a missing or null field so the rules can be written as kube writes
them (`len(spec.Ports) == 0`, `spec.Type == ""`) without guarding every lookup.
"""

from __future__ import annotations

from typing import Any


def m(parent: Any, key: str) -> dict[str, Any]:
    v = parent.get(key) if isinstance(parent, dict) else None
    return v if isinstance(v, dict) else {}


def opt_m(parent: Any, key: str) -> dict[str, Any] | None:
    """The object at `key`, or None when absent (Go's nil pointer)."""
    v = parent.get(key) if isinstance(parent, dict) else None
    return v if isinstance(v, dict) else None


def li(parent: Any, key: str) -> list[Any]:
    v = parent.get(key) if isinstance(parent, dict) else None
    return v if isinstance(v, list) else []


def s(parent: Any, key: str) -> str:
    v = parent.get(key) if isinstance(parent, dict) else None
    return v if isinstance(v, str) else ""


def n(parent: Any, key: str) -> int | None:
    """An integer field, or None when unset (Go's nil pointer)."""
    v = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return int(v)


def n0(parent: Any, key: str) -> int:
    """An integer field with Go's zero default."""
    v = n(parent, key)
    return 0 if v is None else v


def b(parent: Any, key: str) -> bool | None:
    v = parent.get(key) if isinstance(parent, dict) else None
    return v if isinstance(v, bool) else None


def smap(parent: Any, key: str) -> dict[str, str]:
    """A `map[string]string` field (labels, selectors, data)."""
    v = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(v, dict):
        return {}
    return {str(k): ("" if x is None else str(x)) for k, x in v.items()}


def items(parent: Any, key: str) -> list[dict[str, Any]]:
    """A list of objects; null entries read as empty objects, as Go decodes them."""
    return [x if isinstance(x, dict) else {} for x in li(parent, key)]
