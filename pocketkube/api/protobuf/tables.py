"""Descriptor tables: how each protobuf message maps onto its JSON object.

The `types_*` modules describe every message reachable from the kinds kubectl's typed clients
send, in a compact notation, one string per message:

    "ContainerPort": "1 name, 2 hostPort i, 3 containerPort i!, 4 protocol, 5 hostIP"

Each comma-separated item is `<field number> <json name> [<type>]`:

- type: `s` string (the default), `i` integer (int32/int64), `b` bool, `y` bytes (base64 in
  JSON), `d` double, a message name, or one of the special types in `specials.py` (`Time`,
  `MicroTime`, `Duration`, `Quantity`, `IntOrString`, `FieldsV1`, `ExtraValue`).
  A bare message name resolves in the same group, then `meta`, then `core`; `group.Name` is explicit.
- prefix `[` a repeated field, `{` a map from string keys to the type.
- suffix `*` the Go field is a pointer: its presence on the wire decides whether it appears.
- suffix `!` the Go JSON tag has no `omitempty`: the field appears even when zero or absent
  (absent pointers, lists and maps as null).
- json name `~` the Go field is embedded inline: its fields merge into the parent object.

A plain scalar without `*` or `!` is a Go value field with `omitempty`: Go always writes it on
the wire, so it is dropped when zero, as Go's JSON encoder does. A message without `*` is a Go
struct value and always appears (Go's `omitempty` does not apply to structs).

These tables are the pocketkube description of the Kubernetes 1.32 API types (field numbers and
JSON names are part of the public API); only what the decoder needs is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import (
    types_auth,
    types_core,
    types_meta,
    types_pod,
    types_scaling,
    types_volumes,
    types_workloads,
)

SCALARS = frozenset({"s", "i", "b", "y", "d"})
SPECIALS = frozenset(
    {"Time", "MicroTime", "Duration", "Quantity", "IntOrString", "FieldsV1", "ExtraValue"}
)

_ITEM = re.compile(r"^(\d+) (~|[A-Za-z0-9]+)(?: ([\[{]?)([A-Za-z0-9.]*)([*!]*))?$")


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    name: str  # JSON name; "" for an inline (embedded) struct
    type: str  # a scalar code, a special type name, or a qualified message name
    shape: str  # "" single, "[" repeated, "{" map
    pointer: bool
    keep: bool  # no omitempty in the Go JSON tag

    @property
    def is_message(self) -> bool:
        return self.type not in SCALARS


@dataclass(frozen=True, slots=True)
class Message:
    name: str  # qualified, e.g. "core.PodSpec"
    fields: dict[int, Field]  # in field-number order


def _parse(group: str, name: str, spec: str, known: set[str]) -> Message:
    fields: dict[int, Field] = {}
    for item in spec.split(","):
        m = _ITEM.match(item.strip())
        if m is None:
            raise ValueError(f"bad field spec {item!r} in {group}.{name}")
        number, json_name, shape, type_name, flags = m.groups()
        type_name = type_name or "s"
        if type_name not in SCALARS and type_name not in SPECIALS:
            type_name = _resolve(group, type_name, known)
        fields[int(number)] = Field(
            number=int(number),
            name="" if json_name == "~" else json_name,
            type=type_name,
            shape=shape or "",
            pointer="*" in (flags or ""),
            keep="!" in (flags or ""),
        )
    return Message(f"{group}.{name}", dict(sorted(fields.items())))


def _resolve(group: str, type_name: str, known: set[str]) -> str:
    if "." in type_name:
        candidates = [type_name]
    else:
        candidates = [f"{g}.{type_name}" for g in (group, "meta", "core")]
    for qualified in candidates:
        if qualified in known:
            return qualified
    raise ValueError(f"unknown message type {type_name!r} referenced from group {group}")


def _load() -> tuple[dict[str, Message], dict[tuple[str, str], str]]:
    modules = (
        types_meta,
        types_core,
        types_pod,
        types_volumes,
        types_workloads,
        types_auth,
        types_scaling,
    )
    specs: list[tuple[str, str, str]] = []
    kinds: dict[tuple[str, str], str] = {}
    for module in modules:
        for group, types in module.TYPES.items():
            specs.extend((group, name, spec) for name, spec in types.items())
        kinds.update(module.KINDS)
    known = {f"{group}.{name}" for group, name, _ in specs}
    messages = {f"{g}.{n}": _parse(g, n, s, known) for g, n, s in specs}
    for target in kinds.values():
        if target not in messages:
            raise ValueError(f"kind table names unknown message {target}")
    return messages, kinds


#: Every message, by qualified name.
MESSAGES: dict[str, Message]
#: (apiVersion, kind) → qualified message name of the top-level object.
KINDS: dict[tuple[str, str], str]
MESSAGES, KINDS = _load()
