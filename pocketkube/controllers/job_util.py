"""Pure helpers of the Job controller (kube's pkg/controller/job utils, indexed_job_utils,
pod_failure_policy and backoff_utils): what counts as an active, failed or ready pod, completion
indexes and their "1,3-5" interval strings, pod failure policy matching, the pod-recreation
backoff and job conditions.

Kept apart from the controller so unit tests can check each rule without an API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pocketkube.controllers.job_clock import parse_time

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
DEFAULT_POD_FAILURE_BACKOFF = 10.0  # seconds; doubles per failure after the last success
MAX_POD_FAILURE_BACKOFF = 600.0
MAX_GENERATED_NAME = 58  # 63 minus the 5 random characters the API server appends


# -- pods ------------------------------------------------------------------------------------
def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_active(pod: Obj) -> bool:
    """controller.FilterActivePods: not finished and not being deleted."""
    return phase(pod) not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and \
        phase(pod) not in ("Succeeded", "Failed")


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def only_replace_failed(job: Obj) -> bool:
    spec = job.get("spec") or {}
    if spec.get("podReplacementPolicy") == "Failed":
        return True
    return spec.get("podReplacementPolicy") is None and spec.get("podFailurePolicy") is not None


def is_failed(pod: Obj, job: Obj) -> bool:
    """kube's isPodFailed: Failed, or (unless only failed pods are replaced, or a pod failure
    policy decides) deleted before it succeeded."""
    if phase(pod) == "Failed":
        return True
    if (job.get("spec") or {}).get("podFailurePolicy") is not None or only_replace_failed(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def finish_time(pod: Obj) -> float:
    """When the pod finished: its last container's exit, else when it stopped being Ready,
    else its deletion (or, failing all, its creation)."""
    status = pod.get("status") or {}
    latest = None
    for cs in status.get("containerStatuses") or []:
        t = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t is not None and (latest is None or t > latest):
            latest = t
    if latest is not None:
        return latest
    for c in status.get("conditions") or []:
        t = parse_time(c.get("lastTransitionTime"))
        if c.get("type") == "Ready" and c.get("status") == "False" and t is not None:
            return t
    return parse_time(pod["metadata"].get("deletionTimestamp")) or \
        parse_time(pod["metadata"].get("creationTimestamp")) or 0.0


def restarts(pods: Iterable[Obj]) -> int:
    """Container restarts of pending or running pods (backoffLimit with restartPolicy
    OnFailure)."""
    total = 0
    for p in pods:
        if phase(p) in ("Running", "Pending"):
            st = p.get("status") or {}
            for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
                total += int(cs.get("restartCount") or 0)
    return total


# -- completion indexes ----------------------------------------------------------------------
def completion_index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    if value is None or not value.isdigit():
        return None
    return int(value)


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """`status.completedIndexes` ("1,3-5") as a set, ignoring indexes past completions."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(range(a, min(b, completions - 1) + 1))
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    runs: list[list[int]] = []
    for ix in sorted(set(indexes)):
        if runs and ix == runs[-1][1] + 1:
            runs[-1][1] = ix
        else:
            runs.append([ix, ix])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def pod_generate_name(job_name: str, index: int | None) -> str:
    if index is None:
        return f"{job_name}-"
    appendix = f"-{index}-"
    prefix = job_name + appendix
    if len(prefix) > MAX_GENERATED_NAME:
        prefix = job_name[:MAX_GENERATED_NAME - len(appendix)] + appendix
    return prefix


# -- pod failure policy ----------------------------------------------------------------------
def _exit_code_matches(code: int, req: Obj) -> bool:
    values = req.get("values") or []
    return code in values if req.get("operator") == "In" else code not in values


def _matching_container(pod: Obj, req: Obj) -> Obj | None:
    st = pod.get("status") or {}
    for statuses in (st.get("containerStatuses") or [], st.get("initContainerStatuses") or []):
        for cs in statuses:
            term = (cs.get("state") or {}).get("terminated")
            if term is None:
                continue
            name = req.get("containerName")
            code = int(term.get("exitCode") or 0)
            if (name is None or name == cs.get("name")) and code != 0 and \
                    _exit_code_matches(code, req):
                return cs
    return None


def _matching_condition(pod: Obj, patterns: list[Obj]) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        for pat in patterns:
            if cond.get("type") == pat.get("type") and \
                    cond.get("status") == (pat.get("status") or "True"):
                return cond
    return None


def match_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str | None, bool, str | None]:
    """(message when the job must fail, whether the failure counts, the matched action)."""
    if policy is None:
        return None, True, None
    meta = pod["metadata"]
    for i, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = _matching_container(pod, rule["onExitCodes"])
            if cs is None:
                continue
            code = cs["state"]["terminated"].get("exitCode")
            msg = (f"Container {cs.get('name')} for pod {meta.get('namespace')}/{meta['name']} "
                   f"failed with exit code {code} matching {action} rule at index {i}")
        elif rule.get("onPodConditions") is not None:
            cond = _matching_condition(pod, rule["onPodConditions"])
            if cond is None:
                continue
            msg = (f"Pod {meta.get('namespace')}/{meta['name']} has condition {cond.get('type')} "
                   f"matching {action} rule at index {i}")
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action in ("Count", "FailIndex"):
            return None, True, action
        if action == "FailJob":
            return msg, True, action
    return None, True, None


# -- pod recreation backoff ------------------------------------------------------------------
@dataclass
class BackoffRecord:
    failures_after_success: int = 0
    last_failure: float | None = None

    def updated(self, succeeded: list[Obj], failed: list[Obj]) -> BackoffRecord:
        """kube's newBackoffRecord: fold in newly finished pods."""
        fail_times = sorted(finish_time(p) for p in failed)
        if not succeeded:
            if not fail_times:
                return BackoffRecord(self.failures_after_success, self.last_failure)
            return BackoffRecord(self.failures_after_success + len(fail_times), fail_times[-1])
        last_success = max(finish_time(p) for p in succeeded)
        after = [t for t in fail_times if t > last_success]
        return BackoffRecord(len(after), after[-1] if after else None)

    def remaining(self, now: float, base: float = DEFAULT_POD_FAILURE_BACKOFF,
                  cap: float = MAX_POD_FAILURE_BACKOFF) -> float:
        if self.failures_after_success == 0 or self.last_failure is None:
            return 0.0
        backoff = min(base * 2 ** (self.failures_after_success - 1), cap)
        return max(0.0, backoff - (now - self.last_failure))


# -- conditions ------------------------------------------------------------------------------
def condition(job: Obj, ctype: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def condition_true(job: Obj, ctype: str) -> bool:
    c = condition(job, ctype)
    return c is not None and c.get("status") == "True"


def is_finished(job: Obj) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def new_condition(ctype: str, reason: str, message: str, now: str, status: str = "True") -> Obj:
    return {"type": ctype, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], ctype: str, status: str, reason: str, message: str,
                     now: str) -> bool:
    """kube's ensureJobConditionStatus: set or add the condition; whether anything changed.
    A False condition is not added when the job has none of that type."""
    for c in conditions:
        if c.get("type") != ctype:
            continue
        if c.get("status") == status and c.get("reason") == reason and \
                c.get("message") == message:
            return False
        c.update(status=status, reason=reason, message=message, lastProbeTime=now,
                 lastTransitionTime=now)
        return True
    if status == "False":
        return False
    conditions.append(new_condition(ctype, reason, message, now, status))
    return True
