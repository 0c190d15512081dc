"""Defaults of batch/v1 Job and CronJob, and the selector a Job gets on create.

Follows kubernetes `pkg/apis/batch/v1/defaults.go` (1.32, JobPodReplacementPolicy on) and the
job registry strategy (`pkg/registry/batch/job/strategy.go`, `generateSelector`), which labels the
pod template with the job's name and uid and selects on the uid.
"""

from __future__ import annotations

from typing import Any

from pocketkube.api.defaulting import core_pod
from pocketkube.api.defaulting.util import (
    child,
    existing,
    objects,
    set_if_empty,
    setdefault,
    template_meta,
)

LEGACY_JOB_NAME = "job-name"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


def _job_labels_from_template(obj: dict[str, Any]) -> None:
    labels = existing(existing(existing(existing(obj, "spec"), "template"), "metadata"), "labels")
    md = child(obj, "metadata")
    if labels is not None and md is not None and not md.get("labels"):
        md["labels"] = dict(labels)


def job(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    setdefault(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    _job_labels_from_template(obj)
    setdefault(spec, "completionMode", "NonIndexed")
    setdefault(spec, "suspend", False)
    failure_policy = existing(spec, "podFailurePolicy")
    for rule in objects(failure_policy, "rules"):
        for pattern in objects(rule, "onPodConditions"):
            set_if_empty(pattern, "status", "True")
    setdefault(spec, "podReplacementPolicy", "Failed" if failure_policy is not None else "TerminatingOrFailed")
    core_pod.template(child(spec, "template"))
    child(obj, "status")


def cron_job(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    set_if_empty(spec, "concurrencyPolicy", "Allow")
    setdefault(spec, "suspend", False)
    setdefault(spec, "successfulJobsHistoryLimit", 3)
    setdefault(spec, "failedJobsHistoryLimit", 1)
    job_template = child(spec, "jobTemplate")
    if job_template is not None:
        template_meta(job_template)
        core_pod.template(child(child(job_template, "spec"), "template"))
    child(obj, "status")


def job_prepare_for_create(obj: dict[str, Any], uid: str) -> None:
    """Generate a Job's selector and pod-template labels from its name and `uid`, unless
    `spec.manualSelector` is true; then re-apply the template-to-job label default, which kube
    applies when it reads the stored object back."""
    md = child(obj, "metadata")
    spec = child(obj, "spec")
    if md is None or spec is None:
        return
    md["uid"] = uid
    if spec.get("manualSelector") is True:
        return
    name = md.get("name") if isinstance(md.get("name"), str) else ""
    tmeta = child(child(spec, "template"), "metadata")
    labels = child(tmeta, "labels")
    if labels is None:
        return
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, uid)
    selector = child(spec, "selector")
    match = child(selector, "matchLabels")
    if match is not None:
        match.setdefault(CONTROLLER_UID, uid)
    _job_labels_from_template(obj)
