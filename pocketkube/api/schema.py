"""The Kubernetes 1.32 object schemas, from the `kubernetes-validate` package.

One schema source serves unknown-field checks, strategic-merge-patch keys, server-side apply list
types, `/openapi/v3` and `kubectl explain`. The package ships the upstream OpenAPI definitions
converted to JSON Schema (`$defs`, nullable types as `["string", "null"]`); the helpers here walk
them by field name and resolve `$ref`s.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources as importlib_resources
from typing import Any, TypeVar

SCHEMA_VERSION = "v1.32.0-local"

Schema = dict[str, Any]
T = TypeVar("T")


def _memo(fn: Callable[[Schema | None], T]) -> Callable[[Schema | None], T]:
    """Memoize a one-schema helper by the schema's identity. These run for every node of every
    object on every write; schema dicts never change, and the cache keeps a reference to each
    schema it has seen so an id is never reused for another dict."""
    cache: dict[int, tuple[Schema | None, T]] = {}

    @functools.wraps(fn)
    def wrapper(schema: Schema | None) -> T:
        hit = cache.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        out = fn(schema)
        cache[id(schema)] = (schema, out)
        return out

    return wrapper


@functools.cache
def definitions() -> dict[str, Schema]:
    """All definitions, keyed like `io.k8s.api.apps.v1.Deployment`."""
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    data = json.loads((root / SCHEMA_VERSION / "_definitions.json").read_text())
    return data["$defs"]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            # Prefer the definition from the kind's own package (e.g. apps.v1.Deployment over
            # meta.v1.WatchEvent, which is tagged with every gvk).
            key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            if key not in out or name.rsplit(".", 1)[-1] == gvk["kind"]:
                out[key] = name
    return out


def definition_name(group: str, version: str, kind: str) -> str | None:
    return _gvk_index().get((group, version, kind))


def for_kind(group: str, version: str, kind: str) -> Schema | None:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None


@_memo
def resolve(schema: Schema | None) -> Schema | None:
    """Follow `$ref` (and a single-entry `allOf`) to the concrete schema."""
    seen = 0
    while schema is not None and seen < 16:
        seen += 1
        if "$ref" in schema:
            schema = definitions().get(schema["$ref"].rsplit("/", 1)[-1])
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            break
    return schema


@_memo
def ref_name(schema: Schema | None) -> str | None:
    """The definition name a field schema points at, if any."""
    if not schema:
        return None
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return ref_name(schema["allOf"][0])
    return None


@_memo
def types(schema: Schema | None) -> set[str]:
    s = resolve(schema) or {}
    t = s.get("type")
    if t is None:
        if "oneOf" in s:  # IntOrString
            return {"string", "integer"}
        return set()
    return {t} if isinstance(t, str) else set(t) - {"null"}


@_memo
def properties(schema: Schema | None) -> dict[str, Schema]:
    return (resolve(schema) or {}).get("properties", {})


def field(schema: Schema | None, name: str) -> Schema | None:
    """The schema of object field `name` (unresolved, so list extensions stay visible)."""
    return properties(schema).get(name)


@_memo
def items(schema: Schema | None) -> Schema | None:
    return (resolve(schema) or {}).get("items")


@_memo
def additional(schema: Schema | None) -> Schema | None:
    """The value schema of a map (`additionalProperties`)."""
    ap = (resolve(schema) or {}).get("additionalProperties")
    return ap if isinstance(ap, dict) else None


@_memo
def is_free_form(schema: Schema | None) -> bool:
    """True where any content is accepted (RawExtension, JSON, preserve-unknown-fields)."""
    s = resolve(schema)
    if s is None:
        return True
    if s.get("x-kubernetes-preserve-unknown-fields"):
        return True
    return "object" in types(s) and "properties" not in s and additional(s) is None


def patch_strategy(schema: Schema | None) -> tuple[str, str | None]:
    """(`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) of a field schema."""
    if not schema:
        return "", None
    return schema.get("x-kubernetes-patch-strategy", ""), schema.get(
        "x-kubernetes-patch-merge-key"
    )


def list_type(schema: Schema | None) -> tuple[str, list[str]]:
    """(`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) of a field schema."""
    if not schema:
        return "", []
    return schema.get("x-kubernetes-list-type", ""), schema.get("x-kubernetes-list-map-keys", [])
