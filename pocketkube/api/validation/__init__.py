"""Validation of the built-in kinds, as pure functions over JSON documents.

`validate(group, version, kind, obj, old)` returns the causes of a 422 Invalid, each built with
`pocketkube.api.errors.field_error` and worded as kube-apiserver 1.32 words it; an empty list
means the object is valid. It runs after defaulting (as in kube, where `restartPolicy: Always`
is defaulted before a Job's template is rejected for it) and never raises: a value of the wrong
JSON type yields a `FieldValueTypeInvalid` cause. Request handlers should reject such bodies
earlier with `fields.type_error` + `fields.cannot_handle`, which is the 400 kube answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pocketkube.api import schema as S
from pocketkube.api.validation import (
    apps,
    batch,
    core,
    core_pod,
    core_service,
    errs,
    fields,
    meta,
    other,
    rbac,
)
from pocketkube.api.validation.errs import Cause

log = logging.getLogger("pocketkube.api.validation")

Validator = Callable[[dict[str, Any], "dict[str, Any] | None"], list[Cause]]

_VALIDATORS: dict[tuple[str, str], Validator] = {
    ("", "Pod"): core_pod.validate_pod,
    ("", "Service"): core_service.validate_service,
    ("", "ConfigMap"): core.validate_config_map,
    ("", "Secret"): core.validate_secret,
    ("", "Namespace"): core.validate_namespace,
    ("", "Node"): core.validate_node,
    ("", "PersistentVolume"): core.validate_persistent_volume,
    ("", "PersistentVolumeClaim"): core.validate_persistent_volume_claim,
    ("", "ReplicationController"): core.validate_replication_controller,
    ("", "PodTemplate"): core.validate_pod_template_kind,
    ("", "Endpoints"): core.validate_endpoints,
    ("", "ServiceAccount"): core.validate_meta_only(meta.name_is_dns_subdomain),
    ("", "LimitRange"): core.validate_meta_only(meta.name_is_dns_subdomain),
    ("", "ResourceQuota"): core.validate_meta_only(meta.name_is_dns_subdomain),
    ("", "Event"): other.validate_event,
    ("apps", "Deployment"): apps.validate_deployment,
    ("apps", "ReplicaSet"): apps.validate_replica_set,
    ("apps", "StatefulSet"): apps.validate_stateful_set,
    ("apps", "DaemonSet"): apps.validate_daemon_set,
    ("apps", "ControllerRevision"): apps.validate_controller_revision,
    ("batch", "Job"): batch.validate_job,
    ("batch", "CronJob"): batch.validate_cron_job,
    ("rbac.authorization.k8s.io", "Role"): rbac.validate_role,
    ("rbac.authorization.k8s.io", "ClusterRole"): rbac.validate_cluster_role,
    ("rbac.authorization.k8s.io", "RoleBinding"): rbac.validate_role_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): rbac.validate_cluster_role_binding,
    ("networking.k8s.io", "Ingress"): other.validate_ingress,
    ("networking.k8s.io", "IngressClass"): other.validate_ingress_class,
    ("networking.k8s.io", "NetworkPolicy"): other.validate_network_policy,
    ("policy", "PodDisruptionBudget"): other.validate_pdb,
    ("scheduling.k8s.io", "PriorityClass"): other.validate_priority_class,
    ("storage.k8s.io", "StorageClass"): other.validate_storage_class,
    ("coordination.k8s.io", "Lease"): other.validate_lease,
    ("discovery.k8s.io", "EndpointSlice"): other.validate_endpoint_slice,
    ("autoscaling", "HorizontalPodAutoscaler"): other.validate_hpa,
    ("events.k8s.io", "Event"): other.validate_event,
}


def validate(group: str, version: str, kind: str, obj: Any,
             old: dict[str, Any] | None = None, types_checked: bool = False) -> list[Cause]:
    """Causes of the 422 Invalid for `obj` (a create when `old` is None, else an update).
    `types_checked`: the caller already ran `fields.type_error` on `obj` and `old` is a stored
    object, so neither is walked again."""
    if not isinstance(obj, dict):
        return [errs.field_error(errs.TYPE_INVALID, "", "Invalid value: the object must be a JSON object")]
    if not types_checked:
        schema = S.for_kind(group, version, kind)
        problem = fields.type_error(obj, schema)
        if problem:
            return [errs.field_error(errs.TYPE_INVALID, "", problem)]
        if old is not None and (not isinstance(old, dict) or fields.type_error(old, schema)):
            old = None
    validator = _VALIDATORS.get((group, kind))
    try:
        if validator is None:
            causes = meta.validate_object_meta(meta.metadata(obj), meta.name_is_dns_subdomain) \
                if old is None else meta.validate_object_meta_update(meta.metadata(obj), meta.metadata(old))
        else:
            causes = validator(obj, old)
    except Exception as e:  # a validator bug must surface as a cause, never as a 500
        log.exception("validation of %s/%s %s failed", group, version, kind)
        return [errs.internal("", str(e))]
    return _dedupe(causes)


def _dedupe(causes: list[Cause]) -> list[Cause]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for c in causes:
        key = (c["reason"], c.get("field", ""), c["message"])
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


__all__ = ["validate", "fields", "meta", "errs"]
