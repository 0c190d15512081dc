"""A container's environment as the kubelet builds it (kube's `makeEnvironmentVariables`,
`envvars.FromServices` and the `$(VAR)` expansion of `third_party/forked/golang/expansion`).

Order: the image's Env, then `envFrom` sources in order (with their prefix), then `env` entries
(each `value` expanded against the variables defined so far and the service variables;
`valueFrom` resolved from configMaps, secrets, pod fields and container resources), then the
service link variables not already defined. A later definition replaces an earlier one in place.
Kube builds an unordered map here; keeping the declaration order makes `env` inside a container
predictable without changing what any variable is set to.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pocketkube.kubelet.volumes.fieldpath import (
    FieldPathError,
    pod_field_value,
    resource_value,
)

log = logging.getLogger("pocketkube.kubelet.envvars")

# Services whose variables every pod gets, even with enableServiceLinks: false.
MASTER_SERVICES = ("kubernetes",)


class ContainerConfigError(Exception):
    """The container cannot be configured: waiting reason CreateContainerConfigError, with
    this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Objects(Protocol):
    async def configmap(self, ns: str, name: str) -> dict | None: ...

    async def secret(self, ns: str, name: str) -> dict | None: ...


# --- $(VAR) expansion -----------------------------------------------------------------------


def expand(s: str, env: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Kube's `expansion.Expand`: `$(VAR)` becomes VAR's value when VAR is defined and stays
    as written otherwise; `$$` is a literal `$`. Used for env values, command and args."""
    mapping = env if isinstance(env, Mapping) else dict(env)
    return _expand(s, lambda name: mapping.get(name, f"$({name})"))


def _expand(s: str, lookup: Any) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(s)
    while cursor < n:
        if s[cursor] == "$" and cursor + 1 < n:
            out.append(s[checkpoint:cursor])
            nxt = s[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = s.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                else:
                    out.append(lookup(s[cursor + 2:close]))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(s[checkpoint:])
    return "".join(out)


def expand_strict(s: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expansion for subPathExpr (`ExpandContainerVolumeMounts`): undefined or empty variables
    expand to "" and are reported, sorted."""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        value = env.get(name, "")
        if not value:
            missing.add(name)
        return value

    return _expand(s, lookup), sorted(missing)


# --- service links --------------------------------------------------------------------------


def _env_name(s: str) -> str:
    return s.replace("-", "_").upper()


def _service_ip_set(svc: dict[str, Any]) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_env(services: Iterable[dict[str, Any]], namespace: str,
                enable_service_links: bool = True) -> dict[str, str]:
    """`getServiceEnvVarMap` + `envvars.FromServices`: the pod's namespace's services (with
    enableServiceLinks) and the master `kubernetes` service from default, docker-link style."""
    chosen: dict[str, dict[str, Any]] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if not _service_ip_set(svc):
            continue
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name].get("spec") or {}
        ports = spec.get("ports") or []
        if not ports:
            continue
        ip = spec["clusterIP"]
        prefix = _env_name(name)
        out[f"{prefix}_SERVICE_HOST"] = ip
        out[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for p in ports:
            if p.get("name"):
                out[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p.get("port"))
        for i, p in enumerate(ports):
            proto = (p.get("protocol") or "TCP").upper()
            url = f"{proto.lower()}://{_join_host_port(ip, int(p.get('port', 0)))}"
            if i == 0:
                out[f"{prefix}_PORT"] = url
            pp = f"{prefix}_PORT_{p.get('port')}_{proto}"
            out[pp] = url
            out[f"{pp}_PROTO"] = proto.lower()
            out[f"{pp}_PORT"] = str(p.get("port"))
            out[f"{pp}_ADDR"] = ip
    return out


# --- the container's environment -------------------------------------------------------------


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="surrogateescape")
            for k, v in (secret.get("data") or {}).items()}


class _Lookups:
    """ConfigMaps and Secrets read once per build (kube keeps the same per-call maps)."""

    def __init__(self, source: Objects, namespace: str) -> None:
        self.source = source
        self.ns = namespace
        self.configmaps: dict[str, dict[str, str] | None] = {}
        self.secrets: dict[str, dict[str, str] | None] = {}

    async def configmap(self, name: str, optional: bool) -> dict[str, str] | None:
        if name not in self.configmaps:
            cm = await self.source.configmap(self.ns, name)
            self.configmaps[name] = None if cm is None else dict(cm.get("data") or {})
        data = self.configmaps[name]
        if data is None and not optional:
            raise ContainerConfigError(f'configmap "{name}" not found')
        return data

    async def secret(self, name: str, optional: bool) -> dict[str, str] | None:
        if name not in self.secrets:
            s = await self.source.secret(self.ns, name)
            self.secrets[name] = None if s is None else _secret_data(s)
        data = self.secrets[name]
        if data is None and not optional:
            raise ContainerConfigError(f'secret "{name}" not found')
        return data


