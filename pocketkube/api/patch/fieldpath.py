"""Field paths and field sets, and their `fieldsV1` encoding in `metadata.managedFields`.

The model of sigs.k8s.io/structured-merge-diff `fieldpath`, reduced to what Python does well: a
path is a tuple of path elements, a path element a small tuple, and a FieldSet a plain `set` of
paths (SMD's set of "members"; its tree of children is only rebuilt to encode `fieldsV1`).

Path elements:
- `("f", name)` a map key or struct field           → `f:name`
- `("k", '{"name":"x"}')` a list-map item by its keys → `k:{"name":"x"}`
- `("v", '"x"')` a set item by value                  → `v:"x"`
- `("i", 3)` a list item by index                     → `i:3`
Keys and values are held as canonical JSON text (sorted keys, Go's HTML escaping), which is
hashable and is exactly what the encoding writes; decoding re-canonicalizes stored text so paths
from either side compare equal.
"""

from __future__ import annotations

import json
from typing import Any

from pocketkube.api.patch._common import go_float

PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]
FieldSet = set[Path]


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and Go's escaping of <, > and &."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def field(name: str) -> PathElement:
    return ("f", name)


def key_element(keys: dict[str, Any]) -> PathElement:
    return ("k", canonical_json(keys))


def value_element(value: Any) -> PathElement:
    return ("v", canonical_json(value))


def make_path(*names: str) -> Path:
    """A path of field names, e.g. `make_path("spec", "replicas")`."""
    return tuple(("f", n) for n in names)


# -- ordering (PathElement.Compare) -------------------------------------------------------------

_TAG_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def _value_key(value: Any) -> tuple:
    """value.Compare's total order: numbers < strings < bools < lists < maps < null."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value.encode())
    if isinstance(value, list):
        return (3, tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return (4, tuple((k.encode(), _value_key(value[k])) for k in sorted(value)))
    return (5,)


def element_sort_key(pe: PathElement) -> tuple:
    tag, payload = pe
    if tag == "f":
        return (0, payload.encode())
    if tag == "k":
        fields = json.loads(payload)
        return (1, tuple((k.encode(), _value_key(fields[k])) for k in sorted(fields)))
    if tag == "v":
        return (2, _value_key(json.loads(payload)))
    return (_TAG_ORDER.get(tag, 4), payload)


# -- fieldsV1 -----------------------------------------------------------------------------------


def element_text(pe: PathElement) -> str:
    tag, payload = pe
    return f"{tag}:{payload}"


def parse_element(text: str) -> PathElement | None:
    """A path element from its `fieldsV1` key; None for an unknown type (skipped, like SMD).

    Raises ValueError for a malformed key of a known type.
    """
    if len(text) < 2 or text[1] != ":":
        raise ValueError(f"missing colon: {text}")
    tag, rest = text[0], text[2:]
    if tag == "f":
        return ("f", rest)
    if tag == "k":
        fields = json.loads(rest)
        if not isinstance(fields, dict):
            raise ValueError(f"key element is not an object: {text}")
        return ("k", canonical_json(fields))
    if tag == "v":
        return ("v", canonical_json(json.loads(rest)))
    if tag == "i":
        return ("i", int(rest))
    return None


def to_fields_v1(fields: FieldSet) -> dict:
    """The `fieldsV1` JSON object of a FieldSet (keys in SMD's order, `.` for a member with
    children)."""
    root: dict = {}
    members: set[Path] = set(fields)
    for path in fields:
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
    return _emit(root, (), members)


def _emit(node: dict, prefix: Path, members: set[Path]) -> dict:
    out: dict = {}
    for pe in sorted(node, key=element_sort_key):
        path = prefix + (pe,)
        child = node[pe]
        if child:
            body: dict = {".": {}} if path in members else {}
            body.update(_emit(child, path, members))
            out[element_text(pe)] = body
        else:
            out[element_text(pe)] = {}
    return out


def from_fields_v1(data: dict) -> FieldSet:
    """Decode a `fieldsV1` object into a FieldSet. Raises ValueError if it is malformed."""
    if not isinstance(data, dict):
        raise ValueError("fieldsV1 must be an object")
    out: FieldSet = set()
    _read(data, (), out)
    return out


def _read(data: dict, prefix: Path, out: FieldSet) -> None:
    for text, body in data.items():
        if text == ".":
            continue
        pe = parse_element(text)
        if pe is None:
            continue
        path = prefix + (pe,)
        if not isinstance(body, dict):
            raise ValueError(f"fieldsV1 value for {text} is not an object")
        children = [k for k in body if k != "."]
        if "." in body or not children:
            out.add(path)
        if children:
            _read(body, path, out)


# -- display (fieldpath.Path.String) -------------------------------------------------------------


def _go_value(value: Any) -> str:
    """value.ToString: strings quoted, numbers and bools bare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list):
        return "[" + ",".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_go_value(v)}" for k, v in value.items())
    return str(value)


def path_string(path: Path) -> str:
    """How kube prints a path in conflicts: `.spec.containers[name="a"].image`, `[=x]`, `[0]`."""
    parts = []
    for tag, payload in path:
        if tag == "f":
            parts.append("." + payload)
        elif tag == "k":
            fields = json.loads(payload)
            parts.append("[" + ",".join(f"{k}={_go_value(fields[k])}" for k in sorted(fields)) + "]")
        elif tag == "v":
            parts.append(f"[={_go_value(json.loads(payload))}]")
        else:
            parts.append(f"[{payload}]")
    return "".join(parts)


def path_sort_key(path: Path) -> tuple:
    return tuple(element_sort_key(pe) for pe in path)


def prefixes(fields: FieldSet) -> set[Path]:
    """Every proper prefix of every path in `fields` (the interior nodes of the set's tree)."""
    out: set[Path] = set()
    for path in fields:
        for i in range(len(path) - 1, 0, -1):
            p = path[:i]
            if p in out:
                break
            out.add(p)
    return out
