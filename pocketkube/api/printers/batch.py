"""Table printers for batch/v1 Jobs and CronJobs (printers.go `printJob`, `printCronJob`).

A Job's STATUS follows kube's precedence (Complete, Failed, Terminating, Suspended,
FailureTarget, Running), COMPLETIONS reads "1/3" or "0/1 of 4" for work queues, and DURATION runs
from `startTime` to `completionTime` (or to now while the Job is active).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pocketkube.api.printers.common import (
    AGE_COL,
    CONTAINERS_DESC,
    IMAGES_DESC,
    NAME_COL,
    Col,
    Obj,
    containers_of,
    format_selector,
    human_duration,
    layout_containers,
    name_age,
    parse_time,
    since,
)

JOB_COLUMNS = (
    NAME_COL,
    Col("Status", desc="Status of the job."),
    Col("Completions", desc=("batch.v1.JobStatus", "succeeded")),
    Col("Duration", desc="Time required to complete the job."),
    AGE_COL,
    Col("Containers", desc=CONTAINERS_DESC, priority=1),
    Col("Images", desc=IMAGES_DESC, priority=1),
    Col("Selector", desc=("batch.v1.JobSpec", "selector"), priority=1),
)


def _has_condition(conditions: list[Obj], ctype: str) -> bool:
    for c in conditions:
        if c.get("type") == ctype:
            return c.get("status") == "True"
    return False


def job_status(obj: Obj) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if _has_condition(conditions, "Complete"):
        return "Complete"
    if _has_condition(conditions, "Failed"):
        return "Failed"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(conditions, "Suspended"):
        return "Suspended"
    if _has_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    succeeded = status.get("succeeded") or 0
    completions = spec.get("completions")
    if completions is not None:
        completions_cell = f"{succeeded}/{completions}"
    elif (parallelism := spec.get("parallelism") or 0) > 1:
        completions_cell = f"{succeeded}/1 of {parallelism}"
    else:
        completions_cell = f"{succeeded}/1"
    duration = ""
    start = parse_time(status.get("startTime"))
    if start is not None:
        end = parse_time(status.get("completionTime"))
        duration = human_duration(((end or now) - start).total_seconds())
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(spec.get("template")))
    return [
        name,
        job_status(obj),
        completions_cell,
        duration,
        age,
        names,
        images,
        format_selector(spec.get("selector")),
    ]


CRON_JOB_COLUMNS = (
    NAME_COL,
    Col("Schedule", desc=("batch.v1.CronJobSpec", "schedule")),
    Col("Timezone", desc=("batch.v1.CronJobSpec", "timeZone")),
    Col("Suspend", "boolean", ("batch.v1.CronJobSpec", "suspend")),
    Col("Active", "integer", ("batch.v1.CronJobStatus", "active")),
    Col("Last Schedule", desc=("batch.v1.CronJobStatus", "lastScheduleTime")),
    AGE_COL,
    Col("Containers", desc=CONTAINERS_DESC, priority=1),
    Col("Images", desc=IMAGES_DESC, priority=1),
    Col("Selector", desc=("batch.v1.JobSpec", "selector"), priority=1),
)


def cron_job_row(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    last = status.get("lastScheduleTime")
    time_zone = spec.get("timeZone")
    name, age = name_age(obj, now)
    names, images = layout_containers(containers_of(job_spec.get("template")))
    return [
        name,
        spec.get("schedule", ""),
        "<none>" if time_zone is None else time_zone,
        "True" if spec.get("suspend") else "False",  # printBoolPtr of a defaulted field
        len(status.get("active") or ()),
        since(last, now) if last else "<none>",
        age,
        names,
        images,
        format_selector(job_spec.get("selector")),
    ]


PRINTERS = {
    ("batch", "Job"): (JOB_COLUMNS, job_row),
    ("batch", "CronJob"): (CRON_JOB_COLUMNS, cron_job_row),
}
