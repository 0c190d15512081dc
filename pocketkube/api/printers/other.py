"""Table printers for the remaining groups with a kube printer: coordination (Lease), policy
(PodDisruptionBudget), rbac (RoleBinding, ClusterRoleBinding), scheduling (PriorityClass) and
storage (StorageClass).

Roles, ClusterRoles and LimitRanges have no printer in kube and fall back to the default
NAME / CREATED AT table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import AGE_COL, NAME_COL, Col, Obj, int_or_string, name_age

LEASE_COLUMNS = (
    NAME_COL,
    Col("Holder", desc=("coordination.v1.LeaseSpec", "holderIdentity")),
    AGE_COL,
)


def lease_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [name, (obj.get("spec") or {}).get("holderIdentity") or "", age]


PDB_COLUMNS = (
    NAME_COL,
    Col("Min Available", desc="The minimum number of pods that must be available."),
    Col("Max Unavailable", desc="The maximum number of pods that may be unavailable."),
    Col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE_COL,
)


def pdb_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    name, age = name_age(obj, now)
    return [
        name,
        "N/A" if min_available is None else int_or_string(min_available),
        "N/A" if max_unavailable is None else int_or_string(max_unavailable),
        (obj.get("status") or {}).get("disruptionsAllowed") or 0,
        age,
    ]


def _binding_columns(what: str) -> tuple[Col, ...]:
    return (
        NAME_COL,
        Col("Role", desc=(f"rbac.v1.{what[0].upper()}{what[1:]}", "roleRef")),
        AGE_COL,
        Col("Users", desc=f"Users in the {what}", priority=1),
        Col("Groups", desc=f"Groups in the {what}", priority=1),
        Col("ServiceAccounts", desc=f"ServiceAccounts in the {what}", priority=1),
    )


ROLE_BINDING_COLUMNS = _binding_columns("roleBinding")
CLUSTER_ROLE_BINDING_COLUMNS = _binding_columns("clusterRoleBinding")


def binding_row(obj: Obj, now: datetime) -> list[Any]:
    ref = obj.get("roleRef") or {}
    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[str] = []
    for subject in obj.get("subjects") or ():
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            service_accounts.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
        elif kind == "User":
            users.append(subject.get("name", ""))
        elif kind == "Group":
            groups.append(subject.get("name", ""))
    name, age = name_age(obj, now)
    return [
        name,
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age,
        ", ".join(users),
        ", ".join(groups),
        ", ".join(service_accounts),
    ]


_PC = "scheduling.v1.PriorityClass"

PRIORITY_CLASS_COLUMNS = (
    NAME_COL,
    Col("Value", "integer", (_PC, "value")),
    Col("Global-Default", "boolean", (_PC, "globalDefault")),
    AGE_COL,
    Col("PreemptionPolicy", desc=(_PC, "preemptionPolicy")),
)


def priority_class_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    return [
        name,
        obj.get("value") or 0,
        bool(obj.get("globalDefault")),
        age,
        obj.get("preemptionPolicy") or "PreemptLowerPriority",
    ]


_SC = "storage.v1.StorageClass"
_DEFAULT_CLASS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)

STORAGE_CLASS_COLUMNS = (
    NAME_COL,
    Col("Provisioner", desc=(_SC, "provisioner")),
    Col("ReclaimPolicy", desc=(_SC, "reclaimPolicy")),
    Col("VolumeBindingMode", desc=(_SC, "volumeBindingMode")),
    Col("AllowVolumeExpansion", desc=(_SC, "allowVolumeExpansion")),
    AGE_COL,
)


def storage_class_row(obj: Obj, now: datetime) -> list[Any]:
    name, age = name_age(obj, now)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if any(annotations.get(a) == "true" for a in _DEFAULT_CLASS):
        name += " (default)"
    return [
        name,
        obj.get("provisioner", ""),
        obj.get("reclaimPolicy") or "Delete",
        obj.get("volumeBindingMode") or "Immediate",
        bool(obj.get("allowVolumeExpansion")),
        age,
    ]


_RBAC = "rbac.authorization.k8s.io"

PRINTERS = {
    ("coordination.k8s.io", "Lease"): (LEASE_COLUMNS, lease_row),
    ("policy", "PodDisruptionBudget"): (PDB_COLUMNS, pdb_row),
    (_RBAC, "RoleBinding"): (ROLE_BINDING_COLUMNS, binding_row),
    (_RBAC, "ClusterRoleBinding"): (CLUSTER_ROLE_BINDING_COLUMNS, binding_row),
    ("scheduling.k8s.io", "PriorityClass"): (PRIORITY_CLASS_COLUMNS, priority_class_row),
    ("storage.k8s.io", "StorageClass"): (STORAGE_CLASS_COLUMNS, storage_class_row),
}
