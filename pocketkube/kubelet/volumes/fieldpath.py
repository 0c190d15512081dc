"""The downward API's selectors, shared by environment variables (envvars.py) and downwardAPI /
projected volumes: `fieldRef` paths (metadata.name, metadata.labels['k'], ...) and
`resourceFieldRef` (limits/requests with a divisor, unset limits read as node allocatable).

Values are formatted as the kubelet formats them (kube's `pkg/fieldpath` and
`pkg/api/v1/resource`): whole maps as sorted `key="value"` lines with Go's %q quoting, CPU as the
ceiling of milli-cores over the divisor, memory and storage as the ceiling of bytes over it.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from fractions import Fraction
from typing import Any

from pocketkube.api.validation.quantity import value as quantity_value

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}


class FieldPathError(Exception):
    """A selector the kubelet cannot resolve; the message is kube's."""


def go_quote(s: str) -> str:
    """Go's strconv.Quote: escapes quotes, backslashes and non-printable characters."""
    out = ['"']
    for ch in s:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_map(m: dict[str, str] | None) -> str:
    """`fieldpath.FormatMap`: `key="value"` lines in key order, no trailing newline."""
    return "\n".join(f"{k}={go_quote(str(v))}" for k, v in sorted((m or {}).items()))


def split_subscript(path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` → ("metadata.labels", "app")."""
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def metadata_value(pod: dict[str, Any], path: str) -> str:
    """`fieldpath.ExtractFieldPathAsString`: what downwardAPI volumes may select."""
    meta = pod.get("metadata") or {}
    sub = split_subscript(path)
    if sub is not None:
        head, key = sub
        if head == "metadata.annotations":
            return str((meta.get("annotations") or {}).get(key, ""))
        if head == "metadata.labels":
            return str((meta.get("labels") or {}).get(key, ""))
        raise FieldPathError(f'fieldPath "{path}" does not support subscript')
    if path == "metadata.annotations":
        return format_map(meta.get("annotations"))
    if path == "metadata.labels":
        return format_map(meta.get("labels"))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".", 1)[1], ""))
    raise FieldPathError(f"unsupported fieldPath: {path}")


def pod_field_value(pod: dict[str, Any], path: str, *, pod_ips: list[str],
                    host_ips: list[str]) -> str:
    """`podFieldSelectorRuntimeValue`: the fields environment variables may select."""
    spec = pod.get("spec") or {}
    if path == "spec.nodeName":
        return str(spec.get("nodeName", ""))
    if path == "spec.serviceAccountName":
        return str(spec.get("serviceAccountName", ""))
    if path == "status.hostIP":
        return host_ips[0] if host_ips else ""
    if path == "status.hostIPs":
        return ",".join(host_ips)
    if path == "status.podIP":
        return pod_ips[0] if pod_ips else ""
    if path == "status.podIPs":
        return ",".join(pod_ips)
    if path == "spec.terminationGracePeriodSeconds":
        grace = spec.get("terminationGracePeriodSeconds")
        return str(30 if grace is None else grace)
    return metadata_value(pod, path)


# --- resources -------------------------------------------------------------------------------


@functools.cache
def machine_allocatable() -> dict[str, str]:
    """The node's capacity as the kubelet would report it without reservations: CPUs, memory
    and the root filesystem's size. Unset container limits read as these."""
    memory = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        storage = shutil.disk_usage("/").total
    except OSError:
        storage = 0
    return {"cpu": str(os.cpu_count() or 1), "memory": str(memory),
            "ephemeral-storage": str(storage)}


def _amount(q: Any) -> Fraction:
    v = quantity_value(q) if q is not None else None
    return v if v is not None else Fraction(0)


def _milli(q: Any) -> int:
    return math.ceil(_amount(q) * 1000)


def _whole(q: Any) -> int:
    return math.ceil(_amount(q))


def container_resource_value(selector: dict[str, Any], container: dict[str, Any],
                             allocatable: dict[str, str] | None = None) -> str:
    """`ExtractContainerResourceValue` on a container whose unset limits were filled from node
    allocatable (`MergeContainerResourceLimits`)."""
    alloc = allocatable or machine_allocatable()
    resources = container.get("resources") or {}
    limits = dict(resources.get("limits") or {})
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name not in limits and name in alloc:
            limits[name] = alloc[name]
    requests = resources.get("requests") or {}
    divisor = selector.get("divisor")
    if divisor is None or _amount(divisor) == 0:
        divisor = "1"
    resource = str(selector.get("resource", ""))
    kind, _, name = resource.partition(".")
    source = {"limits": limits, "requests": requests}.get(kind)
    if source is None or not name:
        raise FieldPathError(f"unsupported container resource : {resource}")
    if name == "cpu":
        return str(math.ceil(Fraction(_milli(source.get("cpu")), max(_milli(divisor), 1))))
    if name in ("memory", "ephemeral-storage") or name.startswith("hugepages-"):
        if name.startswith("hugepages-") and kind != "requests":
            raise FieldPathError(f"unsupported container resource : {resource}")
        return str(math.ceil(Fraction(_whole(source.get(name)), max(_whole(divisor), 1))))
    raise FieldPathError(f"unsupported container resource : {resource}")


def resource_value(selector: dict[str, Any], pod: dict[str, Any],
                   container: dict[str, Any] | None,
                   allocatable: dict[str, str] | None = None) -> str:
    """A resourceFieldRef: of `container` unless the selector names another container (volumes
    always name one)."""
    name = selector.get("containerName")
    if name:
        spec = pod.get("spec") or {}
        found = next((c for key in ("containers", "initContainers")
                      for c in spec.get(key) or [] if c.get("name") == name), None)
        if found is None:
            raise FieldPathError(f"container {name} not found")
        container = found
    if container is None:
        raise FieldPathError("container name is required for resourceFieldRef")
    return container_resource_value(selector, container, allocatable)
