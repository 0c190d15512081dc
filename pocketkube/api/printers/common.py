"""Shared helpers for the server-side table printers.

kube-apiserver answers `Accept: application/json;as=Table;...` with cells computed by the Go
print functions of `pkg/printers/internalversion`; those lean on a handful of apimachinery
formatters (`duration.HumanDuration`, `labels.FormatLabels`, `metav1.FormatLabelSelector`, ...).
They are re-implemented here because their exact text is what `kubectl get` shows, and no
Python library reproduces it.

Column descriptions come from the Go `SwaggerDoc()` of the fields, which is the same text as
the OpenAPI field descriptions; they are looked up in the bundled 1.32 schema the first time a
kind's columns are requested. Where printers.go cites a beta version that 1.32 no longer ships
(e.g. `extensions/v1beta1.ReplicaSetSpec`), the stable equivalent is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pocketkube.api import schema

Obj = dict[str, Any]
RowFn = Callable[[Obj, datetime], list[Any]]
# A description is literal text, or (definition suffix, field) resolved in the 1.32 schema.
Desc = str | tuple[str, str]

META = "apimachinery.pkg.apis.meta.v1.ObjectMeta"
NAME_DESC: Desc = (META, "name")
AGE_DESC: Desc = (META, "creationTimestamp")
CONTAINERS_DESC = "Names of each container in the template."
IMAGES_DESC = "Images referenced by each container in the template."


@dataclass(frozen=True)
class Col:
    """One column as written in printers.go `AddHandlers`."""

    name: str
    type: str = "string"
    desc: Desc = ""
    priority: int = 0
    format: str = ""


NAME_COL = Col("Name", desc=NAME_DESC, format="name")
AGE_COL = Col("Age", desc=AGE_DESC)


def _describe(desc: Desc) -> str:
    if isinstance(desc, str):
        return desc
    defname, fieldname = desc
    prefix = "io.k8s." if defname.startswith("apimachinery.") else "io.k8s.api."
    definition = schema.definitions().get(prefix + defname) or {}
    return (definition.get("properties", {}).get(fieldname) or {}).get("description", "")


def materialize(cols: Iterable[Col]) -> list[dict[str, Any]]:
    """The JSON column definitions, in kube's field order."""
    return [
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": _describe(c.desc),
            "priority": c.priority,
        }
        for c in cols
    ]


# --- time -------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration`: ~2-3 significant figures of a duration."""
    secs = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (metav1.Time / MicroTime) as an aware datetime; None when unset."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    """printers.go `translateTimestampSince`: "<unknown>" for an unset time."""
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def ago(t: datetime, now: datetime) -> str:
    """HumanDuration of the time elapsed since an already parsed instant."""
    return human_duration((now - t).total_seconds())


def aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


# --- labels and selectors -----------------------------------------------------------------


def format_labels(labels: Mapping[str, str] | None) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs, "<none>" when empty."""
    if not labels:
        return "<none>"
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))


_OPS = {"In": " in ", "NotIn": " notin "}


def selector_string(sel: Mapping[str, Any] | None) -> str:
    """`metav1.LabelSelectorAsSelector(sel).String()`; "<error>" for an invalid operator."""
    if not sel:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in sel.get("matchExpressions") or ():
        key, op = expr.get("key", ""), expr.get("operator")
        values = list(expr.get("values") or ())
        if op in _OPS:
            inner = values[0] if len(values) == 1 else ",".join(sorted(values))
            reqs.append((key, f"{key}{_OPS[op]}({inner})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, "!" + key))
        else:
            return "<error>"
    reqs.sort(key=lambda r: r[0])
    return ",".join(r[1] for r in reqs)


def format_selector(sel: Mapping[str, Any] | None) -> str:
    """`metav1.FormatLabelSelector`: like selector_string, "<none>" when it selects all/none."""
    return selector_string(sel) or "<none>"


# --- misc ---------------------------------------------------------------------------------


def containers_of(template: Mapping[str, Any] | None) -> list[Obj]:
    return ((template or {}).get("spec") or {}).get("containers") or []


def layout_containers(containers: Iterable[Mapping[str, Any]]) -> tuple[str, str]:
    """printers.go `layoutContainerCells`: comma-joined names and images."""
    names: list[str] = []
    images: list[str] = []
    for c in containers:
        names.append(c.get("name", ""))
        images.append(c.get("image", ""))
    return ",".join(names), ",".join(images)


def int_or_string(value: Any) -> str:
    """`intstr.IntOrString.String()`."""
    return str(value) if value is not None else ""


def more_list(items: list[str], count: int, limit: int, empty: str) -> str:
    """The "a,b,c + N more..." cells used for endpoints, ports and hosts."""
    ret = ",".join(items)
    if count > limit:
        return f"{ret} + {count - limit} more..."
    return ret or empty


def name_age(obj: Obj, now: datetime) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("name", ""), since(meta.get("creationTimestamp"), now)
