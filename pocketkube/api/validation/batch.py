"""Validation of batch/v1: Job and CronJob.

Follows kubernetes `pkg/apis/batch/validation/validation.go` (1.32): generated selectors, pod
template rules (restartPolicy OnFailure or Never), completion modes, update immutability, and
CronJob schedules parsed with the cron syntax kube accepts.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.validation import errs, meta
from pocketkube.api.validation.access import m, n, opt_m, s, smap
from pocketkube.api.validation.core_pod import validate_pod_template
from pocketkube.api.validation.cron import parse_error
from pocketkube.api.validation.errs import Cause

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
MAX_PARALLELISM_INDEXED = 100_000


def _job_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        out += errs.nonnegative(f"{path}.{key}", n(spec, key))
    mode = spec.get("completionMode")
    if isinstance(mode, str):
        if mode not in ("NonIndexed", "Indexed"):
            out.append(errs.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
        if mode == "Indexed":
            if n(spec, "completions") is None:
                out.append(errs.required(f"{path}.completions", "when completion mode is Indexed"))
            par = n(spec, "parallelism")
            if par is not None and par > MAX_PARALLELISM_INDEXED:
                out.append(errs.invalid(f"{path}.parallelism", par,
                                        f"must be less than or equal to {MAX_PARALLELISM_INDEXED} "
                                        "when completion mode is Indexed"))
    if n(spec, "backoffLimitPerIndex") is not None and mode != "Indexed":
        out.append(errs.forbidden(f"{path}.backoffLimitPerIndex", "requires indexed completion mode"))
    policy = s(spec, "podReplacementPolicy")
    if policy and policy not in ("TerminatingOrFailed", "Failed"):
        out.append(errs.not_supported(f"{path}.podReplacementPolicy", policy,
                                      ["TerminatingOrFailed", "Failed"]))
    template = m(spec, "template")
    out += validate_pod_template(template, f"{path}.template")
    restart = s(m(template, "spec"), "restartPolicy")
    if restart not in ("OnFailure", "Never"):
        out.append(errs.not_supported(f"{path}.template.spec.restartPolicy", restart,
                                      ["OnFailure", "Never"]))
    return out


def _generated_selector(obj: dict[str, Any]) -> list[Cause]:
    spec = m(obj, "spec")
    if spec.get("manualSelector") is True:
        return []
    if m(m(spec, "template"), "metadata").get("labels") is None:
        return []
    out: list[Cause] = []
    uid = s(m(obj, "metadata"), "uid")
    if not uid:
        out.append(errs.required("metadata.uid"))
    sel = opt_m(spec, "selector")
    if sel is not None and meta.selector_convertible(sel) and \
            not meta.selector_matches(sel, {CONTROLLER_UID_LABEL: uid}):
        out.append(errs.invalid("spec.selector", errs.go_label_selector(sel),
                                "`selector` not auto-generated"))
    return out


def validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    md = m(obj, "metadata")
    spec = m(obj, "spec")
    if old is None:
        out = meta.validate_object_meta(md, meta.name_is_dns_subdomain)
        out += _generated_selector(obj)
    else:
        out = meta.validate_object_meta_update(md, m(old, "metadata"))
    out += _job_spec(spec, "spec")
    sel = opt_m(spec, "selector")
    if sel is None:
        out.append(errs.required("spec.selector"))
    else:
        out += meta.validate_label_selector(sel, "spec.selector")
    labels = smap(m(m(spec, "template"), "metadata"), "labels")
    if meta.selector_convertible(sel) and (sel is None or not meta.selector_matches(sel, labels)):
        out.append(errs.invalid("spec.template.metadata.labels", errs.go_map_ss(labels),
                                "`selector` does not match template `labels`"))
    completions = n(spec, "completions")
    if old is None and spec.get("completionMode") == "Indexed" and completions and completions > 0:
        hostname = f"{s(md, 'name')}-{completions - 1}"
        if meta.is_dns1123_label(hostname):
            out.append(errs.invalid("metadata.name", s(md, "name"),
                                    f"will not able to create pod with invalid DNS label: {hostname}"))
    if old is not None:
        out += _job_update(spec, m(old, "spec"))
    return out


def _job_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    elastic = new.get("completionMode") == "Indexed" and \
        n(new, "completions") == n(new, "parallelism") and n(old, "completions") == n(old, "parallelism")
    if not elastic:
        out += errs.immutable("spec.completions", n(new, "completions"), n(old, "completions"),
                              "null" if n(new, "completions") is None else None)
    out += errs.immutable("spec.selector", opt_m(new, "selector"), opt_m(old, "selector"),
                          errs.go_label_selector(opt_m(new, "selector")))
    new_t, old_t = m(new, "template"), m(old, "template")
    if new_t != old_t and not _scheduling_only_change(new, old):
        out.append(errs.invalid("spec.template", errs.go_struct("core.PodTemplateSpec", new_t),
                                "field is immutable"))
    for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy",
                "successPolicy"):
        if new.get(key) != old.get(key):
            value = new.get(key)
            render = value if isinstance(value, (str, int)) else errs.go_struct("", value)
            out.append(errs.invalid(f"spec.{key}", render, "field is immutable"))
    return out


def _scheduling_only_change(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Suspended jobs that never started may change their pods' scheduling directives."""
    if new.get("suspend") is not True or old.get("suspend") is not True:
        return False
    mutable = ("nodeSelector", "affinity", "tolerations", "schedulingGates")
    new_t, old_t = m(new, "template"), m(old, "template")

    def rest(t: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m(t, "spec").items() if k not in mutable}

    return rest(new_t) == rest(old_t)


def validate_cron_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    md = m(obj, "metadata")
    if old is None:
        out = meta.validate_object_meta(md, meta.name_is_dns_subdomain)
        if len(s(md, "name")) > 52:
            out.append(errs.invalid("metadata.name", s(md, "name"), "must be no more than 52 characters"))
    else:
        out = meta.validate_object_meta_update(md, m(old, "metadata"))
    spec = m(obj, "spec")
    schedule = s(spec, "schedule")
    if not schedule:
        out.append(errs.required("spec.schedule"))
    else:
        problem = parse_error(schedule)
        if problem:
            out.append(errs.invalid("spec.schedule", schedule, problem))
        if "TZ" in schedule:
            out.append(errs.invalid("spec.schedule", schedule,
                                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        out += errs.nonnegative(f"spec.{key}", n(spec, key))
    policy = s(spec, "concurrencyPolicy")
    if not policy:
        out.append(errs.required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        out.append(errs.not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    tz = spec.get("timeZone")
    if isinstance(tz, str) and (not tz or " " in tz or tz.startswith(("/", "."))):
        out.append(errs.invalid("spec.timeZone", tz, "unknown time zone " + tz))
    job_spec = m(m(spec, "jobTemplate"), "spec")
    out += _job_spec(job_spec, "spec.jobTemplate.spec")
    if opt_m(job_spec, "selector") is not None:
        out.append(errs.invalid("spec.jobTemplate.spec.selector",
                                errs.go_label_selector(opt_m(job_spec, "selector")),
                                "`selector` will be auto-generated"))
    if job_spec.get("manualSelector") is True:
        out.append(errs.not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"]))
    return out