def _valid_env_name(name: str) -> bool:
    # Kube 1.32 accepts any printable name without "=" (relaxed validation); a name the
    # runtime cannot carry at all is the only thing left to skip.
    return bool(name) and "=" not in name and "\x00" not in name


async def build_env(pod: dict[str, Any], container: dict[str, Any], image_env: list[str],
                    source: Objects, *, node_name: str, pod_ip: str, host_ip: str,
                    services: list[dict], pod_ips: list[str] | None = None,
                    host_ips: list[str] | None = None,
                    allocatable: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The container's final environment, image env first. Raises ContainerConfigError with
    kube's message when a referenced configMap/secret/key is missing (and not optional)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ns = meta.get("namespace", "")
    svc_env = service_env(services, ns, spec.get("enableServiceLinks", True) is not False)
    lookups = _Lookups(source, ns)
    defined: dict[str, str] = {}
    skipped: list[str] = []

    for env_from in container.get("envFrom") or []:
        prefix = env_from.get("prefix") or ""
        if env_from.get("configMapRef") is not None:
            ref = env_from["configMapRef"]
            data = await lookups.configmap(ref.get("name", ""), bool(ref.get("optional")))
        elif env_from.get("secretRef") is not None:
            ref = env_from["secretRef"]
            data = await lookups.secret(ref.get("name", ""), bool(ref.get("optional")))
        else:
            continue
        for key in sorted(data or {}):
            name = prefix + key
            if _valid_env_name(name):
                defined[name] = data[key]  # type: ignore[index]
            else:
                skipped.append(name)
    if skipped:
        log.warning("pod %s/%s container %s: keys %s from envFrom were skipped since they are "
                    "considered invalid environment variable names", ns, meta.get("name"),
                    container.get("name"), skipped)

    pod_ips = pod_ips if pod_ips is not None else ([pod_ip] if pod_ip else [])
    host_ips = host_ips if host_ips is not None else ([host_ip] if host_ip else [])

    def lookup(name: str) -> str:
        if name in defined:
            return defined[name]
        if name in svc_env:
            return svc_env[name]
        return f"$({name})"

    for entry in container.get("env") or []:
        name = entry.get("name", "")
        value = entry.get("value") or ""
        value_from = entry.get("valueFrom")
        if value:
            value = _expand(value, lookup)
        elif value_from:
            resolved = await _value_from(value_from, pod, container, lookups, pod_ips,
                                         host_ips, allocatable)
            if resolved is None:
                continue
            value = resolved
        defined[name] = value

    merged: dict[str, str] = {}
    for item in image_env:
        key, _, val = item.partition("=")
        merged[key] = val
    merged.update(defined)
    for key, val in svc_env.items():
        if key not in defined:
            merged[key] = val
    return list(merged.items())


async def _value_from(value_from: dict[str, Any], pod: dict[str, Any],
                      container: dict[str, Any], lookups: _Lookups, pod_ips: list[str],
                      host_ips: list[str], allocatable: dict[str, str] | None) -> str | None:
    """One valueFrom; None when an optional source is missing (the variable is left out)."""
    ns = lookups.ns
    try:
        if value_from.get("fieldRef") is not None:
            return pod_field_value(pod, value_from["fieldRef"].get("fieldPath", ""),
                                   pod_ips=pod_ips, host_ips=host_ips)
        if value_from.get("resourceFieldRef") is not None:
            return resource_value(value_from["resourceFieldRef"], pod, container, allocatable)
    except FieldPathError as e:
        raise ContainerConfigError(str(e)) from None
    if value_from.get("configMapKeyRef") is not None:
        ref = value_from["configMapKeyRef"]
        name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
        data = await lookups.configmap(name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in ConfigMap {ns}/{name}")
        return data[key]
    if value_from.get("secretKeyRef") is not None:
        ref = value_from["secretKeyRef"]
        name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
        data = await lookups.secret(name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {key} in Secret {ns}/{name}")
        return data[key]
    return ""
