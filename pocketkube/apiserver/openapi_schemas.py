"""OpenAPI v3 `components.schemas` from the JSON-Schema definitions in `pocketkube.api.schema`.

kubernetes-validate ships the Kubernetes definitions as JSON Schema (`$defs`, nullable types
written `["string", "null"]`, `apiVersion`/`kind` pinned by `enum`). kube-apiserver serves them as
OpenAPI 3.0, and kubectl reads that form: `explain` walks `allOf`/`$ref`, and client-side apply
reads the patch extensions. This module converts one definition at a time into the shape
kube-openapi produces and computes which definitions a group-version's document must carry.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from pocketkube.api import schema

REF_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def _type(t: Any) -> Any:
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if len(rest) == 1 else rest
    return t


def convert(node: Schema, *, drop_enum: bool = False) -> Schema:
    """One JSON-Schema node (and everything under it) in kube's OpenAPI v3 form."""
    out: Schema = {}
    target = node.get("$ref")
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type":
            out[key] = _type(value)
        elif key == "properties":
            out[key] = {
                name: convert(sub, drop_enum=name in ("apiVersion", "kind"))
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = convert(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [convert(v) for v in value]
        elif key == "enum" and drop_enum:
            # kube leaves apiVersion/kind free strings; the pinned enum is a JSON-Schema addition.
            continue
        else:
            out[key] = value
    if target is None:
        return out
    name = target.rsplit("/", 1)[-1]
    if not out:
        return ref(name)
    # kube-openapi wraps a reference that has siblings (description, extensions) in allOf,
    # since OpenAPI 3.0 ignores siblings of `$ref`.
    return {"allOf": [ref(name)], **out}


@functools.cache
def component(name: str) -> Schema | None:
    """The OpenAPI v3 form of definition `name`, or None if there is no such definition."""
    source = schema.definitions().get(name)
    if source is None:
        return None
    out = convert(source)
    if name == INT_OR_STRING:
        # As kube-openapi emits IntOrString for v3: one-of integer/string, format int-or-string
        # (kubectl explain then shows the field as <IntOrString>).
        out = {k: v for k, v in out.items() if k != "oneOf"}
        out["format"] = "int-or-string"
        out["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            elif key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    yield from _refs(sub)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def closure(roots: Iterable[str]) -> dict[str, Schema]:
    """Every definition reachable from `roots`, converted, keyed and sorted by name."""
    defs = schema.definitions()
    seen: set[str] = set()
    stack = [r for r in roots if r in defs]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(r for r in _refs(defs[name]) if r in defs and r not in seen)
    out: dict[str, Schema] = {}
    for name in sorted(seen):
        converted = component(name)
        if converted is not None:
            out[name] = converted
    return out


def definition_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind, or None (e.g. the connect options kinds have none)."""
    return schema.definition_name(group, version, kind)
