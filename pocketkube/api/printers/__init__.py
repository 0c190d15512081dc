"""Server-side printing: the `meta.k8s.io/v1` Table columns and cells of every built-in kind.

kube-apiserver answers `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` with the columns
declared in kubernetes `pkg/printers/internalversion/printers.go` and cells computed by its
print functions, always in wide mode (kubectl hides the `priority > 0` columns unless `-o wide`).
Kinds without a printer get apiserver's default table convertor: Name + "Created At".

Public API (pure functions, no I/O):
- `column_definitions(group, kind)` — the column dicts, computed once per kind and shared:
  treat them as read-only.
- `row_cells(group, kind, obj, now)` — the cells of one stored object (v1 JSON dict).
- `row_conditions(group, kind, obj)` — the row's `conditions` (only finished Pods have any).
- `human_duration(seconds)` — apimachinery's `duration.HumanDuration`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pocketkube.api.printers import (
    apps,
    autoscaling,
    batch,
    core,
    core_events,
    core_pods,
    core_volumes,
    networking,
    other,
)
from pocketkube.api.printers.common import (
    AGE_DESC,
    NAME_COL,
    Col,
    Obj,
    RowFn,
    aware,
    human_duration,
    materialize,
    parse_time,
)

__all__ = ["column_definitions", "has_printer", "human_duration", "row_cells", "row_conditions"]

_PRINTERS: dict[tuple[str, str], tuple[tuple[Col, ...], RowFn]] = {}
for _module in (
    core_pods,
    core,
    core_volumes,
    core_events,
    apps,
    batch,
    autoscaling,
    networking,
    other,
):
    _PRINTERS.update(_module.PRINTERS)

DEFAULT_COLUMNS = (NAME_COL, Col("Created At", "date", AGE_DESC))

_columns_cache: dict[tuple[str, str], list[dict[str, Any]]] = {}


def has_printer(group: str, kind: str) -> bool:
    """True when kube has a dedicated printer for the kind (else the default table is used)."""
    return (group, kind) in _PRINTERS


def column_definitions(group: str, kind: str) -> list[dict[str, Any]]:
    """The Table `columnDefinitions` for a kind: {name, type, format, description, priority}."""
    key = (group, kind) if (group, kind) in _PRINTERS else ("", "")
    cached = _columns_cache.get(key)
    if cached is None:
        cols = _PRINTERS[key][0] if key in _PRINTERS else DEFAULT_COLUMNS
        cached = _columns_cache[key] = materialize(cols)
    return cached


def _created_at(obj: Obj) -> str:
    value = (obj.get("metadata") or {}).get("creationTimestamp")
    if isinstance(value, str) and len(value) == 20 and value.endswith("Z"):
        return value
    t = parse_time(value)
    if t is None:
        return "0001-01-01T00:00:00Z"
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def row_cells(group: str, kind: str, obj: Obj, now: datetime) -> list[Any]:
    """One row's cells, in column order, as kube encodes them in JSON (str, int or bool)."""
    printer = _PRINTERS.get((group, kind))
    if printer is None:
        return [(obj.get("metadata") or {}).get("name", ""), _created_at(obj)]
    return printer[1](obj, aware(now))


_POD_DONE = {
    "Succeeded": [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ],
    "Failed": [
        {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
    ],
}


def row_conditions(group: str, kind: str, obj: Obj) -> list[dict[str, str]] | None:
    """TableRow `conditions` (omitted when None): printPod marks finished pods Completed."""
    if group == "" and kind == "Pod":
        return _POD_DONE.get((obj.get("status") or {}).get("phase") or "")
    return None
