"""What the workload controllers share for the pods and ReplicaSets they own (kube's
`pkg/controller/controller_utils.go` and `controller_ref_manager.go`):

- owner references: `controller_ref(owner)` and `controller_of(obj)`;
- `pod_from_template`: a pod to create from a template, named `<owner>-<random>`;
- `PodControl`: create and delete pods, recording SuccessfulCreate / FailedCreate /
  SuccessfulDelete / FailedDelete events on the owner exactly as kube words them;
- `Expectations`: after asking for N creations or deletions, do not act on that owner again
  until the informer has shown them (or five minutes pass), so a lagging cache never causes
  double creation;
- `slow_start_batch`: create in batches of 1, 2, 4… and stop at the first failing batch, so a
  quota or admission error costs one request rather than hundreds;
- adoption and release of owned objects by strategic-merge patches of `ownerReferences`.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.informer import Informer
from pocketkube.client.rest import resource
from pocketkube.client.workqueue import Clock

Obj = dict[str, Any]
PODS = resource("", "pods")

EXPECTATIONS_TIMEOUT = 300.0  # kube's ExpectationsTimeout
CONTROLLER_UID_INDEX = "pocketkube.io/controller-uid"
ORPHANS_INDEX = "pocketkube.io/orphans-by-namespace"
NAMESPACE_INDEX = "pocketkube.io/namespace"

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# -- owner references ---------------------------------------------------------------------------
def controller_ref(owner: Obj) -> Obj:
    """metav1.NewControllerRef: the reference a controller puts on what it owns."""
    meta = owner["metadata"]
    return {"apiVersion": owner.get("apiVersion", ""), "kind": owner.get("kind", ""),
            "name": meta["name"], "uid": meta["uid"], "controller": True,
            "blockOwnerDeletion": True}


def controller_of(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def controller_uid(obj: Obj) -> list[str]:
    """Index function: the uid of the object's controller."""
    ref = controller_of(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


def orphan_namespace(obj: Obj) -> list[str]:
    """Index function: the namespace of an object that has no controller."""
    return [] if controller_of(obj) else [(obj.get("metadata") or {}).get("namespace", "")]


def namespace_of(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace", "")]


def add_owner_indexes(inf: Informer) -> None:
    """The indexes every owner-aware controller reads (identical functions, so re-adding them
    from another controller is harmless)."""
    inf.add_index(CONTROLLER_UID_INDEX, controller_uid)
    inf.add_index(ORPHANS_INDEX, orphan_namespace)
    inf.add_index(NAMESPACE_INDEX, namespace_of)


def adopt_patch(owner: Obj, obj: Obj) -> Obj:
    """Strategic-merge patch that makes `owner` the controller of `obj` (with a uid precondition)."""
    return {"metadata": {"ownerReferences": [controller_ref(owner)],
                         "uid": obj["metadata"]["uid"]}}


def release_patch(owner: Obj, obj: Obj) -> Obj:
    return {"metadata": {"ownerReferences": [{"$patch": "delete",
                                              "uid": owner["metadata"]["uid"]}],
                         "uid": obj["metadata"]["uid"]}}


# -- pods from templates ------------------------------------------------------------------------
def pods_prefix(owner_name: str) -> str:
    """getPodsPrefix: `<name>-` unless that is not a valid generateName."""
    prefix = f"{owner_name}-"
    return prefix if len(prefix) <= 253 and _NAME_RE.match(prefix[:-1]) else owner_name


def pod_from_template(template: Obj, owner: Obj, owner_ref: Obj | None) -> Obj:
    meta = template.get("metadata") or {}
    pod_meta: Obj = {"generateName": pods_prefix(owner["metadata"]["name"]),
                     "namespace": owner["metadata"].get("namespace")}
    for f in ("labels", "annotations", "finalizers"):
        if meta.get(f):
            pod_meta[f] = copy.deepcopy(meta[f])
    if owner_ref is not None:
        pod_meta["ownerReferences"] = [owner_ref]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def namespace_terminating(e: BaseException) -> bool:
    if not isinstance(e, StatusError) or e.code != 403:
        return False
    causes = (e.details or {}).get("causes") or []
    return any(c.get("type") == "NamespaceTerminating" for c in causes) or \
        "because it is being terminated" in (e.message or "")


class PodControl:
    """Create and delete pods on behalf of an owner, recording kube's events on the owner."""

    def __init__(self, client: Any, recorder: Any) -> None:
        self.client = client
        self.recorder = recorder

    async def create(self, owner: Obj, template: Obj, owner_ref: Obj | None) -> Obj:
        pod = pod_from_template(template, owner, owner_ref)
        if not pod["metadata"].get("labels"):
            raise ValueError("unable to create pods, no labels")
        try:
            created = await self.client.create(PODS, pod, owner["metadata"].get("namespace"))
        except StatusError as e:
            if not namespace_terminating(e):
                self.recorder.record(owner, "Warning", "FailedCreate", f"Error creating: {e}")
            raise
        self.recorder.record(owner, "Normal", "SuccessfulCreate",
                             f"Created pod: {created['metadata']['name']}")
        return created

    async def delete(self, owner: Obj, namespace: str, name: str) -> None:
        """Delete a pod; a 404 is raised as is (the caller decides), other errors are recorded."""
        try:
            await self.client.delete(PODS, name, namespace)
        except StatusError as e:
            if e.code == 404:
                raise
            self.recorder.record(owner, "Warning", "FailedDelete", f"Error deleting: {e}")
            raise StatusError(e.code, e.reason, f"unable to delete pods: {e}", e.details) from e
        self.recorder.record(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")


async def slow_start_batch(count: int, initial: int,
                           fn: Callable[[], Awaitable[Any]]) -> tuple[int, BaseException | None]:
    """Call `fn` `count` times in growing parallel batches; (successes, first error)."""
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errs = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errs)
        if errs:
            return successes, errs[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


# -- expectations ---------------------------------------------------------------------------------
class _Expectation:
    __slots__ = ("adds", "deletes", "stamp")

    def __init__(self, adds: int, deletes: set[str], stamp: float) -> None:
        self.adds = adds
        self.deletes = deletes
        self.stamp = stamp


class Expectations:
    """kube's UIDTrackingControllerExpectations: creations are counted, deletions are tracked by
    pod key so that a pod seen going away twice is only counted once."""

    def __init__(self, clock: Clock, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._exp: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        e = self._exp.get(key)
        if e is None:
            return True
        if e.adds <= 0 and not e.deletes:
            return True
        return self.clock.now() - e.stamp > self.timeout

    def expect_creations(self, key: str, n: int) -> None:
        self._exp[key] = _Expectation(n, set(), self.clock.now())

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._exp[key] = _Expectation(0, set(pod_keys), self.clock.now())

    def creation_observed(self, key: str, n: int = 1) -> None:
        e = self._exp.get(key)
        if e is not None:
            e.adds -= n

    def deletion_observed(self, key: str, pod_key: str) -> None:
        e = self._exp.get(key)
        if e is not None:
            e.deletes.discard(pod_key)

    def delete(self, key: str) -> None:
        self._exp.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        e = self._exp.get(key)
        return (0, 0) if e is None else (e.adds, len(e.deletes))


def wall_clock(clock: Clock) -> Callable[[], float]:
    """Wall time (epoch seconds) that moves with `clock`: timestamps in the API are wall times,
    and a FakeClock must move them in tests."""
    offset = time.time() - clock.now()
    return lambda: clock.now() + offset
