"""Server-side printing: objects as meta.k8s.io/v1 Tables (`kubectl get`) and as
PartialObjectMetadata, as apiserver `pkg/endpoints/handlers/response.go` builds them. The columns
and cells come from pocketkube.api.printers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pocketkube.api import printers
from pocketkube.api.resources import Resource

Obj = dict[str, Any]


def partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def partial_list(items: list[Obj], rv: str, cont: str) -> Obj:
    meta: Obj = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": meta, "items": [partial(o) for o in items]}


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return partial(obj)


def table(r: Resource, objs: list[Obj], rv: str = "", cont: str = "",
          include: str = "Metadata", headers: bool = True,
          now: datetime | None = None) -> Obj:
    now = now or datetime.now(UTC)
    rows = []
    for o in objs:
        row: Obj = {"cells": printers.row_cells(r.group, r.kind, o, now)}
        conds = printers.row_conditions(r.group, r.kind, o)
        if conds is not None:
            row["conditions"] = conds
        ro = _row_object(o, include)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    meta: Obj = {}
    if rv:
        meta["resourceVersion"] = rv
    if cont:
        meta["continue"] = cont
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": printers.column_definitions(r.group, r.kind) if headers else None,
        "rows": rows,
    }
