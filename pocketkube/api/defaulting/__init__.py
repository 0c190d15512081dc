"""Defaulting of the built-in kinds: what kube-apiserver fills in before it stores an object.

`apply_defaults(group, version, kind, obj)` mutates a decoded request body in place so that
`kubectl get -o yaml` afterwards shows what a 1.32 cluster shows: the `SetDefaults_*` functions
and `+default` markers of each API group, canonical quantities (`0.5` -> `500m`), and the empty
structs and zero values Go serializes (`resources: {}`, `creationTimestamp: null` in templates,
`status.replicas: 0`). It never raises on a malformed body; validation reports that afterwards.

Defaults that belong to other stages are left to them: service account and tolerations
(admission), cluster IP allocation (the service registry), status resets (registry strategies).
`job_prepare_for_create` is the one strategy step kept here, because the Job's generated
selector and labels are pure functions of its name and uid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pocketkube.api import schema as S
from pocketkube.api.defaulting import apps, batch, core, core_pod, other
from pocketkube.api.defaulting.batch import job_prepare_for_create
from pocketkube.api.defaulting.util import canonicalize_quantities

log = logging.getLogger("pocketkube.api.defaulting")

_DEFAULTERS: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    ("", "Pod"): core_pod.pod,
    ("", "Service"): core.service,
    ("", "Namespace"): core.namespace,
    ("", "Secret"): core.secret,
    ("", "PersistentVolume"): core.persistent_volume,
    ("", "PersistentVolumeClaim"): core.claim,
    ("", "Endpoints"): core.endpoints,
    ("", "Node"): core.node,
    ("", "ReplicationController"): core.replication_controller,
    ("", "PodTemplate"): core.pod_template,
    ("", "LimitRange"): core.limit_range,
    ("", "Event"): core.event,
    ("apps", "Deployment"): apps.deployment,
    ("apps", "ReplicaSet"): apps.replica_set,
    ("apps", "StatefulSet"): apps.stateful_set,
    ("apps", "DaemonSet"): apps.daemon_set,
    ("batch", "Job"): batch.job,
    ("batch", "CronJob"): batch.cron_job,
    ("rbac.authorization.k8s.io", "Role"): other.role,
    ("rbac.authorization.k8s.io", "ClusterRole"): other.role,
    ("rbac.authorization.k8s.io", "RoleBinding"): other.binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): other.binding,
    ("networking.k8s.io", "NetworkPolicy"): other.network_policy,
    ("networking.k8s.io", "Ingress"): other.ingress,
    ("networking.k8s.io", "IngressClass"): other.ingress_class,
    ("policy", "PodDisruptionBudget"): other.pdb,
    ("scheduling.k8s.io", "PriorityClass"): other.priority_class,
    ("storage.k8s.io", "StorageClass"): other.storage_class,
    ("coordination.k8s.io", "Lease"): other.lease,
    ("discovery.k8s.io", "EndpointSlice"): other.endpoint_slice,
    ("autoscaling", "HorizontalPodAutoscaler"): other.hpa,
}


def apply_defaults(group: str, version: str, kind: str, obj: Any) -> None:
    """Fill in the defaults of a built-in kind, in place. Unknown kinds are left untouched."""
    if not isinstance(obj, dict):
        return
    fn = _DEFAULTERS.get((group, kind))
    try:
        if fn is not None:
            fn(obj)
        canonicalize_quantities(obj, S.for_kind(group, version, kind))
    except Exception:  # a malformed body is validation's to report, not a 500
        log.exception("defaulting %s/%s %s failed", group, version, kind)


__all__ = ["apply_defaults", "job_prepare_for_create"]
