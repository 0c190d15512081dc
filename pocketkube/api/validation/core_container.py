"""Container validation: names, images, ports, env, volume mounts, resources and probes.

Follows `validateContainers`, `validateContainerPorts`, `ValidateEnv`, `ValidateVolumeMounts`,
`ValidateResourceRequirements` and `validateProbe` in kubernetes
`pkg/apis/core/validation/validation.go` (1.32), with RelaxedEnvironmentVariableValidation on.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.validation import errs, meta, quantity
from pocketkube.api.validation.access import items, m, n, opt_m, s
from pocketkube.api.validation.errs import Cause

PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
MAX_INT32 = 2**31 - 1
def _ports(ports: list[dict[str, Any]], path: str) -> list[Cause]:
    out: list[Cause] = []
    names: set[str] = set()
    for i, p in enumerate(ports):
        pp = f"{path}[{i}]"
        name = s(p, "name")
        if name:
            msgs = meta.is_valid_port_name(name)
            if msgs:
                out += [errs.invalid(f"{pp}.name", name, msg) for msg in msgs]
            elif name in names:
                out.append(errs.duplicate(f"{pp}.name", name))
            else:
                names.add(name)
        cport = n(p, "containerPort") or 0
        if cport == 0:
            out.append(errs.required(f"{pp}.containerPort"))
        else:
            out += [errs.invalid(f"{pp}.containerPort", cport, msg)
                    for msg in meta.is_valid_port_num(cport)]
        hport = n(p, "hostPort") or 0
        if hport:
            out += [errs.invalid(f"{pp}.hostPort", hport, msg) for msg in meta.is_valid_port_num(hport)]
        proto = s(p, "protocol")
        if not proto:
            out.append(errs.required(f"{pp}.protocol"))
        elif proto not in PROTOCOLS:
            out.append(errs.not_supported(f"{pp}.protocol", proto, PROTOCOLS))
    return out


def _env(env: list[dict[str, Any]], path: str) -> list[Cause]:
    out: list[Cause] = []
    for i, e in enumerate(env):
        ep = f"{path}[{i}]"
        name = s(e, "name")
        if not name:
            out.append(errs.required(f"{ep}.name"))
        out += [errs.invalid(f"{ep}.name", name, msg) for msg in meta.is_relaxed_env_var_name(name)]
        vf = opt_m(e, "valueFrom")
        if vf is None:
            continue
        sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                   if vf.get(k) is not None]
        if s(e, "value") and sources:
            out.append(errs.invalid(f"{ep}.valueFrom", "",
                                    "may not be specified when `value` is not empty"))
        if not sources:
            out.append(errs.invalid(f"{ep}.valueFrom", "", "must specify one of: `fieldRef`, "
                                    "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif len(sources) > 1:
            out.append(errs.invalid(f"{ep}.valueFrom", "",
                                    "may not have more than one field specified at a time"))
        for key in ("configMapKeyRef", "secretKeyRef"):
            ref = opt_m(vf, key)
            if ref is None:
                continue
            if not s(ref, "key"):
                out.append(errs.required(f"{ep}.valueFrom.{key}.key"))
            else:
                out += [errs.invalid(f"{ep}.valueFrom.{key}.key", s(ref, "key"), msg)
                        for msg in meta.is_config_map_key(s(ref, "key"))]
            if not s(ref, "name"):
                out.append(errs.required(f"{ep}.valueFrom.{key}.name"))
        fr = opt_m(vf, "fieldRef")
        if fr is not None and not s(fr, "fieldPath"):
            out.append(errs.required(f"{ep}.valueFrom.fieldRef.fieldPath"))
    return out


def _mounts(mounts: list[dict[str, Any]], volumes: set[str], path: str) -> list[Cause]:
    out: list[Cause] = []
    seen: set[str] = set()
    for i, vm in enumerate(mounts):
        mp = f"{path}[{i}]"
        name, mount_path = s(vm, "name"), s(vm, "mountPath")
        if not name:
            out.append(errs.required(f"{mp}.name"))
        if name not in volumes:
            out.append(errs.not_found(f"{mp}.name", name))
        if not mount_path:
            out.append(errs.required(f"{mp}.mountPath"))
        if mount_path in seen:
            out.append(errs.invalid(f"{mp}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
        sub = s(vm, "subPath")
        if sub:
            if sub.startswith("/"):
                out.append(errs.invalid(f"{mp}.subPath", sub, "must be a relative path"))
            if ".." in sub.replace("\\", "/").split("/"):
                out.append(errs.invalid(f"{mp}.subPath", sub, "must not contain '..'"))
    return out


def _resource_name_ok(name: str) -> bool:
    if "/" in name:
        return not meta.is_qualified_name(name)
    return name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-")


def _overcommit_allowed(name: str) -> bool:
    return name in STANDARD_CONTAINER_RESOURCES or name.startswith("requests.") \
        or ("/" in name and name.startswith("kubernetes.io/"))


def resources(res: dict[str, Any], path: str) -> list[Cause]:
    """`ValidateResourceRequirements` for one container."""
    out: list[Cause] = []
    limits, requests = m(res, "limits"), m(res, "requests")
    for section, values in (("limits", limits), ("requests", requests)):
        for name in sorted(values):
            rp = f"{path}.{section}[{name}]"
            if not _resource_name_ok(name):
                out.append(errs.invalid(rp, name, "must be a standard resource for containers"))
            amount = quantity.value(values[name])
            if amount is not None and amount < 0:
                out.append(errs.invalid(rp, quantity.to_string(values[name]),
                                        "must be greater than or equal to 0"))
    for name in sorted(requests):
        req = quantity.value(requests[name])
        if name in limits:
            lim = quantity.value(limits[name])
            if req is None or lim is None:
                continue
            lim_s = quantity.to_string(limits[name])
            if req != lim and not _overcommit_allowed(name):
                out.append(errs.invalid(f"{path}.requests", quantity.to_string(requests[name]),
                                        f"must be equal to {name} limit of {lim_s}"))
            elif req > lim:
                out.append(errs.invalid(f"{path}.requests", quantity.to_string(requests[name]),
                                        f"must be less than or equal to {name} limit of {lim_s}"))
        elif not _overcommit_allowed(name):
            out.append(errs.required(f"{path}.limits",
                                     "Limit must be set for non overcommitable resources"))
    return out


def _probe(probe: dict[str, Any] | None, path: str) -> list[Cause]:
    if probe is None:
        return []
    out: list[Cause] = []
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    if not handlers:
        out.append(errs.required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        out.append(errs.forbidden(f"{path}.{handlers[1]}", "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        out += errs.nonnegative(f"{path}.{key}", n(probe, key))
    for key in ("httpGet", "tcpSocket"):
        h = opt_m(probe, key)
        if h is not None:
            port = h.get("port")
            if isinstance(port, int) and not isinstance(port, bool):
                out += [errs.invalid(f"{path}.{key}.port", port, msg)
                        for msg in meta.is_valid_port_num(port)]
            elif isinstance(port, str):
                out += [errs.invalid(f"{path}.{key}.port", port, msg)
                        for msg in meta.is_valid_port_name(port)]
    return out


def container(c: dict[str, Any], path: str, volumes: set[str], is_pod: bool) -> list[Cause]:
    out: list[Cause] = []
    name = s(c, "name")
    if not name:
        out.append(errs.required(f"{path}.name"))
    else:
        out += meta.dns1123_label(name, f"{path}.name")
    image = s(c, "image")
    if not image:  # required in pod templates too (validateContainerCommon)
        out.append(errs.required(f"{path}.image"))
    elif is_pod and image != image.strip():
        out.append(errs.invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    out += _ports(items(c, "ports"), f"{path}.ports")
    out += _env(items(c, "env"), f"{path}.env")
    out += _mounts(items(c, "volumeMounts"), volumes, f"{path}.volumeMounts")
    out += resources(m(c, "resources"), f"{path}.resources")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        out += _probe(opt_m(c, probe), f"{path}.{probe}")
    policy = s(c, "terminationMessagePolicy")
    if not policy:
        out.append(errs.required(f"{path}.terminationMessagePolicy"))
    elif policy not in TERMINATION_MESSAGE_POLICIES:
        out.append(errs.not_supported(f"{path}.terminationMessagePolicy", policy,
                                      TERMINATION_MESSAGE_POLICIES))
    pull = s(c, "imagePullPolicy")
    if not pull:
        out.append(errs.required(f"{path}.imagePullPolicy"))
    elif pull not in PULL_POLICIES:
        out.append(errs.not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    return out
