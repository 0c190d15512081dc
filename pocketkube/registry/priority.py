"""Priority admission (kube's `plugin/pkg/admission/priority`): a new pod's
`priorityClassName` — or the cluster's globalDefault PriorityClass when it names none —
becomes `spec.priority` and `spec.preemptionPolicy`, so the scheduler and preemption read a
number. The two system classes every cluster has are created at bootstrap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pocketkube.api import errors

if TYPE_CHECKING:
    from pocketkube.registry.registry import Registry

Obj = dict[str, Any]

SYSTEM_CLASSES = (
    ("system-node-critical", 2000001000, "Used for system critical pods that must not be moved "
                                         "from their current node."),
    ("system-cluster-critical", 2000000000, "Used for system critical pods that must run in the "
                                            "cluster, but can be moved to another node if "
                                            "necessary."),
)


def system_classes() -> list[Obj]:
    return [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
             "metadata": {"name": name}, "value": value, "description": desc,
             "preemptionPolicy": "PreemptLowerPriority"}
            for name, value, desc in SYSTEM_CLASSES]


def _forbidden(pod: Obj, why: str) -> errors.StatusError:
    name = (pod.get("metadata") or {}).get("name", "")
    return errors.forbidden(f'pods "{name}" is forbidden: {why}')


async def admit_priority(registry: Registry, pod: Obj) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    classes = registry.store("scheduling.k8s.io", "priorityclasses")
    name = spec.get("priorityClassName")
    pc: Obj | None = None
    if name:
        pc = classes.cached(None, name)
        if pc is None:
            try:
                pc = await classes.get(None, name)
            except errors.StatusError:
                raise _forbidden(pod, f"no PriorityClass with name {name} was found") from None
    else:
        defaults = [c for c in classes.cache.items.values() if c.get("globalDefault")]
        if defaults:
            pc = min(defaults, key=lambda c: c.get("value", 0))
            spec["priorityClassName"] = pc["metadata"]["name"]
    value = int(pc.get("value", 0)) if pc else 0
    given = spec.get("priority")
    if given is not None and given != value:
        raise _forbidden(pod, f"the integer value of priority ({given}) must not be provided in "
                              f"pod spec; priority admission controller computed {value} from "
                              f"the given PriorityClass name")
    spec["priority"] = value
    if pc is not None and pc.get("preemptionPolicy"):
        spec["preemptionPolicy"] = pc["preemptionPolicy"]
    else:
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
