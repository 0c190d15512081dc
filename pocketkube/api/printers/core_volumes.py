"""Table printers for PersistentVolumes and PersistentVolumeClaims (printers.go).

CAPACITY goes through the Quantity canonical form, ACCESS MODES through kube's RWO/ROX/RWX/RWOP
abbreviations, and the storage class honours the beta annotation before the spec field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import AGE_COL, NAME_COL, Col, Obj, since
from pocketkube.api.printers.quantity import qstr

_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)

PV_COLUMNS = (
    NAME_COL,
    Col("Capacity", desc=("core.v1.PersistentVolumeSpec", "capacity")),
    Col("Access Modes", desc=("core.v1.PersistentVolumeSpec", "accessModes")),
    Col("Reclaim Policy", desc=("core.v1.PersistentVolumeSpec", "persistentVolumeReclaimPolicy")),
    Col("Status", desc=("core.v1.PersistentVolumeStatus", "phase")),
    Col("Claim", desc=("core.v1.PersistentVolumeSpec", "claimRef")),
    Col("StorageClass", desc="StorageClass of the pv"),
    Col("VolumeAttributesClass", desc="VolumeAttributesClass of the pv"),
    Col("Reason", desc=("core.v1.PersistentVolumeStatus", "reason")),
    AGE_COL,
    Col("VolumeMode", desc=("core.v1.PersistentVolumeSpec", "volumeMode"), priority=1),
)

PVC_COLUMNS = (
    NAME_COL,
    Col("Status", desc=("core.v1.PersistentVolumeClaimStatus", "phase")),
    Col("Volume", desc=("core.v1.PersistentVolumeClaimSpec", "volumeName")),
    Col("Capacity", desc=("core.v1.PersistentVolumeClaimStatus", "capacity")),
    Col("Access Modes", desc=("core.v1.PersistentVolumeClaimStatus", "accessModes")),
    Col("StorageClass", desc="StorageClass of the pvc"),
    Col("VolumeAttributesClass", desc="VolumeAttributesClass of the pvc"),
    AGE_COL,
    Col("VolumeMode", desc=("core.v1.PersistentVolumeClaimSpec", "volumeMode"), priority=1),
)


def access_modes(modes: list[str] | None) -> str:
    """`helper.GetAccessModesAsString`: fixed order, duplicates dropped."""
    present = set(modes or ())
    return ",".join(short for mode, short in _MODES if mode in present)


def pv_row(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    claim = spec.get("claimRef")
    claim_cell = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase") or "Pending"
    annotations = meta.get("annotations") or {}
    storage_class = annotations.get(_BETA_CLASS, spec.get("storageClassName") or "")
    vac = spec.get("volumeAttributesClassName")
    return [
        meta.get("name", ""),
        qstr((spec.get("capacity") or {}).get("storage")),
        access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "Retain",
        phase,
        claim_cell,
        storage_class,
        "<unset>" if vac is None else vac,
        status.get("reason") or "",
        since(meta.get("creationTimestamp"), now),
        spec.get("volumeMode") or "Filesystem",
    ]


def pvc_row(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase") or "Pending"
    capacity = modes = ""
    volume = spec.get("volumeName") or ""
    if volume:
        modes = access_modes(status.get("accessModes"))
        capacity = qstr((status.get("capacity") or {}).get("storage"))
    annotations = meta.get("annotations") or {}
    if _BETA_CLASS in annotations:
        storage_class = annotations[_BETA_CLASS]
    else:
        storage_class = spec.get("storageClassName") or ""
    vac = spec.get("volumeAttributesClassName")
    return [
        meta.get("name", ""),
        phase,
        volume,
        capacity,
        modes,
        storage_class,
        "<unset>" if vac is None else vac,
        since(meta.get("creationTimestamp"), now),
        spec.get("volumeMode") or "Filesystem",
    ]


PRINTERS = {
    ("", "PersistentVolume"): (PV_COLUMNS, pv_row),
    ("", "PersistentVolumeClaim"): (PVC_COLUMNS, pvc_row),
}
