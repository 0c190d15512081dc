"""Validation of the smaller API groups: networking, policy, scheduling, storage,
coordination, discovery, autoscaling and events.

Each follows its group's `pkg/apis/<group>/validation/validation.go` (1.32) for the rules users
meet when writing manifests by hand; the metadata rules are shared with every other kind.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.validation import errs, meta
from pocketkube.api.validation.access import items, li, m, n, opt_m, s
from pocketkube.api.validation.core_container import PROTOCOLS
from pocketkube.api.validation.errs import Cause


def _meta(obj: dict[str, Any], old: dict[str, Any] | None, name_fn: meta.NameFn) -> list[Cause]:
    if old is None:
        return meta.validate_object_meta(m(obj, "metadata"), name_fn)
    return meta.validate_object_meta_update(m(obj, "metadata"), m(old, "metadata"))


# --- networking ---------------------------------------------------------------------------------


def _ingress_backend(backend: dict[str, Any], path: str) -> list[Cause]:
    svc, res = opt_m(backend, "service"), opt_m(backend, "resource")
    if svc is not None and res is not None:
        return [errs.invalid(path, "", "cannot set both resource and service backends")]
    if res is not None:
        return []
    if svc is None:
        return [errs.invalid(path, "", "resource or service backend is required")]
    out: list[Cause] = []
    name = s(svc, "name")
    if not name:
        out.append(errs.required(f"{path}.service.name"))
    else:
        out += [errs.invalid(f"{path}.service.name", name, msg)
                for msg in meta.name_is_dns1035_label(name, False)]
    port = m(svc, "port")
    pname, pnum = s(port, "name"), n(port, "number") or 0
    if pname and pnum:
        out.append(errs.invalid(path, "", "cannot set both port name & port number"))
    elif pname:
        out += [errs.invalid(f"{path}.service.port.name", pname, msg)
                for msg in meta.is_valid_port_name(pname)]
    elif pnum:
        out += [errs.invalid(f"{path}.service.port.number", pnum, msg)
                for msg in meta.is_valid_port_num(pnum)]
    else:
        out.append(errs.required(path, "port name or number is required"))
    return out


def validate_ingress(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    default = opt_m(spec, "defaultBackend")
    if default is None and not li(spec, "rules"):
        out.append(errs.invalid("spec", errs.GoRepr("networking.IngressSpec{...}"),
                                "either `defaultBackend` or `rules` must be specified"))
    if default is not None:
        out += _ingress_backend(default, "spec.defaultBackend")
    for i, rule in enumerate(items(spec, "rules")):
        rp = f"spec.rules[{i}]"
        host = s(rule, "host")
        if host:
            check = host[2:] if host.startswith("*.") else host
            out += [errs.invalid(f"{rp}.host", host, msg) for msg in meta.is_dns1123_subdomain(check)]
        http = opt_m(rule, "http")
        if http is None:
            continue
        if not li(http, "paths"):
            out.append(errs.required(f"{rp}.http.paths"))
        for j, p in enumerate(items(http, "paths")):
            pp = f"{rp}.http.paths[{j}]"
            ptype, path_value = s(p, "pathType"), s(p, "path")
            if not ptype:
                out.append(errs.required(f"{pp}.pathType", "pathType must be specified"))
            elif ptype not in ("Exact", "ImplementationSpecific", "Prefix"):
                out.append(errs.not_supported(f"{pp}.pathType", ptype,
                                              ["Exact", "ImplementationSpecific", "Prefix"]))
            if ptype in ("Exact", "Prefix") and not path_value.startswith("/"):
                out.append(errs.invalid(f"{pp}.path", path_value, "must be an absolute path"))
            out += _ingress_backend(m(p, "backend"), f"{pp}.backend")
    return out


def validate_network_policy(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    out += meta.validate_label_selector(opt_m(spec, "podSelector"), "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(items(spec, direction)):
            rp = f"spec.{direction}[{i}]"
            for j, port in enumerate(items(rule, "ports")):
                proto = s(port, "protocol")
                if proto and proto not in PROTOCOLS:
                    out.append(errs.not_supported(f"{rp}.ports[{j}].protocol", proto, PROTOCOLS))
            for j, peer in enumerate(items(rule, peers_key)):
                pp = f"{rp}.{peers_key}[{j}]"
                set_fields = [k for k in ("podSelector", "namespaceSelector", "ipBlock")
                              if peer.get(k) is not None]
                if not set_fields:
                    out.append(errs.required(pp, "must specify a peer"))
                if "ipBlock" in set_fields and len(set_fields) > 1:
                    out.append(errs.forbidden(pp, "may not specify both ipBlock and another peer"))
    types = li(spec, "policyTypes")
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            out.append(errs.not_supported(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"]))
    if len(types) > 2:
        out.append(errs.invalid("spec.policyTypes", errs.go_slice("networking.PolicyType", types),
                                "may not specify more than two policyTypes"))
    return out


def validate_ingress_class(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    controller = s(m(obj, "spec"), "controller")
    if not controller:
        out.append(errs.required("spec.controller"))
    elif old is not None and controller != s(m(old, "spec"), "controller"):
        out.append(errs.invalid("spec.controller", controller, "field is immutable"))
    return out


# --- policy, scheduling, storage, coordination, discovery, autoscaling -------------------------


def validate_pdb(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        out.append(errs.invalid("spec", errs.GoRepr("policy.PodDisruptionBudgetSpec{...}"),
                                "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        v = spec.get(key)
        if isinstance(v, str):
            out += [errs.invalid(f"spec.{key}", errs.go_intstr(v), msg) for msg in meta.is_valid_percent(v)]
            if not meta.is_valid_percent(v) and int(v[:-1]) > 100:
                out.append(errs.invalid(f"spec.{key}", errs.go_intstr(v), "must not be greater than 100%"))
        elif isinstance(v, int) and not isinstance(v, bool):
            out += errs.nonnegative(f"spec.{key}", v)
    out += meta.validate_label_selector(opt_m(spec, "selector"), "spec.selector")
    policy = s(spec, "unhealthyPodEvictionPolicy")
    if policy and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        out.append(errs.not_supported("spec.unhealthyPodEvictionPolicy", policy,
                                      ["AlwaysAllow", "IfHealthyBudget"]))
    return out


def validate_priority_class(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    name = s(m(obj, "metadata"), "name")
    value = n(obj, "value") or 0
    if name.startswith("system-") and old is None and name not in (
            "system-node-critical", "system-cluster-critical"):
        out.append(errs.forbidden("metadata.name",
                                  "priority class names with 'system-' prefix are reserved"))
    if value > 1_000_000_000 and not name.startswith("system-"):
        out.append(errs.forbidden("value", "maximum allowed value of a user defined priority is 1000000000"))
    policy = s(obj, "preemptionPolicy")
    if policy and policy not in ("Never", "PreemptLowerPriority"):
        out.append(errs.not_supported("preemptionPolicy", policy, ["Never", "PreemptLowerPriority"]))
    if old is not None:
        if value != (n(old, "value") or 0):
            out.append(errs.forbidden("value", "may not be changed in an update."))
        out += errs.immutable("preemptionPolicy", policy, s(old, "preemptionPolicy"))
    return out


def validate_storage_class(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    provisioner = s(obj, "provisioner")
    if not provisioner:
        out.append(errs.required("provisioner"))
    else:
        out += meta.qualified_name(provisioner.lower(), "provisioner")
    policy = s(obj, "reclaimPolicy")
    if policy and policy not in ("Delete", "Retain"):
        out.append(errs.not_supported("reclaimPolicy", policy, ["Delete", "Retain"]))
    mode = s(obj, "volumeBindingMode")
    if mode and mode not in ("Immediate", "WaitForFirstConsumer"):
        out.append(errs.not_supported("volumeBindingMode", mode, ["Immediate", "WaitForFirstConsumer"]))
    if old is not None:
        if (obj.get("parameters") or {}) != (old.get("parameters") or {}):
            out.append(errs.forbidden("parameters", "updates to parameters are forbidden."))
        if provisioner != s(old, "provisioner"):
            out.append(errs.forbidden("provisioner", "updates to provisioner are forbidden."))
        if obj.get("reclaimPolicy") != old.get("reclaimPolicy"):
            out.append(errs.forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
        out += errs.immutable("volumeBindingMode", mode, s(old, "volumeBindingMode"))
    return out


def validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    duration = n(spec, "leaseDurationSeconds")
    if duration is not None and duration <= 0:
        out.append(errs.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    out += errs.nonnegative("spec.leaseTransitions", n(spec, "leaseTransitions"))
    return out


def validate_endpoint_slice(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    family = s(obj, "addressType")
    if not family:
        out.append(errs.required("addressType"))
    elif family not in ("FQDN", "IPv4", "IPv6"):
        out.append(errs.not_supported("addressType", family, ["FQDN", "IPv4", "IPv6"]))
    for i, ep in enumerate(items(obj, "endpoints")):
        if not li(ep, "addresses"):
            out.append(errs.required(f"endpoints[{i}].addresses", "must contain at least 1 address"))
    for i, p in enumerate(items(obj, "ports")):
        proto = s(p, "protocol")
        if proto and proto not in PROTOCOLS:
            out.append(errs.not_supported(f"ports[{i}].protocol", proto, PROTOCOLS))
        if n(p, "port") is not None:
            out += [errs.invalid(f"ports[{i}].port", n(p, "port"), msg)
                    for msg in meta.is_valid_port_num(n(p, "port") or 0)]
    if old is not None:
        out += errs.immutable("addressType", family, s(old, "addressType"))
    return out


def validate_hpa(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.path_segment_name)
    spec = m(obj, "spec")
    ref = m(spec, "scaleTargetRef")
    for key in ("kind", "name"):
        if not s(ref, key):
            out.append(errs.required(f"spec.scaleTargetRef.{key}"))
    min_r = n(spec, "minReplicas")
    if min_r is not None and min_r < 1:
        out.append(errs.invalid("spec.minReplicas", min_r, "must be greater than or equal to 1"))
    max_r = n(spec, "maxReplicas") or 0
    if max_r < 1:
        out.append(errs.invalid("spec.maxReplicas", max_r, "must be greater than 0"))
    if min_r is not None and max_r < min_r:
        out.append(errs.invalid("spec.maxReplicas", max_r,
                                "must be greater than or equal to `minReplicas`"))
    return out


def validate_event(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    md = m(obj, "metadata")
    involved = m(obj, "involvedObject") or m(obj, "regarding")
    field_name = "involvedObject" if obj.get("involvedObject") is not None else "regarding"
    ns = s(involved, "namespace")
    if ns and s(md, "namespace") and ns != s(md, "namespace"):
        out.append(errs.invalid(f"{field_name}.namespace", ns, "does not match event.namespace"))
    return out
