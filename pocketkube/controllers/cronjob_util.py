"""Pure helpers of the CronJob controller (kube's pkg/controller/cronjob/utils.go): the Job a
CronJob creates for a schedule time, its deterministic name, the reference kept in
`status.active`, the schedule string with the time zone folded in, and whether a Job finished.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.controllers import cron
from pocketkube.controllers.job_clock import parse_time

Obj = dict[str, Any]
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def parse_meta_time(value: Any) -> datetime | None:
    t = parse_time(value)
    return datetime.fromtimestamp(t, UTC) if t is not None else None


def finished_type(job: Obj) -> str | None:
    """"Complete" or "Failed" when the Job has finished, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


def format_schedule(cj: Obj) -> str:
    """The schedule with spec.timeZone as a `TZ=` prefix (a schedule that names its own zone,
    or an unknown zone, is left as it is)."""
    spec = cj.get("spec") or {}
    schedule = spec.get("schedule") or ""
    tz = spec.get("timeZone")
    if "TZ" in schedule or tz is None:
        return schedule
    try:
        cron.load_location(tz)
    except cron.CronError:
        return schedule
    return f"TZ={tz} {schedule}"


def job_name(cj: Obj, scheduled: datetime) -> str:
    return f"{cj['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def rfc3339(t: datetime) -> str:
    """Go's time.RFC3339 layout: `Z` for UTC, else the numeric offset."""
    off = t.utcoffset()
    if not off:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = t.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{text[:-2]}:{text[-2:]}"


def job_from_template(cj: Obj, scheduled: datetime) -> Obj:
    """kube's getJobFromTemplate2: the Job for the schedule time `scheduled`."""
    meta = cj["metadata"]
    template = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    location = cron.load_location((cj.get("spec") or {}).get("timeZone") or "")
    annotations[SCHEDULED_TIMESTAMP] = rfc3339(scheduled.astimezone(location))
    job_meta: Obj = {
        "name": job_name(cj, scheduled), "namespace": meta.get("namespace"),
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                             "uid": meta.get("uid"), "controller": True,
                             "blockOwnerDeletion": True}],
    }
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def job_reference(job: Obj) -> Obj:
    """The ObjectReference kept in status.active."""
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta.get("namespace"), "name": meta["name"],
            "uid": meta.get("uid"), "apiVersion": "batch/v1",
            "resourceVersion": meta.get("resourceVersion")}


def owner_key(job: Obj) -> list[str]:
    """The `namespace/name` of the CronJob controlling `job`, if any (an index function)."""
    for ref in job["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "CronJob":
            return [f"{job['metadata'].get('namespace')}/{ref.get('name')}"]
    return []


def go_quote(s: str) -> str:
    """Go's %q, as kube's event messages quote schedules and zones."""
    return json.dumps(s, ensure_ascii=False)


def drop_active(cj: Obj, uid: str | None) -> None:
    cj["status"]["active"] = [r for r in cj["status"].get("active") or [] if r.get("uid") != uid]


def namespace_terminating(e: StatusError) -> bool:
    """A create refused because the namespace is being deleted (no event for that)."""
    details = e.details if isinstance(e.details, dict) else {}
    return any(c.get("type") == "NamespaceTerminating" for c in details.get("causes") or [])
