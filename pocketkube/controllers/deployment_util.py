"""Pure functions of the Deployment controller (kube's `pkg/controller/deployment/util`): the
surge/unavailability arithmetic of a rolling update, revision bookkeeping in ReplicaSet
annotations, which ReplicaSet is new and which are old, and proportional scaling. The
pod-template hash lives in deployment_hash.py and is re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

from pocketkube.controllers.deployment_hash import (  # noqa: F401 - part of this module's API
    HASH_LABEL,
    compute_hash,
    equal_ignore_hash,
    fnv32a,
    safe_encode,
    without_hash,
)
from pocketkube.controllers.replicaset_util import parse_time

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1
# Annotations of a Deployment that are not copied to its new ReplicaSet.
SKIP_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                              MAX_REPLICAS, ROLLBACK_TO})



# -- counts and fenceposts -----------------------------------------------------------------------
def replicas(obj: Obj | None) -> int:
    return 0 if obj is None else int((obj.get("spec") or {}).get("replicas", 1))


def status_of(obj: Obj | None, field: str) -> int:
    return 0 if obj is None else int((obj.get("status") or {}).get(field, 0) or 0)


def sum_spec(rss: list[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def sum_status(rss: list[Obj | None], field: str) -> int:
    return sum(status_of(rs, field) for rs in rss if rs is not None)


def scaled_value(v: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if v is None:
        return 0
    if isinstance(v, int):
        return v
    if not v.endswith("%"):
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {v!r}") from None
    try:
        pct = int(v[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: invalid value {v!r}") from None
    return math.ceil(pct * total / 100) if round_up else (pct * total) // 100


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == \
        "RollingUpdate"


def _rolling(d: Obj) -> Obj:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def resolve_fenceposts(surge: int | str | None, unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    s = scaled_value(surge if surge is not None else 0, desired, True)
    u = scaled_value(unavailable if unavailable is not None else 0, desired, False)
    if s == 0 and u == 0:
        u = 1  # both rounding down to zero would block the rollout
    return s, u


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    ru = _rolling(d)
    return resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    ru = _rolling(d)
    u = resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas(d))[1]
    return min(u, replicas(d))


def new_rs_new_replicas(d: Obj, all_rss: list[Obj | None], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas)."""
    if not is_rolling(d):
        return replicas(d)
    surge = scaled_value(_rolling(d).get("maxSurge"), replicas(d), True)
    current = sum_spec(all_rss)
    max_total = replicas(d) + surge
    if current >= max_total:
        return replicas(new_rs)
    up = min(max_total - current, replicas(d) - replicas(new_rs))
    return replicas(new_rs) + up


def has_progress_deadline(d: Obj) -> bool:
    v = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return v is not None and v != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    v = (d.get("spec") or {}).get("revisionHistoryLimit")
    return v is not None and v != MAX_INT32


# -- revisions and annotations ------------------------------------------------------------------
def annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def revision(rs: Obj) -> int:
    try:
        return int(annotations(rs).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def set_replicas_annotations(ann: dict[str, str], desired: int, maximum: int) -> bool:
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    ann = annotations(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(maximum)


def set_new_rs_annotations(d: Obj, ann: dict[str, str], new_revision: str, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations on a ReplicaSet's (mutable) annotations: copy the Deployment's
    annotations, raise the revision to `new_revision` keeping the earlier one in
    revision-history (a rollback), and on a new ReplicaSet set desired/max replicas."""
    changed = False
    for k, v in annotations(d).items():
        if k in SKIP_ANNOTATIONS or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    had = REVISION in ann
    old_rev = ann.get(REVISION, "")
    try:
        old_int = int(old_rev) if old_rev else 0
    except ValueError:
        return False
    new_int = int(new_revision)
    if old_int < new_int:
        ann[REVISION] = new_revision
        changed = True
        if had:
            history = ann.get(REVISION_HISTORY, "")
            parts = history.split(",")
            if not parts[0]:
                ann[REVISION_HISTORY] = old_rev
            else:
                total, start = len(history) + len(old_rev) + 1, 0
                while total > MAX_REV_HISTORY_CHARS and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= MAX_REV_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join([*parts[start:], old_rev])
    if not exists and set_replicas_annotations(ann, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# -- finding and ordering ReplicaSets -----------------------------------------------------------
def _created(rs: Obj) -> float:
    return parse_time(rs["metadata"].get("creationTimestamp")) or 0.0


def by_creation(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda rs: (_created(rs), rs["metadata"]["name"]))


def by_revision(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda rs: (revision(rs), _created(rs), rs["metadata"]["name"]))


def by_size_newer(rss: list[Obj]) -> list[Obj]:
    """Larger first; among equals, newer first (scaling up)."""
    by_name_desc = sorted(rss, key=lambda rs: rs["metadata"]["name"], reverse=True)
    return sorted(by_name_desc, key=lambda rs: (-replicas(rs), -_created(rs)))


def by_size_older(rss: list[Obj]) -> list[Obj]:
    """Larger first; among equals, older first (scaling down)."""
    return sorted(rss, key=lambda rs: (-replicas(rs), _created(rs), rs["metadata"]["name"]))


def find_new_rs(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (FindNewReplicaSet)."""
    want = without_hash((d.get("spec") or {}).get("template"))
    for rs in by_creation(rss):
        if without_hash((rs.get("spec") or {}).get("template")) == want:
            return rs
    return None


def find_old_rss(d: Obj, rss: list[Obj], new_rs: Obj | None = None) -> list[Obj]:
    new_rs = new_rs if new_rs is not None else find_new_rs(d, rss)
    new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    return [rs for rs in rss if rs["metadata"]["uid"] != new_uid]


def active(rss: list[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    live = active([*newest_first, new_rs])
    if not live:
        return new_rs if new_rs is not None else newest_first[0]
    return live[0] if len(live) == 1 else None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(annotations(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    return replicas(rs) == replicas(d) and desired == replicas(d) and \
        status_of(rs, "availableReplicas") == replicas(d)


def round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def rs_proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """GetReplicaSetProportion: this ReplicaSet's share of a proportional scale."""
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -replicas(rs)
    else:
        d_max = replicas(d) + max_surge(d)
        try:
            before = int(annotations(rs)[MAX_REPLICAS])
        except (KeyError, ValueError):
            before = status_of(d, "replicas")
        fraction = round_half_away(replicas(rs) * d_max / before) - replicas(rs) if before \
            else 0
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
