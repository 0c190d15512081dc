"""Table printers for autoscaling: HorizontalPodAutoscalers (v2 shape, printers.go
`printHorizontalPodAutoscaler` / `formatHPAMetrics`) and the autoscaling/v1 Scale subresource.

TARGETS shows at most two metrics as `current/target` ("cpu: 45%/80%", "<unknown>/500m") and
counts the rest as "+ N more...".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import AGE_COL, NAME_COL, NAME_DESC, Col, Obj, name_age
from pocketkube.api.printers.quantity import qstr_ptr

_HPA = "autoscaling.v2.HorizontalPodAutoscalerSpec"

HPA_COLUMNS = (
    NAME_COL,
    Col("Reference", desc=(_HPA, "scaleTargetRef")),
    Col("Targets", desc=(_HPA, "metrics")),
    Col("MinPods", desc=(_HPA, "minReplicas")),
    Col("MaxPods", desc=(_HPA, "maxReplicas")),
    Col("Replicas", desc=("autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas")),
    AGE_COL,
)

# metric type -> the field holding its source/status
_FIELD = {
    "External": "external",
    "Pods": "pods",
    "Object": "object",
    "Resource": "resource",
    "ContainerResource": "containerResource",
}


def _metric(spec: Obj, status: Obj | None) -> str:
    mtype = spec.get("type")
    key = _FIELD.get(mtype or "")
    if key is None:
        return "<unknown type>"
    source = spec.get(key) or {}
    target = source.get("target") or {}
    current_src = (status or {}).get(key)
    current = (current_src or {}).get("current") or {}
    unknown = "<unknown>"
    if mtype == "Pods":
        value = qstr_ptr(current.get("averageValue")) if current_src is not None else unknown
        return f"{value}/{qstr_ptr(target.get('averageValue'))}"
    if mtype in ("External", "Object"):
        if target.get("averageValue") is not None:
            avg = current.get("averageValue")
            value = qstr_ptr(avg) if current_src is not None and avg is not None else unknown
            return f"{value}/{qstr_ptr(target['averageValue'])} (avg)"
        value = qstr_ptr(current.get("value")) if current_src is not None else unknown
        return f"{value}/{qstr_ptr(target.get('value'))}"
    # Resource and ContainerResource
    name = source.get("name", "")
    if target.get("averageValue") is not None:
        value = qstr_ptr(current.get("averageValue")) if current_src is not None else unknown
        return f"{name}: {value}/{qstr_ptr(target['averageValue'])}"
    util = current.get("averageUtilization")
    value = f"{util}%" if current_src is not None and util is not None else unknown
    target_util = target.get("averageUtilization")
    return f"{name}: {value}/{'<auto>' if target_util is None else f'{target_util}%'}"


def format_hpa_metrics(specs: list[Obj], statuses: list[Obj]) -> str:
    if not specs:
        return "<none>"
    cells = [
        _metric(spec, statuses[i] if i < len(statuses) else None) for i, spec in enumerate(specs)
    ]
    if len(cells) > 2:
        return f"{', '.join(cells[:2])} + {len(cells) - 2} more..."
    return ", ".join(cells)


def hpa_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_replicas = spec.get("minReplicas")
    name, age = name_age(obj, now)
    return [
        name,
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        format_hpa_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
        "<unset>" if min_replicas is None else str(min_replicas),
        spec.get("maxReplicas") or 0,
        status.get("currentReplicas") or 0,
        age,
    ]


SCALE_COLUMNS = (
    Col("Name", desc=NAME_DESC),
    Col("Desired", "integer", ("autoscaling.v1.ScaleSpec", "replicas")),
    Col("Available", "integer", ("autoscaling.v1.ScaleStatus", "replicas")),
    AGE_COL,
)


def scale_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    replicas = (obj.get("spec") or {}).get("replicas") or 0
    return [name, replicas, (obj.get("status") or {}).get("replicas") or 0, age]


PRINTERS = {
    ("autoscaling", "HorizontalPodAutoscaler"): (HPA_COLUMNS, hpa_row),
    ("autoscaling", "Scale"): (SCALE_COLUMNS, scale_row),
}
