"""`metadata.managedFields`: decoding, encoding, manager identity, capping and apply conflicts.

Mirrors apimachinery `pkg/util/managedfields/internal` (managedfields.go, capmanagers.go,
conflict.go, stripmeta.go): entries are keyed by manager identity — (manager, operation,
subresource) for appliers, plus apiVersion for updaters — the list is sorted the way kube sorts
it, at most ten Update managers are kept (older ones fold into `ancient-changes`), and a conflict
renders exactly like kube-apiserver's 409.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.patch._common import copy_json
from pocketkube.api.patch.fieldpath import (
    FieldSet,
    Path,
    from_fields_v1,
    make_path,
    path_sort_key,
    path_string,
    to_fields_v1,
)

APPLY = "Apply"
UPDATE = "Update"
MAX_UPDATE_MANAGERS = 10
ANCIENT = "ancient-changes"

# Fields no manager ever owns (stripmeta.go): identity and server-maintained metadata.
STRIPPED: FieldSet = {
    make_path("apiVersion"),
    make_path("kind"),
    make_path("metadata"),
    *(make_path("metadata", f) for f in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion",
    )),
}

Ident = tuple[str, str, str, str]


@dataclass(slots=True)
class Entry:
    """One managedFields entry: who, how, at which version, when, and which fields."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: FieldSet
    # The stored fieldsV1 this entry was decoded from, reused while `fields` is that same set.
    raw: tuple[FieldSet, dict] | None = None

    @property
    def ident(self) -> Ident:
        return identity(self.manager, self.operation, self.api_version, self.subresource)

    def ident_json(self) -> str:
        """BuildManagerIdentifier: the entry as JSON without fields, time (and, for appliers,
        apiVersion); kube sorts conflicting managers by this text."""
        out: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation == UPDATE and self.api_version:
            out["apiVersion"] = self.api_version
        if self.subresource:
            out["subresource"] = self.subresource
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False)

    def printable(self) -> str:
        """printManager: `"kubectl"`, `"kcm" with subresource "status" using v1`, …"""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        if self.raw is not None and self.raw[0] is self.fields:
            out["fieldsV1"] = copy_json(self.raw[1])
        else:
            out["fieldsV1"] = to_fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def identity(manager: str, operation: str, api_version: str, subresource: str = "") -> Ident:
    return (manager, operation, api_version if operation == UPDATE else "", subresource)


Managed = dict[Ident, Entry]


def decode(entries: Any) -> Managed:
    """Decode `metadata.managedFields`; raises ValueError when an entry is malformed (the same
    checks as DecodeManagedFields)."""
    managed: Managed = {}
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise ValueError(f"managed fields entry {i} is not an object")
        operation = raw.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = raw.get("apiVersion")
        if not api_version or not isinstance(api_version, str):
            raise ValueError("apiVersion must not be empty")
        fields_type = raw.get("fieldsType")
        if not fields_type:
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {fields_type!r} in managed fields entry {i}")
        entry = Entry(
            manager=str(raw.get("manager") or ""),
            operation=operation,
            api_version=api_version,
            subresource=str(raw.get("subresource") or ""),
            time=raw.get("time"),
            fields=from_fields_v1(raw.get("fieldsV1") or {}),
        )
        if isinstance(raw.get("fieldsV1"), dict):
            entry.raw = (entry.fields, raw["fieldsV1"])
        managed[entry.ident] = entry
    return managed


def decode_lenient(entries: Any) -> Managed:
    """decode(), or nothing when the stored list is unreadable (kube resets it then)."""
    try:
        return decode(entries)
    except (ValueError, TypeError):
        return {}


def _seconds(time: str | None) -> float:
    if not time:
        return 0.0
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0.0


def encode(managed: Managed) -> list[dict[str, Any]]:
    """The managedFields list, sorted as kube sorts it (operation, time, manager, version)."""
    entries = [e for e in managed.values() if e.fields]
    entries.sort(key=lambda e: (e.operation, _seconds(e.time), e.manager, e.api_version,
                                e.subresource))
    return [e.to_json() for e in entries]


def cap_update_managers(managed: Managed) -> None:
    """Fold the oldest Update managers into `ancient-changes` (one per apiVersion) until at most
    ten remain (capmanagers.go)."""
    updaters = [e for e in managed.values() if e.operation == UPDATE]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda e: (_seconds(e.time), e.ident_json()))
    first_of_version: dict[str, Entry] = {}
    length = len(updaters)
    for entry in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        bucket_id = identity(ANCIENT, UPDATE, entry.api_version)
        first = first_of_version.get(entry.api_version)
        if first is None:
            first_of_version[entry.api_version] = entry
            continue
        bucket = managed.get(bucket_id)
        if bucket is None:
            managed.pop(first.ident, None)
            bucket = Entry(ANCIENT, UPDATE, entry.api_version, "", first.time, set(first.fields))
            managed[bucket_id] = bucket
        bucket.fields = entry.fields | bucket.fields
        bucket.time = entry.time
        managed.pop(entry.ident, None)
        length -= 1


def conflict_error(conflicts: dict[Ident, FieldSet], managed: Managed) -> StatusError:
    """The 409 kube returns when an apply would change fields other managers own."""
    ordered = sorted(conflicts, key=lambda ident: managed[ident].ident_json())
    pairs: list[tuple[Entry, Path]] = [
        (managed[ident], path)
        for ident in ordered
        for path in sorted(conflicts[ident], key=path_sort_key)
    ]
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {e.printable()}",
         "field": path_string(p)}
        for e, p in pairs
    ]
    if len(pairs) == 1:
        entry, path = pairs[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {entry.printable()}: {path_string(path)}"
        )
    else:
        lines = []
        for ident in ordered:
            lines.append(f"conflicts with {managed[ident].printable()}:")
            lines.extend(f"- {path_string(p)}" for p in sorted(conflicts[ident], key=path_sort_key))
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, {"causes": causes})
