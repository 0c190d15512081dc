"""Pod and pod-template validation.

Follows `ValidatePodSpec`, `ValidateVolumes` and `ValidatePodUpdate` in kubernetes
`pkg/apis/core/validation/validation.go` (1.32) for the fields users get wrong in practice:
volumes, policies, node selection, tolerations and pod-update immutability; containers are
checked in `core_container`. Exotic fields (security contexts, topology spread, DRA claims) are
accepted as the schema allows.
"""

from __future__ import annotations

import copy
from typing import Any

from pocketkube.api.validation import errs, meta
from pocketkube.api.validation.access import items, li, m, n, opt_m, s, smap
from pocketkube.api.validation.core_container import MAX_INT32, container
from pocketkube.api.validation.errs import Cause

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs",
    "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte",
    "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos",
    "csi", "ephemeral", "image",
)
UPDATABLE_POD_FIELDS = ",".join([
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
])


def _volumes(volumes: list[dict[str, Any]], path: str) -> tuple[list[Cause], set[str]]:
    out: list[Cause] = []
    names: set[str] = set()
    for i, v in enumerate(volumes):
        vp = f"{path}[{i}]"
        name = s(v, "name")
        sources = [k for k in VOLUME_SOURCES if v.get(k) is not None]
        if not sources:
            out.append(errs.required(vp, "must specify a volume type"))
        for extra in sources[1:]:
            out.append(errs.forbidden(f"{vp}.{extra}", "may not specify more than 1 volume type"))
        for src, key in (("configMap", "name"), ("secret", "secretName"), ("hostPath", "path"),
                         ("persistentVolumeClaim", "claimName"), ("nfs", "server"),
                         ("nfs", "path")):
            body = opt_m(v, src)
            if body is not None and not s(body, key):
                out.append(errs.required(f"{vp}.{src}.{key}"))
        if not name:
            out.append(errs.required(f"{vp}.name"))
        else:
            out += meta.dns1123_label(name, f"{vp}.name")
        if name in names:
            out.append(errs.duplicate(f"{vp}.name", name))
        names.add(name)
    return out, names


