"""What a simulated node says about itself: its Node object (labels, capacity, addresses,
nodeInfo, conditions) and its Lease, built the way the kubelet builds them
(`pkg/kubelet/kubelet_node_status.go`, `pkg/kubelet/nodestatus/setters.go`,
`pkg/kubelet/nodelease`). Pure functions: the node manager decides when to send them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SIMULATED_LABEL = "node.pocketkube.io/simulated"
LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.32.0-pocketkube"
RUNTIME_VERSION = "simulated://0.1"
OS_IMAGE = "pocketkube simulated node"
KERNEL_VERSION = "6.1.0-pocketkube"
KUBELET_PORT = 10250

# (type, reason, message) of a healthy node, in the order the kubelet reports them.
HEALTHY_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True)
class NodeShape:
    """The resources every simulated node offers."""

    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    architecture: str = "amd64"

    def resources(self) -> dict[str, str]:
        return {
            "cpu": self.cpu,
            "ephemeral-storage": self.ephemeral_storage,
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": self.memory,
            "pods": str(self.pods),
        }


def node_labels(name: str, shape: NodeShape) -> dict[str, str]:
    return {
        "beta.kubernetes.io/arch": shape.architecture,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": shape.architecture,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        SIMULATED_LABEL: "true",
    }


def _stable_id(name: str, kind: str) -> str:
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()


def node_info(name: str, shape: NodeShape) -> Obj:
    return {
        "architecture": shape.architecture,
        "bootID": str(uuid.UUID(_stable_id(name, "boot")[:32])),
        "containerRuntimeVersion": RUNTIME_VERSION,
        "kernelVersion": KERNEL_VERSION,
        "kubeProxyVersion": "",
        "kubeletVersion": KUBELET_VERSION,
        "machineID": _stable_id(name, "machine")[:32],
        "operatingSystem": "linux",
        "osImage": OS_IMAGE,
        "systemUUID": str(uuid.UUID(_stable_id(name, "system")[:32])),
    }


def conditions(now: str, old: list[Obj] | None = None) -> list[Obj]:
    """The healthy conditions with a fresh heartbeat; a transition time is kept from `old`
    while the condition's status stays the same."""
    previous = {c.get("type"): c for c in old or []}
    out = []
    for type_, reason, message in HEALTHY_CONDITIONS:
        status = "True" if type_ == "Ready" else "False"
        prev = previous.get(type_) or {}
        transition = prev.get("lastTransitionTime") if prev.get("status") == status else None
        out.append(
            {
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition or now,
                "message": message,
                "reason": reason,
                "status": status,
                "type": type_,
            }
        )
    return out


def node_status(
    name: str, ip: str, shape: NodeShape, now: str, old_conditions: list[Obj] | None = None
) -> Obj:
    resources = shape.resources()
    return {
        "addresses": [{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
        "allocatable": dict(resources),
        "capacity": dict(resources),
        "conditions": conditions(now, old_conditions),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": node_info(name, shape),
    }


def node_object(name: str, ip: str, shape: NodeShape, now: str) -> Obj:
    """The Node a simulated node registers: no taints, no podCIDR (node IPAM's business)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(name, shape),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
        "status": node_status(name, ip, shape, now),
    }


def is_simulated(node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return labels.get(SIMULATED_LABEL) == "true"


def lease_object(name: str, node_uid: str, renew_time: str, duration: int = 40) -> Obj:
    """The node's heartbeat Lease, owned by its Node so it goes when the node goes."""
    meta: Obj = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
        ]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": renew_time},
    }
