"""Service validation: ports, types, session affinity, traffic policies, cluster IPs.

Follows `ValidateService` and `ValidateServiceUpdate` in kubernetes
`pkg/apis/core/validation/validation.go` (1.32). Node-port range checks belong to the port
allocator of the service registry, which knows the configured range.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pocketkube.api.validation import errs, meta
from pocketkube.api.validation.access import items, li, m, n0, s, smap
from pocketkube.api.validation.core_container import PROTOCOLS
from pocketkube.api.validation.errs import Cause

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _meta(obj: dict[str, Any], old: dict[str, Any] | None, name_fn: meta.NameFn) -> list[Cause]:
    if old is None:
        return meta.validate_object_meta(m(obj, "metadata"), name_fn)
    return meta.validate_object_meta_update(m(obj, "metadata"), m(old, "metadata"))


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _service_port(p: dict[str, Any], path: str, require_name: bool, names: set[str]) -> list[Cause]:
    out: list[Cause] = []
    name = s(p, "name")
    if require_name and not name:
        out.append(errs.required(f"{path}.name"))
    elif name:
        out += meta.dns1123_label(name, f"{path}.name")
        if name in names:
            out.append(errs.duplicate(f"{path}.name", name))
        names.add(name)
    port = n0(p, "port")
    out += [errs.invalid(f"{path}.port", port, msg) for msg in meta.is_valid_port_num(port)]
    proto = s(p, "protocol")
    if not proto:
        out.append(errs.required(f"{path}.protocol"))
    elif proto not in PROTOCOLS:
        out.append(errs.not_supported(f"{path}.protocol", proto, PROTOCOLS))
    target = p.get("targetPort")
    if isinstance(target, str):
        out += [errs.invalid(f"{path}.targetPort", target, msg)
                for msg in meta.is_valid_port_name(target)]
    elif isinstance(target, int) and not isinstance(target, bool):
        out += [errs.invalid(f"{path}.targetPort", target, msg)
                for msg in meta.is_valid_port_num(target)]
    app = s(p, "appProtocol")
    if app:
        out += meta.qualified_name(app, f"{path}.appProtocol")
    return out


def _service_port_repr(proto: str, port: int) -> errs.GoRepr:
    return errs.GoRepr(
        f"core.ServicePort{{Name:\"\", Protocol:{errs.go_quote(proto)}, AppProtocol:(*string)(nil), "
        f"Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}")


def validate_service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns1035_label)
    spec = m(obj, "spec")
    stype = s(spec, "type")
    ports = items(spec, "ports")
    cluster_ip = s(spec, "clusterIP")
    headless = cluster_ip == "None"
    if not ports and not headless and stype != "ExternalName":
        out.append(errs.required("spec.ports"))
    if stype not in SERVICE_TYPES:
        out.append(errs.not_supported("spec.type", stype, SERVICE_TYPES))
    if stype == "ExternalName":
        if cluster_ip:
            out.append(errs.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        cname = s(spec, "externalName").removesuffix(".")
        if cname:
            out += meta.dns1123_subdomain(cname, "spec.externalName")
        else:
            out.append(errs.required("spec.externalName"))
    names: set[str] = set()
    for i, p in enumerate(ports):
        out += _service_port(p, f"spec.ports[{i}]", len(ports) > 1, names)
    if stype != "ExternalName":
        out += meta.validate_labels(smap(spec, "selector"), "spec.selector")
    affinity = s(spec, "sessionAffinity")
    if not affinity:
        out.append(errs.required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        out.append(errs.not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    cluster_ips = [x for x in li(spec, "clusterIPs") if isinstance(x, str)]
    if cluster_ips and cluster_ip and cluster_ips[0] != cluster_ip:
        out.append(errs.invalid("spec.clusterIPs", errs.go_slice("string", cluster_ips),
                                "first value must match `clusterIP`"))
    for i, ip in enumerate(cluster_ips):
        if ip == "None":
            if i > 0 or len(cluster_ips) > 1:
                out.append(errs.invalid(f"spec.clusterIPs[{i}]", ip,
                                        "'None' must be the first and only value"))
        elif not is_ip(ip):
            out.append(errs.invalid(f"spec.clusterIPs[{i}]", ip,
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    for i, ip in enumerate(li(spec, "externalIPs")):
        if isinstance(ip, str) and not is_ip(ip):
            out.append(errs.invalid(f"spec.externalIPs[{i}]", ip,
                                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if stype == "ClusterIP":
        for i, p in enumerate(ports):
            if n0(p, "nodePort"):
                out.append(errs.forbidden(f"spec.ports[{i}].nodePort",
                                          "may not be used when `type` is 'ClusterIP'"))
    seen_node: set[tuple[str, int]] = set()
    seen_port: set[tuple[str, int]] = set()
    for i, p in enumerate(ports):
        proto = s(p, "protocol")
        node_port = n0(p, "nodePort")
        if node_port:
            if (proto, node_port) in seen_node:
                out.append(errs.duplicate(f"spec.ports[{i}].nodePort", node_port))
            seen_node.add((proto, node_port))
        key = (proto, n0(p, "port"))
        if key in seen_port:
            out.append(errs.duplicate(f"spec.ports[{i}]", _service_port_repr(*key)))
        seen_port.add(key)
    if stype == "LoadBalancer":
        for i, p in enumerate(ports):
            if n0(p, "port") == 10250:
                out.append(errs.invalid(f"spec.ports[{i}]", 10250, "may not expose port 10250 "
                                        "externally since it is used by kubelet"))
    out += _traffic_policies(spec, stype)
    if old is not None:
        out += _service_update(spec, m(old, "spec"))
    return out


def _traffic_policies(spec: dict[str, Any], stype: str) -> list[Cause]:
    out: list[Cause] = []
    etp = s(spec, "externalTrafficPolicy")
    external = stype in ("LoadBalancer", "NodePort") or (stype == "ClusterIP" and li(spec, "externalIPs"))
    if not external:
        if etp:
            out.append(errs.invalid("spec.externalTrafficPolicy", etp,
                                    "may only be set for externally-accessible services"))
    elif not etp:
        out.append(errs.required("spec.externalTrafficPolicy"))
    elif etp not in ("Cluster", "Local"):
        out.append(errs.not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    itp = s(spec, "internalTrafficPolicy")
    if not itp:
        if stype in ("ClusterIP", "NodePort", "LoadBalancer"):
            out.append(errs.required("spec.internalTrafficPolicy"))
    elif itp not in ("Cluster", "Local"):
        out.append(errs.not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    policy = s(spec, "ipFamilyPolicy")
    if policy and policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        out.append(errs.not_supported("spec.ipFamilyPolicy", policy,
                                      ["SingleStack", "PreferDualStack", "RequireDualStack"]))
    for i, fam in enumerate(li(spec, "ipFamilies")):
        if fam not in ("IPv4", "IPv6"):
            out.append(errs.not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
    return out


def _service_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    if "ExternalName" in (s(new, "type"), s(old, "type")):
        return []
    if s(new, "clusterIP") == "None" and s(old, "clusterIP") == "None":
        return []

    def ips(spec: dict[str, Any]) -> list[str]:
        got = [x for x in li(spec, "clusterIPs") if isinstance(x, str)]
        return got or ([s(spec, "clusterIP")] if s(spec, "clusterIP") else [])

    new_ips, old_ips = ips(new), ips(old)
    rendered = errs.go_slice("string", new_ips or None)
    out: list[Cause] = []
    if len(old_ips) == len(new_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                out.append(errs.invalid(f"spec.clusterIPs[{i}]", rendered, "may not change once set"))
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            out.append(errs.invalid("spec.clusterIPs[0]", rendered, "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            out.append(errs.invalid("spec.clusterIPs[0]", rendered, "may not change once set"))
    elif old_ips and new_ips[0] != old_ips[0]:
        out.append(errs.invalid("spec.clusterIPs[0]", rendered, "may not change once set"))
    return out
