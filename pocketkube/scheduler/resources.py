"""Resource arithmetic for scheduling: quantities as integers (milli-CPU, bytes, counts), a pod's
effective request (containers summed, init containers by their maximum, sidecars, overhead) and
a node's allocatable, as kube's `component-helpers/resource` and `framework.Resource` compute them.

Quantity strings are parsed once and cached: the same few strings ("100m", "128Mi") recur in
every pod, and parsing is the most expensive step of building a pod's scheduling info.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from pocketkube.api.validation.quantity import value as quantity_value

CPU, MEMORY, EPHEMERAL, PODS = "cpu", "memory", "ephemeral-storage", "pods"
# Requests assumed for a container that names none, so empty pods still spread (schedutil).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[int, int]:
    amount = quantity_value(text)
    if amount is None:
        return 0, 0
    return math.ceil(amount * 1000), math.ceil(amount)


def milli(q: Any) -> int:
    """`Quantity.MilliValue()`."""
    return _parse(str(q))[0] if q is not None else 0


def whole(q: Any) -> int:
    """`Quantity.Value()` (rounded up)."""
    return _parse(str(q))[1] if q is not None else 0


def is_scalar(name: str) -> bool:
    """Extended resources, hugepages and attachable volumes: counted as plain integers."""
    return name not in (CPU, MEMORY, EPHEMERAL, PODS) and (
        "/" in name or name.startswith("hugepages-") or name.startswith("attachable-volumes-"))


class Resource:
    """A vector of resource amounts (`framework.Resource`)."""

    __slots__ = ("cpu", "memory", "ephemeral", "pods", "scalar")

    def __init__(self, cpu: int = 0, memory: int = 0, ephemeral: int = 0, pods: int = 0,
                 scalar: dict[str, int] | None = None) -> None:
        self.cpu, self.memory, self.ephemeral, self.pods = cpu, memory, ephemeral, pods
        self.scalar = scalar or {}

    @classmethod
    def from_list(cls, rl: dict[str, Any] | None) -> Resource:
        r = cls()
        r.add_list(rl)
        return r

    def add_list(self, rl: dict[str, Any] | None) -> None:
        for name, q in (rl or {}).items():
            if name == CPU:
                self.cpu += milli(q)
            elif name == MEMORY:
                self.memory += whole(q)
            elif name == EPHEMERAL:
                self.ephemeral += whole(q)
            elif name == PODS:
                self.pods += whole(q)
            elif is_scalar(name):
                self.scalar[name] = self.scalar.get(name, 0) + whole(q)

    def add(self, other: Resource, sign: int = 1) -> None:
        self.cpu += sign * other.cpu
        self.memory += sign * other.memory
        self.ephemeral += sign * other.ephemeral
        for k, v in other.scalar.items():
            self.scalar[k] = self.scalar.get(k, 0) + sign * v

    def set_max(self, other: Resource) -> None:
        self.cpu = max(self.cpu, other.cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral = max(self.ephemeral, other.ephemeral)
        for k, v in other.scalar.items():
            self.scalar[k] = max(self.scalar.get(k, 0), v)

    def copy(self) -> Resource:
        return Resource(self.cpu, self.memory, self.ephemeral, self.pods, dict(self.scalar))

    def is_zero(self) -> bool:
        return not (self.cpu or self.memory or self.ephemeral or any(self.scalar.values()))

    def __repr__(self) -> str:
        return (f"Resource(cpu={self.cpu}m, memory={self.memory}, ephemeral={self.ephemeral}, "
                f"pods={self.pods}, scalar={self.scalar})")


def _container_requests(c: dict[str, Any], non_zero: bool) -> Resource:
    req = (c.get("resources") or {}).get("requests") or {}
    r = Resource.from_list(req)
    if non_zero:
        if CPU not in req:
            r.cpu = DEFAULT_MILLI_CPU
        if MEMORY not in req:
            r.memory = DEFAULT_MEMORY
    return r


def pod_requests(spec: dict[str, Any], non_zero: bool = False) -> Resource:
    """What a pod reserves on its node: the sum of its containers (and restartable init
    containers, which keep running), or the largest init container step if that is bigger,
    plus the pod overhead. With `non_zero`, containers naming no cpu/memory request count the
    scheduler's defaults (used only for scoring)."""
    total = Resource()
    for c in spec.get("containers") or []:
        total.add(_container_requests(c, non_zero))
    sidecars = Resource()
    init_max = Resource()
    for c in spec.get("initContainers") or []:
        r = _container_requests(c, non_zero)
        if c.get("restartPolicy") == "Always":
            total.add(r)
            sidecars.add(r)
            step = sidecars.copy()
        else:
            step = r.copy()
            step.add(sidecars)
        init_max.set_max(step)
    total.set_max(init_max)
    if spec.get("overhead"):
        total.add(Resource.from_list(spec["overhead"]))
    return total


def node_allocatable(node: dict[str, Any]) -> Resource:
    return Resource.from_list((node.get("status") or {}).get("allocatable") or {})
