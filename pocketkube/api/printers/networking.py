"""Table printers for networking.k8s.io (Ingress, IngressClass, NetworkPolicy) and
discovery.k8s.io EndpointSlices, as printers.go prints them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import (
    AGE_COL,
    NAME_COL,
    Col,
    Obj,
    format_selector,
    more_list,
    name_age,
)

INGRESS_COLUMNS = (
    NAME_COL,
    Col(
        "Class",
        desc="The name of the IngressClass resource that should be used for additional "
        "configuration",
    ),
    Col("Hosts", desc="Hosts that incoming requests are matched against before the ingress rule"),
    Col("Address", desc="Address is a list containing ingress points for the load-balancer"),
    Col("Ports", desc="Ports of TLS configurations that open"),
    AGE_COL,
)


def format_hosts(rules: list[Obj]) -> str:
    """printers.go `formatHosts`: three hosts, then "+ N more..." counting every rule."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    ret = ",".join(hosts)
    return f"{ret} + {len(rules) - 3} more..." if more else ret


def ingress_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    lb = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    addresses = {i.get("ip") or i.get("hostname") or "" for i in lb} - {""}
    class_name = spec.get("ingressClassName")
    name, age = name_age(obj, now)
    return [
        name,
        "<none>" if class_name is None else class_name,
        format_hosts(spec.get("rules") or []),
        ",".join(sorted(addresses)),
        "80, 443" if spec.get("tls") else "80",
        age,
    ]


INGRESS_CLASS_COLUMNS = (
    NAME_COL,
    Col("Controller", desc="Controller that is responsible for handling this class"),
    Col("Parameters", desc="A reference to a resource with additional parameters"),
    AGE_COL,
)


def ingress_class_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    params = spec.get("parameters")
    params_cell = "<none>"
    if params is not None:
        params_cell = params.get("kind", "")
        if params.get("apiGroup") is not None:
            params_cell += "." + params["apiGroup"]
        params_cell += "/" + params.get("name", "")
    name, age = name_age(obj, now)
    return [name, spec.get("controller", ""), params_cell, age]


NETWORK_POLICY_COLUMNS = (
    NAME_COL,
    Col("Pod-Selector", desc=("networking.v1.NetworkPolicySpec", "podSelector")),
    AGE_COL,
)


def network_policy_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    selector = (obj.get("spec") or {}).get("podSelector") or {}
    return [name, format_selector(selector), age]


_ES = "discovery.v1.EndpointSlice"

ENDPOINT_SLICE_COLUMNS = (
    NAME_COL,
    Col("AddressType", desc=(_ES, "addressType")),
    Col("Ports", desc=(_ES, "ports")),
    Col("Endpoints", desc=(_ES, "endpoints")),
    AGE_COL,
)


def endpoint_slice_row(obj: Obj, now: datetime) -> list[Any]:
    ports = obj.get("ports") or []
    port_cells: list[str] = []
    for port in ports[:3]:
        if port.get("port") is not None:
            port_cells.append(str(port["port"]))
        elif port.get("name") is not None:
            port_cells.append(port["name"])
        else:
            port_cells.append("*")
    addresses: list[str] = []
    count = 0
    for endpoint in obj.get("endpoints") or ():
        for address in endpoint.get("addresses") or ():
            if len(addresses) < 3:
                addresses.append(address)
            count += 1
    name, age = name_age(obj, now)
    return [
        name,
        obj.get("addressType", ""),
        more_list(port_cells, len(ports), 3, "<unset>"),
        more_list(addresses, count, 3, "<unset>"),
        age,
    ]


PRINTERS = {
    ("networking.k8s.io", "Ingress"): (INGRESS_COLUMNS, ingress_row),
    ("networking.k8s.io", "IngressClass"): (INGRESS_CLASS_COLUMNS, ingress_class_row),
    ("networking.k8s.io", "NetworkPolicy"): (NETWORK_POLICY_COLUMNS, network_policy_row),
    ("discovery.k8s.io", "EndpointSlice"): (ENDPOINT_SLICE_COLUMNS, endpoint_slice_row),
}
