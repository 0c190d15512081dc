"""Validation of the core/v1 kinds other than Pod and Service.

Follows kubernetes `pkg/apis/core/validation/validation.go` (1.32): ConfigMap/Secret keys and
immutability, Namespace, Node, PersistentVolume(Claim), ReplicationController, PodTemplate,
Endpoints and the remaining metadata-only kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pocketkube.api.validation import errs, meta, quantity
from pocketkube.api.validation.access import items, li, m, n, n0, opt_m, s, smap
from pocketkube.api.validation.core_container import PROTOCOLS
from pocketkube.api.validation.core_pod import VOLUME_SOURCES, validate_pod_template
from pocketkube.api.validation.core_service import is_ip
from pocketkube.api.validation.errs import Cause

MAX_DATA_SIZE = 1024 * 1024
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def _meta(obj: dict[str, Any], old: dict[str, Any] | None, name_fn: meta.NameFn) -> list[Cause]:
    if old is None:
        return meta.validate_object_meta(m(obj, "metadata"), name_fn)
    return meta.validate_object_meta_update(m(obj, "metadata"), m(old, "metadata"))


def _immutable_data(obj: dict[str, Any], old: dict[str, Any], keys: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    out: list[Cause] = []
    if obj.get("immutable") is not True:
        out.append(errs.forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            out.append(errs.forbidden(key, "field is immutable when `immutable` is set"))
    return out


def validate_config_map(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    data, binary = m(obj, "data"), m(obj, "binaryData")
    total = 0
    for field_name, bag, other, other_name in (("data", data, binary, "binaryData"),
                                               ("binaryData", binary, data, "data")):
        for key in sorted(bag):
            out += [errs.invalid(f"{field_name}[{key}]", key, msg) for msg in meta.is_config_map_key(key)]
            if key in other:
                out.append(errs.invalid(f"{field_name}[{key}]", key,
                                        f"duplicate of key present in {other_name}"))
            total += len(str(bag[key] or "").encode())
    if total > MAX_DATA_SIZE:
        out.append(errs.too_long("", MAX_DATA_SIZE))
    if old is not None:
        out += _immutable_data(obj, old, ("data", "binaryData"))
    return out


def validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    data = m(obj, "data")
    total = 0
    for key in sorted(data):
        out += [errs.invalid(f"data[{key}]", key, msg) for msg in meta.is_config_map_key(key)]
        total += len(str(data[key] or "")) * 3 // 4
    if total > MAX_DATA_SIZE:
        out.append(errs.too_long("data", MAX_DATA_SIZE))
    stype = s(obj, "type")
    if stype == "kubernetes.io/service-account-token":
        if not smap(m(obj, "metadata"), "annotations").get("kubernetes.io/service-account.name"):
            out.append(errs.required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif stype == "kubernetes.io/dockercfg" and ".dockercfg" not in data:
        out.append(errs.required("data[.dockercfg]"))
    elif stype == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" not in data:
        out.append(errs.required("data[.dockerconfigjson]"))
    elif stype == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        out += [errs.required("data[username]"), errs.required("data[password]")]
    elif stype == "kubernetes.io/ssh-auth" and not data.get("ssh-privatekey"):
        out.append(errs.required("data[ssh-privatekey]"))
    elif stype == "kubernetes.io/tls":
        out += [errs.required(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data]
    if old is not None:
        out += errs.immutable("type", stype, s(old, "type"))
        out += _immutable_data(obj, old, ("data",))
    return out


# --- Namespace, Node ----------------------------------------------------------------------------


def validate_namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_label)
    for f in li(m(obj, "spec"), "finalizers"):
        if not isinstance(f, str):
            continue
        out += meta.qualified_name(f, "spec.finalizers")
        if "/" not in f and f not in STANDARD_FINALIZERS:
            out.append(errs.invalid("spec.finalizers", f,
                                    "name is neither a standard finalizer name nor is it fully qualified"))
    return out


def validate_node(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(items(spec, "taints")):
        tp = f"spec.taints[{i}]"
        out += meta.qualified_name(s(t, "key"), f"{tp}.key")
        effect = s(t, "effect")
        if not effect:
            out.append(errs.required(f"{tp}.effect"))
        elif effect not in TAINT_EFFECTS:
            out.append(errs.not_supported(f"{tp}.effect", effect, TAINT_EFFECTS))
        if (s(t, "key"), effect) in seen:
            out.append(errs.duplicate(f"{tp}", errs.GoRepr(
                f"core.Taint{{Key:{errs.go_quote(s(t, 'key'))}, Value:{errs.go_quote(s(t, 'value'))}, "
                f"Effect:{errs.go_quote(effect)}, TimeAdded:<nil>}}")))
        seen.add((s(t, "key"), effect))
    return out


# --- PersistentVolume(Claim) --------------------------------------------------------------------


def validate_persistent_volume(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    modes = li(spec, "accessModes")
    if not modes:
        out.append(errs.required("spec.accessModes"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            out.append(errs.not_supported("spec.accessModes", mode, ACCESS_MODES))
    capacity = m(spec, "capacity")
    if not capacity:
        out.append(errs.required("spec.capacity"))
    elif "storage" not in capacity or len(capacity) > 1:
        out.append(errs.not_supported("spec.capacity", errs.GoRepr("core.ResourceList{...}"), ["storage"]))
    policy = s(spec, "persistentVolumeReclaimPolicy")
    if policy and policy not in ("Delete", "Recycle", "Retain"):
        out.append(errs.not_supported("spec.persistentVolumeReclaimPolicy", policy,
                                      ["Delete", "Recycle", "Retain"]))
    if not any(spec.get(k) is not None for k in VOLUME_SOURCES + ("local",)):
        out.append(errs.required("spec", "must specify a volume type"))
    return out


def validate_persistent_volume_claim(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    modes = li(spec, "accessModes")
    if not modes:
        out.append(errs.required("spec.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            out.append(errs.not_supported("spec.accessModes", mode, ACCESS_MODES))
    requests = m(m(spec, "resources"), "requests")
    if "storage" not in requests:
        out.append(errs.required("spec.resources[storage]"))
    else:
        amount = quantity.value(requests["storage"])
        if amount is not None and amount <= 0:
            out.append(errs.invalid("spec.resources[storage]", quantity.to_string(requests["storage"]),
                                    "must be greater than zero"))
    if old is not None:
        new_spec, old_spec = dict(spec), dict(m(old, "spec"))
        if not s(old_spec, "volumeName"):
            old_spec["volumeName"] = new_spec.get("volumeName")
        if s(old_spec, "volumeName"):
            new_spec["resources"] = old_spec.get("resources")
        if {k: v for k, v in new_spec.items() if v is not None} != \
                {k: v for k, v in old_spec.items() if v is not None}:
            out.append(errs.forbidden(
                "spec", "spec is immutable after creation except resources.requests for bound claims"))
    return out


# --- controllers and templates ------------------------------------------------------------------


def validate_replication_controller(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    out += errs.nonnegative("spec.minReadySeconds", n(spec, "minReadySeconds"))
    selector = smap(spec, "selector")
    if not selector:
        out.append(errs.required("spec.selector"))
    out += errs.nonnegative("spec.replicas", n(spec, "replicas"))
    template = opt_m(spec, "template")
    if template is None:
        out.append(errs.required("spec.template"))
        return out
    labels = smap(m(template, "metadata"), "labels")
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        out.append(errs.invalid("spec.template.metadata.labels", errs.go_map_ss(labels),
                                "`selector` does not match template `labels`"))
    out += validate_pod_template(template, "spec.template")
    tspec = m(template, "spec")
    if s(tspec, "restartPolicy") != "Always":
        out.append(errs.not_supported("spec.template.spec.restartPolicy",
                                      s(tspec, "restartPolicy"), ["Always"]))
    if n(tspec, "activeDeadlineSeconds") is not None:
        out.append(errs.forbidden("spec.template.spec.activeDeadlineSeconds",
                                  "activeDeadlineSeconds in ReplicationController is not Supported"))
    return out


def validate_pod_template_kind(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    return out + validate_pod_template(m(obj, "template"), "template")


def validate_endpoints(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    for i, subset in enumerate(items(obj, "subsets")):
        sp = f"subsets[{i}]"
        if not li(subset, "addresses") and not li(subset, "notReadyAddresses"):
            out.append(errs.required(sp, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, a in enumerate(items(subset, key)):
                if not is_ip(s(a, "ip")):
                    out.append(errs.invalid(f"{sp}.{key}[{j}].ip", s(a, "ip"),
                                            "must be a valid IP address"))
        for j, p in enumerate(items(subset, "ports")):
            pp = f"{sp}.ports[{j}]"
            out += [errs.invalid(f"{pp}.port", n0(p, "port"), msg)
                    for msg in meta.is_valid_port_num(n0(p, "port"))]
            proto = s(p, "protocol")
            if not proto:
                out.append(errs.required(f"{pp}.protocol"))
            elif proto not in PROTOCOLS:
                out.append(errs.not_supported(f"{pp}.protocol", proto, PROTOCOLS))
    return out


def validate_meta_only(
    name_fn: meta.NameFn,
) -> Callable[[dict[str, Any], dict[str, Any] | None], list[Cause]]:
    """A validator for kinds whose only rules are their metadata's."""
    def check(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        return _meta(obj, old, name_fn)
    return check
