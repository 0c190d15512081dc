"""How the Job controller counts finished pods and picks pods to create or delete, as pure
functions over the job and its pods (kube's pkg/controller/job: getNewFinishedPods,
trackJobStatusAndRemoveFinalizers, cleanUncountedPodsWithoutFinalizers, activePodsForRemoval,
firstPendingIndexes, GetPodFromTemplate).

Counting is two-phase so that a crash never counts a pod twice or loses one: a finished pod's
uid first goes to `status.uncountedTerminatedPods` (written to the API), then its
`batch.kubernetes.io/job-tracking` finalizer is removed, and only then does the uid move from
the uncounted list into `succeeded`/`failed`. Indexed jobs count succeeded pods by index in
`completedIndexes` instead.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pocketkube.controllers import job_util as u

Obj = dict[str, Any]
MAX_UNCOUNTED = 500  # uids in uncountedTerminatedPods per sync (kube's MaxUncountedPods)
INDEX_ENV = "JOB_COMPLETION_INDEX"


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def completions(job: Obj) -> int | None:
    return (job.get("spec") or {}).get("completions")


def _valid_index(job: Obj, pod: Obj) -> bool:
    ix = u.completion_index(pod)
    return ix is not None and ix < (completions(job) or 0)


def uncounted(job: Obj) -> tuple[set[str], set[str]]:
    unc = (job.get("status") or {}).get("uncountedTerminatedPods") or {}
    return set(unc.get("succeeded") or []), set(unc.get("failed") or [])


def new_finished_pods(job: Obj, pods: list[Obj], expected_rm: set[str]
                      ) -> tuple[list[Obj], list[Obj]]:
    """Finished pods not yet in the status: (succeeded, failed)."""
    unc_ok, unc_failed = uncounted(job)
    succeeded, failed = [], []
    for p in pods:
        uid = p["metadata"].get("uid", "")
        if not u.has_finalizer(p) or uid in expected_rm:
            continue
        if is_indexed(job) and not _valid_index(job, p):
            continue
        if u.phase(p) == "Succeeded" and uid not in unc_ok:
            succeeded.append(p)
        elif u.is_failed(p, job) and uid not in unc_failed:
            failed.append(p)
    return succeeded, failed


def counted_failures(job: Obj, failed: list[Obj]) -> int:
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    return sum(1 for p in failed if u.match_failure_policy(policy, p)[1])


def fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if policy is None:
        return None
    for p in pods:
        if u.is_failed(p, job):
            msg = u.match_failure_policy(policy, p)[0]
            if msg is not None:
                return msg
    return None


def succeeded_indexes(job: Obj, pods: list[Obj]) -> tuple[set[int], set[int]]:
    """(indexes already in status.completedIndexes, those plus newly succeeded ones)."""
    n = completions(job) or 0
    prev = u.parse_indexes((job.get("status") or {}).get("completedIndexes"), n)
    new = {u.completion_index(p) for p in pods
           if u.phase(p) == "Succeeded" and _valid_index(job, p) and u.has_finalizer(p)}
    return prev, prev | {ix for ix in new if ix is not None}


@dataclass
class Tally:
    remove_finalizer: list[Obj] = field(default_factory=list)
    flush: bool = False
    capped: bool = False  # stopped at MAX_UNCOUNTED; more next sync


def count_terminated(job: Obj, pods: list[Obj], expected_rm: set[str], failing: bool,
                     finishing: bool, prev_indexes: set[int]) -> Tally:
    """Add finished pods to `job.status.uncountedTerminatedPods` (or, for indexed jobs, new
    indexes to completedIndexes) and choose the pods whose finalizer can go. `failing`: the
    job is about to fail, so every pod still tracked counts as failed; `finishing`: the job
    is about to finish either way (any finalizer may go)."""
    status = job["status"]
    unc = status.setdefault("uncountedTerminatedPods", {})
    unc_ok, unc_failed = uncounted(job)
    policy = job["spec"].get("podFailurePolicy")
    tally = Tally()
    new_indexes: set[int] = set()
    deleting = bool(job["metadata"].get("deletionTimestamp"))
    for p in sorted(pods, key=lambda p: u.completion_index(p) or 0):
        uid = p["metadata"].get("uid", "")
        if not u.has_finalizer(p) or uid in expected_rm:
            continue
        failed = u.is_failed(p, job)
        if not (deleting or finishing or u.phase(p) == "Succeeded" or failed):
            continue
        tally.remove_finalizer.append(p)
        if u.phase(p) == "Succeeded" and uid not in unc_failed:
            if is_indexed(job):
                ix = u.completion_index(p)
                if _valid_index(job, p) and ix not in prev_indexes:
                    new_indexes.add(ix)  # type: ignore[arg-type]
                    tally.flush = True
            elif uid not in unc_ok:
                unc.setdefault("succeeded", []).append(uid)
                unc_ok.add(uid)
                tally.flush = True
        elif (failed or failing) and uid not in unc_failed and \
                (not is_indexed(job) or _valid_index(job, p)) and \
                u.match_failure_policy(policy, p)[1]:
            unc.setdefault("failed", []).append(uid)
            unc_failed.add(uid)
            tally.flush = True
        if len(new_indexes) + len(unc.get("succeeded") or []) + \
                len(unc.get("failed") or []) >= MAX_UNCOUNTED:
            tally.capped = True
            break
    if is_indexed(job):
        text = u.format_indexes(prev_indexes | new_indexes)
        if text != (status.get("completedIndexes") or ""):
            tally.flush = True
        status["completedIndexes"] = text
        status["succeeded"] = len(prev_indexes | new_indexes)
    return tally


def clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
    """Move uids whose pods lost their finalizer from the uncounted lists into the counters."""
    unc = status.setdefault("uncountedTerminatedPods", {})
    changed = False
    for kind in ("succeeded", "failed"):
        uids = unc.get(kind) or []
        keep = [x for x in uids if x in with_finalizer]
        if len(keep) != len(uids):
            changed = True
            status[kind] = int(status.get(kind) or 0) + len(uids) - len(keep)
            if keep:
                unc[kind] = keep
            else:
                unc.pop(kind, None)
    return changed


def past_backoff_on_failure(job: Obj, pods: list[Obj], limit: int) -> bool:
    """restartPolicy OnFailure: container restarts count against backoffLimit."""
    template_spec = (job["spec"].get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    n = u.restarts(pods)
    return n > 0 if limit == 0 else n >= limit



def enact_finished(job: Obj, finished: Obj | None) -> bool:
    """Add the final Complete/Failed condition once nothing is uncounted or terminating."""
    status = job["status"]
    if finished is None:
        return False
    unc = status.get("uncountedTerminatedPods") or {}
    if unc.get("succeeded") or unc.get("failed") or status.get("terminating"):
        return False
    u.ensure_condition(status.setdefault("conditions", []), finished["type"], "True",
                       finished["reason"], finished["message"],
                       finished["lastTransitionTime"])
    if finished["type"] == "Complete":
        status["completionTime"] = finished["lastTransitionTime"]
    return True


# -- choosing pods ---------------------------------------------------------------------------
def _removal_order(p: Obj) -> tuple:
    """controller.ActivePods: unscheduled, then pending, then not ready, then most restarts,
    then newest pods go first."""
    rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(u.phase(p), 1)
    restarts = sum(int(c.get("restartCount") or 0)
                   for c in (p.get("status") or {}).get("containerStatuses") or [])
    created = u.parse_time(p["metadata"].get("creationTimestamp")) or 0.0
    return (bool((p.get("spec") or {}).get("nodeName")), rank, u.is_ready(p), -restarts,
            -created)


def pods_for_removal(job: Obj, active: list[Obj], at_least: int) -> list[Obj]:
    rm: list[Obj] = []
    left = list(active)
    if is_indexed(job):
        left = []
        seen: dict[int, Obj] = {}
        for p in sorted(active, key=_removal_order, reverse=True):
            ix = u.completion_index(p)
            if ix is None or ix >= (completions(job) or 0) or ix in seen:
                rm.append(p)  # out of range or a duplicate of a better pod
            else:
                seen[ix] = p
                left.append(p)
    if len(rm) < at_least:
        left.sort(key=_removal_order)
        rm += left[:at_least - len(rm)]
    return rm


def pending_indexes(job: Obj, pods: list[Obj], done: set[int], count: int) -> list[int]:
    """The lowest `count` indexes neither succeeded nor running (nor terminating, when only
    failed pods are replaced)."""
    taken = set(done)
    taken |= {u.completion_index(p) for p in pods if u.is_active(p)}  # type: ignore[arg-type]
    if u.only_replace_failed(job):
        taken |= {u.completion_index(p) for p in pods if u.is_terminating(p)}  # type: ignore[arg-type]
    out = []
    for ix in range(completions(job) or 0):
        if len(out) >= count:
            break
        if ix not in taken:
            out.append(ix)
    return out


def new_pod(job: Obj, index: int | None) -> Obj:
    """A pod of `job` from its template, with the tracking finalizer and the controller
    reference (GetPodFromTemplate + the Job controller's additions)."""
    meta = job["metadata"]
    template = copy.deepcopy(job["spec"].get("template") or {})
    tmeta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    finalizers = list(tmeta.get("finalizers") or [])
    if u.TRACKING_FINALIZER not in finalizers:
        finalizers.append(u.TRACKING_FINALIZER)
    if index is not None:
        annotations[u.COMPLETION_INDEX] = str(index)
        labels[u.COMPLETION_INDEX] = str(index)
        spec["hostname"] = f"{meta['name']}-{index}"
        path = f"metadata.annotations['{u.COMPLETION_INDEX}']"
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            env = c.setdefault("env", [])
            if not any(e.get("name") == INDEX_ENV for e in env):
                env.append({"name": INDEX_ENV, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    pod_meta: Obj = {"generateName": u.pod_generate_name(meta["name"], index),
                     "namespace": meta.get("namespace"), "finalizers": finalizers,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                          "name": meta["name"], "uid": meta.get("uid"),
                                          "controller": True, "blockOwnerDeletion": True}]}
    if labels:
        pod_meta["labels"] = labels
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
