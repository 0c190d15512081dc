"""Table printers for the core/v1 kinds other than Pods, volumes and Events.

Services, Nodes, Namespaces, Endpoints, ConfigMaps, Secrets, ServiceAccounts,
ReplicationControllers, ResourceQuotas and ComponentStatuses, cell for cell as printers.go
prints them (`<none>`/`<pending>` placeholders, `80:30080/TCP` ports, `Ready,SchedulingDisabled`).
Objects are read as stored v1 JSON; where kube's decoding would apply a default or a v1 ->
internal conversion rule (e.g. `spec.clusterIP` winning over `clusterIPs[0]`), it is applied
here too.
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
    layout_containers,
    name_age,
)
from pocketkube.api.printers.quantity import qstr

SERVICE_COLUMNS = (
    NAME_COL,
    Col("Type", desc=("core.v1.ServiceSpec", "type")),
    Col("Cluster-IP", desc=("core.v1.ServiceSpec", "clusterIP")),
    Col("External-IP", desc=("core.v1.ServiceSpec", "externalIPs")),
    Col("Port(s)", desc=("core.v1.ServiceSpec", "ports")),
    AGE_COL,
    Col("Selector", desc=("core.v1.ServiceSpec", "selector"), priority=1),
)


def _lb_ingress(ingress: list[Obj] | None) -> str:
    """`loadBalancerStatusStringer` with wide output: sorted unique IPs/hostnames."""
    found = {i.get("ip") or i.get("hostname") for i in ingress or ()}
    found.discard(None)
    found.discard("")
    return ",".join(sorted(found))


def _external_ip(spec: Obj, status: Obj) -> str:
    svc_type = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        lb = _lb_ingress((status.get("loadBalancer") or {}).get("ingress"))
        if external:
            return ",".join((lb.split(",") if lb else []) + external)
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def service_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    name, age = name_age(obj, now)
    cluster_ip = spec.get("clusterIP") or next(iter(spec.get("clusterIPs") or ()), "<none>")
    pieces = []
    for p in spec.get("ports") or ():
        proto = p.get("protocol") or "TCP"
        node_port = p.get("nodePort") or 0
        if node_port > 0:
            pieces.append(f"{p.get('port', 0)}:{node_port}/{proto}")
        else:
            pieces.append(f"{p.get('port', 0)}/{proto}")
    return [
        name,
        spec.get("type") or "ClusterIP",
        cluster_ip,
        _external_ip(spec, obj.get("status") or {}),
        ",".join(pieces) or "<none>",
        age,
        format_labels(spec.get("selector")),
    ]


NODE_COLUMNS = (
    NAME_COL,
    Col("Status", desc="The status of the node"),
    Col("Roles", desc="The roles of the node"),
    AGE_COL,
    Col("Version", desc=("core.v1.NodeSystemInfo", "kubeletVersion")),
    Col("Internal-IP", desc=("core.v1.NodeStatus", "addresses"), priority=1),
    Col("External-IP", desc=("core.v1.NodeStatus", "addresses"), priority=1),
    Col("OS-Image", desc=("core.v1.NodeSystemInfo", "osImage"), priority=1),
    Col("Kernel-Version", desc=("core.v1.NodeSystemInfo", "kernelVersion"), priority=1),
    Col(
        "Container-Runtime",
        desc=("core.v1.NodeSystemInfo", "containerRuntimeVersion"),
        priority=1,
    ),
)

_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_roles(labels: dict[str, str]) -> str:
    roles = set()
    for k, v in labels.items():
        if k.startswith(_ROLE_PREFIX):
            if role := k[len(_ROLE_PREFIX) :]:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or "<none>"


def _address(addresses: list[Obj], kind: str) -> str:
    return next((a.get("address", "") for a in addresses if a.get("type") == kind), "<none>")


def node_row(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = None
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            ready = cond  # the last one wins, as in kube's condition map
    states = (
        ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    )
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []
    name, age = name_age(obj, now)
    return [
        name,
        ",".join(states),
        _node_roles(meta.get("labels") or {}),
        age,
        info.get("kubeletVersion", ""),
        _address(addresses, "InternalIP"),
        _address(addresses, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NAMESPACE_COLUMNS = (NAME_COL, Col("Status", desc="The status of the namespace"), AGE_COL)


def namespace_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [name, (obj.get("status") or {}).get("phase") or "Active", age]


ENDPOINTS_COLUMNS = (NAME_COL, Col("Endpoints", desc=("core.v1.Endpoints", "subsets")), AGE_COL)


def _join_host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(subsets: list[Obj] | None) -> str:
    """printers.go `formatEndpoints`: up to three `ip:port` entries then "+ N more..."."""
    if not subsets:
        return "<none>"
    out: list[str] = []
    count = 0
    for ss in subsets:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:  # headless services may have no ports
            count += len(addresses)
            out.extend(a.get("ip", "") for a in addresses[: max(0, 3 - len(out))])
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses[: max(0, 3 - len(out))]:
                out.append(_join_host_port(a.get("ip", ""), port.get("port", 0)))
    ret = ",".join(out)
    return f"{ret} + {count - 3} more..." if count > 3 and len(out) == 3 else ret


def endpoints_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [name, format_endpoints(obj.get("subsets")), age]


CONFIGMAP_COLUMNS = (NAME_COL, Col("Data", desc=("core.v1.ConfigMap", "data")), AGE_COL)


def configmap_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [name, len(obj.get("data") or ()) + len(obj.get("binaryData") or ()), age]


SECRET_COLUMNS = (
    NAME_COL,
    Col("Type", desc=("core.v1.Secret", "type")),
    Col("Data", desc=("core.v1.Secret", "data")),
    AGE_COL,
)


def secret_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    # v1 -> internal conversion merges stringData into data.
    keys = set(obj.get("data") or ()) | set(obj.get("stringData") or ())
    return [name, obj.get("type") or "Opaque", len(keys), age]


SERVICE_ACCOUNT_COLUMNS = (
    NAME_COL,
    Col("Secrets", desc=("core.v1.ServiceAccount", "secrets")),
    AGE_COL,
)


def service_account_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [name, len(obj.get("secrets") or ()), age]


RC_COLUMNS = (
    NAME_COL,
    Col("Desired", "integer", ("core.v1.ReplicationControllerSpec", "replicas")),
    Col("Current", "integer", ("core.v1.ReplicationControllerStatus", "replicas")),
    Col("Ready", "integer", ("core.v1.ReplicationControllerStatus", "readyReplicas")),
    AGE_COL,
    Col("Containers", desc=CONTAINERS_DESC, priority=1),
    Col("Images", desc=IMAGES_DESC, priority=1),
    Col("Selector", desc=("core.v1.ReplicationControllerSpec", "selector"), priority=1),
)


def rc_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(spec.get("template")))
    replicas = spec.get("replicas")
    return [
        name,
        1 if replicas is None else replicas,
        status.get("replicas") or 0,
        status.get("readyReplicas") or 0,
        age,
        names,
        images,
        format_labels(spec.get("selector")),
    ]


RESOURCE_QUOTA_COLUMNS = (
    NAME_COL,
    Col(
        "Request",
        desc="Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    Col(
        "Limit",
        desc="Limits control the maximum amount of cpu/memory that a container may use "
        "independent of contention on the node.",
    ),
    AGE_COL,
)


def resource_quota_row(obj: Obj, now: datetime) -> list[Any]:
    status = obj.get("status") or {}
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {qstr(used.get(resource))}/{qstr(hard[resource])}")
    name, age = name_age(obj, now)
    return [name, ", ".join(requests), ", ".join(limits), age]


COMPONENT_STATUS_COLUMNS = (
    NAME_COL,
    Col("Status", desc="Status of the component conditions"),
    Col("Message", desc="Message of the component conditions"),
    Col("Error", desc="Error of the component conditions"),
)


def component_status_row(obj: Obj, now: datetime) -> list[Any]:
    status, message, error = "Unknown", "", ""
    for cond in obj.get("conditions") or ():
        if cond.get("type") == "Healthy":
            status = "Healthy" if cond.get("status") == "True" else "Unhealthy"
            message, error = cond.get("message", ""), cond.get("error", "")
            break
    return [(obj.get("metadata") or {}).get("name", ""), status, message, error]


PRINTERS = {
    ("", "Service"): (SERVICE_COLUMNS, service_row),
    ("", "Node"): (NODE_COLUMNS, node_row),
    ("", "Namespace"): (NAMESPACE_COLUMNS, namespace_row),
    ("", "Endpoints"): (ENDPOINTS_COLUMNS, endpoints_row),
    ("", "ConfigMap"): (CONFIGMAP_COLUMNS, configmap_row),
    ("", "Secret"): (SECRET_COLUMNS, secret_row),
    ("", "ServiceAccount"): (SERVICE_ACCOUNT_COLUMNS, service_account_row),
    ("", "ReplicationController"): (RC_COLUMNS, rc_row),
    ("", "ResourceQuota"): (RESOURCE_QUOTA_COLUMNS, resource_quota_row),
    ("", "ComponentStatus"): (COMPONENT_STATUS_COLUMNS, component_status_row),
}
