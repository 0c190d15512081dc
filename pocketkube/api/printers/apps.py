"""Table printers for apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets and
ControllerRevisions, as printers.go prints them (READY "2/3", integer counters, wide
CONTAINERS/IMAGES/SELECTOR).

`spec.replicas` defaults to 1 when absent, as kube's decoding would default it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import (
    AGE_COL,
    CONTAINERS_DESC,
    IMAGES_DESC,
    NAME_COL,
    Col,
    Obj,
    containers_of,
    format_labels,
    format_selector,
    layout_containers,
    name_age,
    selector_string,
)


def _replicas(spec: Obj) -> int:
    value = spec.get("replicas")
    return 1 if value is None else value


def _wide(*extra: Col) -> tuple[Col, ...]:
    return (
        Col("Containers", desc=CONTAINERS_DESC, priority=1),
        Col("Images", desc=IMAGES_DESC, priority=1),
        *extra,
    )


DEPLOYMENT_COLUMNS = (
    NAME_COL,
    Col("Ready", desc="Number of the pod with ready state"),
    Col("Up-to-date", desc=("apps.v1.DeploymentStatus", "updatedReplicas")),
    Col("Available", desc=("apps.v1.DeploymentStatus", "availableReplicas")),
    AGE_COL,
    *_wide(Col("Selector", desc=("apps.v1.DeploymentSpec", "selector"), priority=1)),
)


def deployment_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(spec.get("template")))
    return [
        name,
        f"{status.get('readyReplicas') or 0}/{_replicas(spec)}",
        status.get("updatedReplicas") or 0,
        status.get("availableReplicas") or 0,
        age,
        names,
        images,
        # Deployment prints the raw selector string: "" rather than "<none>" when empty.
        "<invalid>" if (sel := selector_string(spec.get("selector"))) == "<error>" else sel,
    ]


REPLICA_SET_COLUMNS = (
    NAME_COL,
    Col("Desired", "integer", ("apps.v1.ReplicaSetSpec", "replicas")),
    Col("Current", "integer", ("apps.v1.ReplicaSetStatus", "replicas")),
    Col("Ready", "integer", ("apps.v1.ReplicaSetStatus", "readyReplicas")),
    AGE_COL,
    *_wide(Col("Selector", desc=("apps.v1.ReplicaSetSpec", "selector"), priority=1)),
)


def replica_set_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(spec.get("template")))
    return [
        name,
        _replicas(spec),
        status.get("replicas") or 0,
        status.get("readyReplicas") or 0,
        age,
        names,
        images,
        format_selector(spec.get("selector")),
    ]


STATEFUL_SET_COLUMNS = (
    NAME_COL,
    Col("Ready", desc="Number of the pod with ready state"),
    AGE_COL,
    *_wide(),
)


def stateful_set_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(spec.get("template")))
    ready = (obj.get("status") or {}).get("readyReplicas") or 0
    return [name, f"{ready}/{_replicas(spec)}", age, names, images]


_DS = "apps.v1.DaemonSetStatus"

DAEMON_SET_COLUMNS = (
    NAME_COL,
    Col("Desired", "integer", (_DS, "desiredNumberScheduled")),
    Col("Current", "integer", (_DS, "currentNumberScheduled")),
    Col("Ready", "integer", (_DS, "numberReady")),
    Col("Up-to-date", "integer", (_DS, "updatedNumberScheduled")),
    Col("Available", "integer", (_DS, "numberAvailable")),
    Col("Node Selector", desc=("core.v1.PodSpec", "nodeSelector")),
    AGE_COL,
    *_wide(Col("Selector", desc=("apps.v1.DaemonSetSpec", "selector"), priority=1)),
)


def daemon_set_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    template = spec.get("template") or {}
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(template))
    return [
        name,
        status.get("desiredNumberScheduled") or 0,
        status.get("currentNumberScheduled") or 0,
        status.get("numberReady") or 0,
        status.get("updatedNumberScheduled") or 0,
        status.get("numberAvailable") or 0,
        format_labels((template.get("spec") or {}).get("nodeSelector")),
        age,
        names,
        images,
        format_selector(spec.get("selector")),
    ]


CONTROLLER_REVISION_COLUMNS = (
    NAME_COL,
    Col("Controller", desc="Controller of the object"),
    Col("Revision", desc=("apps.v1.ControllerRevision", "revision")),
    AGE_COL,
)


def controller_name(meta: Obj) -> str:
    """The controlling owner as `kind.group/name` (lower-cased group kind), or "<none>"."""
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller") is True:
            api_version = ref.get("apiVersion") or ""
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            kind = ref.get("kind") or ""
            group_kind = f"{kind}.{group}" if group else kind
            if not group_kind:
                return ref.get("name", "")
            return f"{group_kind.lower()}/{ref.get('name', '')}"
    return "<none>"


def controller_revision_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [name, controller_name(obj.get("metadata") or {}), obj.get("revision") or 0, age]


PRINTERS = {
    ("apps", "Deployment"): (DEPLOYMENT_COLUMNS, deployment_row),
    ("apps", "ReplicaSet"): (REPLICA_SET_COLUMNS, replica_set_row),
    ("apps", "StatefulSet"): (STATEFUL_SET_COLUMNS, stateful_set_row),
    ("apps", "DaemonSet"): (DAEMON_SET_COLUMNS, daemon_set_row),
    ("apps", "ControllerRevision"): (CONTROLLER_REVISION_COLUMNS, controller_revision_row),
}
