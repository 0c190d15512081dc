"""Validation of apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

Follows kubernetes `pkg/apis/apps/validation/validation.go` (1.32) and the selector
immutability checks of the apps registry strategies (`pkg/registry/apps/*/strategy.go`).
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.validation import errs, meta
from pocketkube.api.validation.access import m, n, opt_m, s, smap
from pocketkube.api.validation.core_pod import validate_pod_template
from pocketkube.api.validation.errs import Cause


def _meta(obj: dict[str, Any], old: dict[str, Any] | None, name_fn: meta.NameFn) -> list[Cause]:
    if old is None:
        return meta.validate_object_meta(m(obj, "metadata"), name_fn)
    return meta.validate_object_meta_update(m(obj, "metadata"), m(old, "metadata"))


def _selector(spec: dict[str, Any], kind: str, required: bool = True) -> list[Cause]:
    sel = opt_m(spec, "selector")
    if sel is None:
        return [errs.required("spec.selector")] if required else []
    out = meta.validate_label_selector(sel, "spec.selector")
    if meta.selector_is_empty(sel):
        out.append(errs.invalid("spec.selector", errs.go_label_selector(sel),
                                f"empty selector is invalid for {kind}"))
    return out


def _template_matches(spec: dict[str, Any], invalid_msg: str = "invalid label selector") -> list[Cause]:
    sel = opt_m(spec, "selector")
    if not meta.selector_convertible(sel):
        return [errs.invalid("spec.selector", errs.go_label_selector(sel), invalid_msg)]
    labels = smap(m(m(spec, "template"), "metadata"), "labels")
    if sel is not None and not meta.selector_is_empty(sel) and not meta.selector_matches(sel, labels):
        return [errs.invalid("spec.template.metadata.labels", errs.go_map_ss(labels),
                             "`selector` does not match template `labels`")]
    return []


def _always_restart(spec: dict[str, Any], kind: str) -> list[Cause]:
    tspec = m(m(spec, "template"), "spec")
    out: list[Cause] = []
    if s(tspec, "restartPolicy") != "Always":
        out.append(errs.not_supported("spec.template.spec.restartPolicy",
                                      s(tspec, "restartPolicy"), ["Always"]))
    if n(tspec, "activeDeadlineSeconds") is not None:
        out.append(errs.forbidden("spec.template.spec.activeDeadlineSeconds",
                                  f"activeDeadlineSeconds in {kind} is not Supported"))
    return out


def _selector_immutable(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    if old is None:
        return []
    new_sel, old_sel = opt_m(m(obj, "spec"), "selector"), opt_m(m(old, "spec"), "selector")
    return errs.immutable("spec.selector", new_sel, old_sel, errs.go_label_selector(new_sel))


# --- intOrString helpers (`ValidatePositiveIntOrPercent` & co.) ----------------------------------


def _percent(v: Any) -> int | None:
    if isinstance(v, str) and not meta.is_valid_percent(v):
        return int(v[:-1])
    return None


def _int_or_percent_value(v: Any) -> int:
    p = _percent(v)
    if p is not None:
        return p
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return 0
    return 0


def _positive_int_or_percent(v: Any, path: str) -> list[Cause]:
    if isinstance(v, str):
        return [errs.invalid(path, errs.go_intstr(v), msg) for msg in meta.is_valid_percent(v)]
    if isinstance(v, int) and not isinstance(v, bool):
        return errs.nonnegative(path, v)
    return []


def _not_over_100(v: Any, path: str) -> list[Cause]:
    p = _percent(v)
    if p is not None and p > 100:
        return [errs.invalid(path, errs.go_intstr(v), "must not be greater than 100%")]
    return []


# --- Deployment, ReplicaSet ---------------------------------------------------------------------


def _deployment_strategy(strategy: dict[str, Any]) -> list[Cause]:
    path = "spec.strategy"
    stype = s(strategy, "type")
    ru = opt_m(strategy, "rollingUpdate")
    if stype == "Recreate":
        if ru is not None:
            return [errs.forbidden(f"{path}.rollingUpdate",
                                   "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if stype == "RollingUpdate":
        if ru is None:
            return [errs.required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
        rp = f"{path}.rollingUpdate"
        mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
        out = _positive_int_or_percent(mu, f"{rp}.maxUnavailable")
        out += _positive_int_or_percent(ms, f"{rp}.maxSurge")
        if _int_or_percent_value(mu) == 0 and _int_or_percent_value(ms) == 0:
            out.append(errs.invalid(f"{rp}.maxUnavailable", errs.go_intstr(mu),
                                    "may not be 0 when `maxSurge` is 0"))
        return out + _not_over_100(mu, f"{rp}.maxUnavailable")
    ru_repr = "(*apps.RollingUpdateDeployment)(nil)" if ru is None else \
        "(*apps.RollingUpdateDeployment)(0xc000010000)"
    return [errs.not_supported(
        path, errs.GoRepr(f"apps.DeploymentStrategy{{Type:{errs.go_quote(stype)}, RollingUpdate:{ru_repr}}}"),
        ["Recreate", "RollingUpdate"])]


def validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    out += errs.nonnegative("spec.replicas", n(spec, "replicas"))
    out += _selector(spec, "deployment")
    matches = _template_matches(spec)
    out += matches
    if not matches or matches[0]["field"] != "spec.selector":
        out += validate_pod_template(m(spec, "template"), "spec.template")
        out += _always_restart(spec, "ReplicaSet")
    out += _deployment_strategy(m(spec, "strategy"))
    out += errs.nonnegative("spec.minReadySeconds", n(spec, "minReadySeconds"))
    out += errs.nonnegative("spec.revisionHistoryLimit", n(spec, "revisionHistoryLimit"))
    pds = n(spec, "progressDeadlineSeconds")
    if pds is not None:
        out += errs.nonnegative("spec.progressDeadlineSeconds", pds)
        if pds <= (n(spec, "minReadySeconds") or 0):
            out.append(errs.invalid("spec.progressDeadlineSeconds", pds,
                                    "must be greater than minReadySeconds"))
    return out + _selector_immutable(obj, old)


def validate_replica_set(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    out += errs.nonnegative("spec.replicas", n(spec, "replicas"))
    out += errs.nonnegative("spec.minReadySeconds", n(spec, "minReadySeconds"))
    out += _selector(spec, "deployment")
    matches = _template_matches(spec)
    out += matches
    if not matches or matches[0]["field"] != "spec.selector":
        out += validate_pod_template(m(spec, "template"), "spec.template")
        out += _always_restart(spec, "ReplicaSet")
    return out + _selector_immutable(obj, old)


# --- StatefulSet --------------------------------------------------------------------------------

_STS_UPDATABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                  "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def validate_stateful_set(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_label)
    spec = m(obj, "spec")
    policy = s(spec, "podManagementPolicy")
    if not policy:
        out.append(errs.required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        out.append(errs.invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    strategy = m(spec, "updateStrategy")
    stype = s(strategy, "type")
    ru = opt_m(strategy, "rollingUpdate")
    if not stype:
        out.append(errs.required("spec.updateStrategy"))
    elif stype == "OnDelete":
        if ru is not None:
            out.append(errs.invalid("spec.updateStrategy.rollingUpdate",
                                    errs.GoRepr("(*apps.RollingUpdateStatefulSetStrategy)(0xc000010000)"),
                                    "only allowed for updateStrategy 'RollingUpdate'"))
    elif stype == "RollingUpdate":
        if ru is not None:
            out += errs.nonnegative("spec.updateStrategy.rollingUpdate.partition", n(ru, "partition"))
    else:
        out.append(errs.invalid("spec.updateStrategy", errs.GoRepr(
            f"apps.StatefulSetUpdateStrategy{{Type:{errs.go_quote(stype)}, "
            "RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}"),
            "must be 'RollingUpdate' or 'OnDelete'"))
    retention = opt_m(spec, "persistentVolumeClaimRetentionPolicy")
    for key in ("whenDeleted", "whenScaled"):
        if retention is not None and s(retention, key) not in ("Retain", "Delete"):
            out.append(errs.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                                          s(retention, key), ["Retain", "Delete"]))
    out += errs.nonnegative("spec.replicas", n(spec, "replicas"))
    out += errs.nonnegative("spec.minReadySeconds", n(spec, "minReadySeconds"))
    sel = opt_m(spec, "selector")
    if sel is None:
        out.append(errs.required("spec.selector"))
    else:
        out += meta.validate_label_selector(sel, "spec.selector")
        if meta.selector_is_empty(sel):
            out.append(errs.invalid("spec.selector", errs.go_label_selector(sel),
                                    "empty selector is invalid for statefulset"))
    if not meta.selector_convertible(sel):
        out.append(errs.invalid("spec.selector", errs.go_label_selector(sel), ""))
    else:
        out += _template_matches(spec)
        tmeta = m(m(spec, "template"), "metadata")
        out += meta.validate_labels(smap(tmeta, "labels"), "spec.template.labels")
        out += meta.validate_annotations(smap(tmeta, "annotations"), "spec.template.annotations")
    tspec = m(m(spec, "template"), "spec")
    if s(tspec, "restartPolicy") != "Always":
        out.append(errs.not_supported("spec.template.spec.restartPolicy",
                                      s(tspec, "restartPolicy"), ["Always"]))
    if n(tspec, "activeDeadlineSeconds") is not None:
        out.append(errs.forbidden("spec.template.spec.activeDeadlineSeconds",
                                  "activeDeadlineSeconds in StatefulSet is not Supported"))
    if old is not None:
        new_rest = {k: v for k, v in spec.items() if k not in _STS_UPDATABLE and v is not None}
        old_rest = {k: v for k, v in m(old, "spec").items() if k not in _STS_UPDATABLE and v is not None}
        if new_rest != old_rest:
            out.append(errs.forbidden(
                "spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'revisionHistoryLimit', "
                "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
    return out


# --- DaemonSet ----------------------------------------------------------------------------------


def _daemon_set_strategy(strategy: dict[str, Any]) -> list[Cause]:
    stype = s(strategy, "type")
    if stype == "OnDelete":
        return []
    if stype == "RollingUpdate":
        ru = opt_m(strategy, "rollingUpdate")
        if ru is None:
            return [errs.required("spec.updateStrategy.rollingUpdate")]
        rp = "spec.updateStrategy.rollingUpdate"
        mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
        out = _positive_int_or_percent(mu, f"{rp}.maxUnavailable")
        out += _positive_int_or_percent(ms, f"{rp}.maxSurge")
        out += _not_over_100(mu, f"{rp}.maxUnavailable") + _not_over_100(ms, f"{rp}.maxSurge")
        has_u, has_s = _int_or_percent_value(mu) != 0, _int_or_percent_value(ms) != 0
        if has_u and has_s:
            out.append(errs.invalid(f"{rp}.maxSurge", errs.go_intstr(ms),
                                    "may not be set when maxUnavailable is non-zero"))
        elif not has_u and not has_s:
            out.append(errs.required(f"{rp}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
        return out
    return [errs.not_supported("spec.updateStrategy", errs.GoRepr(
        f"apps.DaemonSetUpdateStrategy{{Type:{errs.go_quote(stype)}, "
        "RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}"), ["RollingUpdate", "OnDelete"])]


def validate_daemon_set(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    spec = m(obj, "spec")
    sel = opt_m(spec, "selector")
    out += meta.validate_label_selector(sel, "spec.selector")
    labels = smap(m(m(spec, "template"), "metadata"), "labels")
    if sel is None or (meta.selector_convertible(sel) and not meta.selector_matches(sel, labels)):
        out.append(errs.invalid("spec.template.metadata.labels", errs.go_map_ss(labels),
                                "`selector` does not match template `labels`"))
    if sel is not None and meta.selector_is_empty(sel):
        out.append(errs.invalid("spec.selector", errs.go_label_selector(sel),
                                "empty selector is invalid for daemonset"))
    out += validate_pod_template(m(spec, "template"), "spec.template")
    out += _always_restart(spec, "DaemonSet")
    out += errs.nonnegative("spec.minReadySeconds", n(spec, "minReadySeconds"))
    out += _daemon_set_strategy(m(spec, "updateStrategy"))
    out += errs.nonnegative("spec.revisionHistoryLimit", n(spec, "revisionHistoryLimit"))
    return out + _selector_immutable(obj, old)


def validate_controller_revision(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    out = _meta(obj, old, meta.name_is_dns_subdomain)
    if obj.get("data") is None:
        out.append(errs.required("data", "data is mandatory"))
    out += errs.nonnegative("revision", n(obj, "revision"))
    if old is not None and obj.get("data") != old.get("data"):
        out.append(errs.invalid("data", errs.GoRepr("runtime.RawExtension{...}"), "field is immutable"))
    return out