def validate_pod_spec(spec: dict[str, Any], path: str, is_pod: bool) -> list[Cause]:
    out, volume_names = _volumes(items(spec, "volumes"), f"{path}.volumes")
    containers = items(spec, "containers")
    if not containers:
        out.append(errs.required(f"{path}.containers"))
    seen: set[str] = set()
    for field_name in ("initContainers", "containers"):
        for i, c in enumerate(items(spec, field_name)):
            cp = f"{path}.{field_name}[{i}]"
            out += container(c, cp, volume_names, is_pod)
            name = s(c, "name")
            if name and name in seen:
                out.append(errs.duplicate(f"{cp}.name", name))
            seen.add(name)
    policy = s(spec, "restartPolicy")
    if not policy:
        out.append(errs.required(f"{path}.restartPolicy"))
    elif policy not in RESTART_POLICIES:
        out.append(errs.not_supported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    dns = s(spec, "dnsPolicy")
    if not dns:
        out.append(errs.required(f"{path}.dnsPolicy"))
    elif dns not in DNS_POLICIES:
        out.append(errs.not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    elif dns == "None" and opt_m(spec, "dnsConfig") is None:
        out.append(errs.required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    out += meta.validate_labels(smap(spec, "nodeSelector"), f"{path}.nodeSelector")
    for key in ("serviceAccountName", "nodeName"):
        if s(spec, key):
            out += meta.dns1123_subdomain(s(spec, key), f"{path}.{key}")
    for key in ("hostname", "subdomain"):
        if s(spec, key):
            out += meta.dns1123_label(s(spec, key), f"{path}.{key}")
    ads = n(spec, "activeDeadlineSeconds")
    if ads is not None and not 1 <= ads <= MAX_INT32:
        out.append(errs.invalid(f"{path}.activeDeadlineSeconds", ads, meta.range_error(1, MAX_INT32)))
    out += _tolerations(items(spec, "tolerations"), f"{path}.tolerations")
    return out


def _tolerations(tols: list[dict[str, Any]], path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, t in enumerate(tols):
        tp = f"{path}[{i}]"
        key, op = s(t, "key"), s(t, "operator")
        if key:
            out += meta.qualified_name(key, f"{tp}.key")
        if not key and op != "Exists":
            out.append(errs.invalid(f"{tp}.operator", op,
                                    "operator must be Exists when `key` is empty, which means "
                                    "\"match all values and all keys\""))
        if op not in ("", "Equal", "Exists"):
            out.append(errs.not_supported(f"{tp}.operator", op, ["Equal", "Exists"]))
        if op == "Exists" and s(t, "value"):
            out.append(errs.invalid(f"{tp}.operator", s(t, "value"),
                                    "value must be empty when `operator` is 'Exists'"))
        effect = s(t, "effect")
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            out.append(errs.not_supported(f"{tp}.effect", effect,
                                          ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(errs.invalid(f"{tp}.effect", effect,
                                    "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return out


def validate_pod_template(template: dict[str, Any], path: str) -> list[Cause]:
    """`ValidatePodTemplateSpec`: template metadata plus a pod spec whose images may be empty."""
    tmeta = m(template, "metadata")
    out = meta.validate_labels(smap(tmeta, "labels"), f"{path}.labels")
    out += meta.validate_annotations(smap(tmeta, "annotations"), f"{path}.annotations")
    out += validate_pod_spec(m(template, "spec"), f"{path}.spec", is_pod=False)
    return out


def validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    md = m(obj, "metadata")
    if old is None:
        out = meta.validate_object_meta(md, meta.name_is_dns_subdomain)
        return out + validate_pod_spec(m(obj, "spec"), "spec", is_pod=True)
    out = meta.validate_object_meta_update(md, m(old, "metadata"))
    out += validate_pod_spec(m(obj, "spec"), "spec", is_pod=True)
    return out + _pod_update(m(obj, "spec"), m(old, "spec"))


def _pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    new_ads, old_ads = n(new, "activeDeadlineSeconds"), n(old, "activeDeadlineSeconds")
    if new_ads is not None:
        if new_ads < 0 or new_ads > MAX_INT32:
            return [errs.invalid("spec.activeDeadlineSeconds", new_ads, meta.range_error(0, MAX_INT32))]
        if old_ads is not None and old_ads < new_ads:
            return [errs.invalid("spec.activeDeadlineSeconds", new_ads,
                                 "must be less than or equal to previous value")]
    elif old_ads is not None:
        out.append(errs.invalid("spec.activeDeadlineSeconds", None,
                                "must not update from a positive integer to nil value"))
    munged = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        olds = li(old, key)
        for i, c in enumerate(li(munged, key)):
            if isinstance(c, dict) and i < len(olds) and isinstance(olds[i], dict):
                c["image"] = olds[i].get("image")
    munged["activeDeadlineSeconds"] = old.get("activeDeadlineSeconds")
    old_tols = li(old, "tolerations")
    if all(t in li(new, "tolerations") for t in old_tols):
        munged["tolerations"] = old.get("tolerations")
    new_grace, old_grace = n(new, "terminationGracePeriodSeconds"), n(old, "terminationGracePeriodSeconds")
    if old_grace is not None and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    _drop_none(munged)
    base = copy.deepcopy(old)
    _drop_none(base)
    if munged != base:
        out.append(errs.forbidden(
            "spec", f"pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n"
            + _spec_diff(base, munged)))
    return out


def _drop_none(d: dict[str, Any]) -> None:
    for k in [k for k, v in d.items() if v is None]:
        del d[k]


def _spec_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A compact `cmp.Diff`-style summary of the changed top-level spec fields."""
    lines = ["  core.PodSpec{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            field_name = key[:1].upper() + key[1:]
            if key in old:
                lines.append(f"- \t{field_name}: {errs.go_struct('', old[key])},")
            if key in new:
                lines.append(f"+ \t{field_name}: {errs.go_struct('', new[key])},")
    lines.append("  }")
    return "\n".join(lines) + "\n"
