"""The StatefulSet controller (kube's `pkg/controller/statefulset`): pods with stable names
`<set>-<ordinal>`, created in order and removed from the highest ordinal (OrderedReady) or all at
once (Parallel); claims from volumeClaimTemplates; rolling updates from the highest ordinal down
to the partition, one pod at a time; ControllerRevisions recording each template; and the status
`kubectl rollout status` reads.

A sync is level-triggered: it rebuilds the picture from the informer caches every time. No
expectations are needed, because every pod has a fixed name: a create the cache has not seen yet
fails with AlreadyExists and the sync is retried.
"""

from __future__ import annotations

import logging
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.selectors import selector_from_label_selector
from pocketkube.client.events import EventRecorder
from pocketkube.client.rest import resource
from pocketkube.controllers import history as hist
from pocketkube.controllers import statefulset_util as su
from pocketkube.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
STATEFULSETS = resource("apps", "statefulsets")
PODS = resource("", "pods")
CLAIMS = resource("", "persistentvolumeclaims")
log = logging.getLogger("pocketkube.controllers.statefulset")


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__(client, informers, clock)
        self.recorder = recorder or EventRecorder(client, "statefulset-controller")
        self.wall = su.WallClock(self.clock)
        self.sets = informers.informer(STATEFULSETS)
        self.pods = informers.informer(PODS)
        self.revisions = informers.informer(hist.REVISIONS)
        self.claims = informers.informer(CLAIMS)
        for inf in (self.sets, self.pods, self.revisions):
            inf.add_index(hist.NAMESPACE_INDEX, hist.namespace_of)
        self.sets.on(add=self.enqueue, update=lambda old, new: self.enqueue(new),
                     delete=self.enqueue)
        self.pods.on(add=self._pod_event, update=self._pod_updated, delete=self._pod_event)

    # -- event handlers ------------------------------------------------------------------------
    def _pod_event(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        ref = hist.controller_ref(pod)
        if ref is not None:
            if ref.get("kind") == "StatefulSet":
                self.queue.add(f"{ns}/{ref['name']}")
            return
        # An orphan: a set whose selector matches it may adopt it.
        for sts in self.sets.by_index(hist.NAMESPACE_INDEX, ns or ""):
            if su.is_member(sts, pod) and selector_from_label_selector(
                    sts["spec"].get("selector")).matches(pod["metadata"].get("labels")):
                self.enqueue(sts)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        self._pod_event(new)
        if hist.controller_ref(old) != hist.controller_ref(new) or \
                old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._pod_event(old)

    # -- sync ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            return
        sts = {**sts, "apiVersion": "apps/v1", "kind": "StatefulSet"}
        selector = selector_from_label_selector(sts["spec"].get("selector"))
        ns = sts["metadata"]["namespace"]
        revisions = await hist.claim(
            self.client, sts, "apps/v1", hist.REVISIONS,
            self.revisions.by_index(hist.NAMESPACE_INDEX, ns), selector)
        pods = await hist.claim(self.client, sts, "apps/v1", PODS,
                                self.pods.by_index(hist.NAMESPACE_INDEX, ns), selector,
                                lambda p: su.is_member(sts, p))
        revisions = hist.sort_revisions(revisions)
        current, update, collisions = await self._revisions(sts, revisions)
        status: Obj = {"observedGeneration": sts["metadata"].get("generation", 0),
                       "currentRevision": current["metadata"]["name"],
                       "updateRevision": update["metadata"]["name"],
                       "collisionCount": collisions}
        try:
            await self._update(sts, pods, current, update, status)
        finally:
            live = {current["metadata"]["name"], update["metadata"]["name"],
                    *(su.revision_of(p) for p in pods)}
            await self.write_status(sts, status)
            limit = sts["spec"].get("revisionHistoryLimit")
            for old in hist.truncate(revisions, live, 10 if limit is None else limit):
                await self.delete_revision(old)
        min_ready = sts["spec"].get("minReadySeconds") or 0
        if min_ready and status.get("availableReplicas") != su.replicas(sts):
            self.queue.add_after(key, min_ready)

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """The current and update revisions, creating the update revision or bringing an equal
        older one forward (a rollback) as getStatefulSetRevisions does."""
        collisions = (sts.get("status") or {}).get("collisionCount") or 0
        number = hist.next_revision(revisions)
        candidate = hist.new_revision(sts, "apps/v1", "StatefulSet", number, collisions)
        equal = hist.find_equal_revisions(revisions, candidate)
        if equal and hist.equal_revision(revisions[-1], equal[-1]):
            update = revisions[-1]
        elif equal:
            update = await hist.set_revision_number(self.client, equal[-1], number)
        else:
            update, collisions = await hist.create_revision(
                self.client, sts, "apps/v1", "StatefulSet", number, collisions)
        want = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == want), update)
        return current, update, collisions

    async def _update(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj,
                      status: Obj) -> None:
        """Create, delete and replace pods toward the target state (updateStatefulSet), filling
        `status` as it goes; it returns early wherever OrderedReady has to wait."""
        spec = sts["spec"]
        min_ready = spec.get("minReadySeconds") or 0
        now = self.wall.now()
        cur_name, upd_name = current["metadata"]["name"], update["metadata"]["name"]
        status.update(su.count_status(pods, min_ready, now, cur_name, upd_name))
        start, n = su.start_ordinal(sts), su.replicas(sts)
        slots: list[Obj | None] = [None] * n
        condemned: list[Obj] = []
        for pod in pods:
            if su.in_range(pod, sts):
                slots[su.ordinal(pod) - start] = pod
            elif su.ordinal(pod) >= 0:
                condemned.append(pod)
        cur_tpl, upd_tpl = hist.template_of(current), hist.template_of(update)
        replicas: list[Obj] = [
            pod if pod is not None else (
                su.new_pod(sts, cur_tpl, start + i, cur_name)
                if su.uses_current_revision(sts, start + i)
                else su.new_pod(sts, upd_tpl, start + i, upd_name))
            for i, pod in enumerate(slots)]
        condemned.sort(key=su.ordinal, reverse=True)
        unavailable = [p for p in replicas + condemned[::-1]
                       if su.is_unavailable(p, min_ready, now)]
        first_unavailable = unavailable[0] if unavailable else None

        def recount() -> None:
            status.update(su.count_status(replicas + condemned, min_ready, now, cur_name,
                                          upd_name))

        if sts["metadata"].get("deletionTimestamp"):
            return
        monotonic = spec.get("podManagementPolicy") != "Parallel"
        try:
            for pod in replicas:
                if await self._process_replica(sts, pod, monotonic, min_ready, now) \
                        and monotonic:
                    return
            for pod in condemned:
                await self.fix_claim_owners(sts, pod)
            for pod in condemned:
                if await self._process_condemned(sts, pod, first_unavailable, monotonic,
                                                 min_ready, now) and monotonic:
                    return
        finally:
            recount()
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        for target in range(len(replicas) - 1, partition - 1, -1):
            pod = replicas[target]
            if su.revision_of(pod) != upd_name and not su.is_terminating(pod):
                log.info("pod %s of StatefulSet %s is terminating for update",
                         pod["metadata"]["name"], sts["metadata"]["name"])
                await self.delete_pod(sts, pod)
                status["currentReplicas"] -= 1
                return
            if su.is_unavailable(pod, min_ready, now):
                return

    async def _process_replica(self, sts: Obj, pod: Obj, monotonic: bool, min_ready: int,
                               now: float) -> bool:
        """One replica slot; whether an ordered set must stop here this round."""
        if su.phase(pod) in ("Failed", "Succeeded"):
            # Recreated once the old pod is gone (its name is needed).
            if not su.is_terminating(pod):
                await self.delete_pod(sts, pod)
            return True
        if not su.is_created(pod):
            if self._claims_terminating(sts, pod):
                return True
            await self.create_pod(sts, pod)
            return monotonic
        if su.phase(pod) == "Pending":
            await self.create_claims(sts, pod)
        if monotonic and (su.is_terminating(pod) or not su.running_and_ready(pod)
                          or not su.is_available(pod, min_ready, now)):
            return True
        if not (su.identity_matches(sts, pod) and su.storage_matches(sts, pod)):
            await self.fix_identity(sts, pod)
        await self.fix_claim_owners(sts, pod)
        return False

    async def _process_condemned(self, sts: Obj, pod: Obj, first_unavailable: Obj | None,
                                 monotonic: bool, min_ready: int, now: float) -> bool:
        if su.is_terminating(pod):
            return True
        if monotonic and pod is not first_unavailable and (
                not su.running_and_ready(pod) or not su.is_available(pod, min_ready, now)):
            return True
        log.info("pod %s of StatefulSet %s is terminating for scale down",
                 pod["metadata"]["name"], sts["metadata"]["name"])
        await self.delete_pod(sts, pod)
        return True

    def _claims_terminating(self, sts: Obj, pod: Obj) -> bool:
        """A claim left over from a deleted pod is still going away: wait (PodClaimIsStale)."""
        for claim in su.claims(sts, su.ordinal(pod)):
            meta = claim["metadata"]
            existing = self.claims.get(f"{meta['namespace']}/{meta['name']}")
            if existing is not None and existing["metadata"].get("deletionTimestamp"):
                return True
        return False

    # -- writes the sync makes (with kube's events) ---------------------------------------------
    def _event(self, sts: Obj, verb: str, what: str, err: StatusError | None) -> None:
        if err is None:
            self.recorder.record(sts, "Normal", f"Successful{verb.title()}",
                                 f"{verb} {what} in StatefulSet {sts['metadata']['name']} "
                                 "successful")
        else:
            self.recorder.record(sts, "Warning", f"Failed{verb.title()}",
                                 f"{verb} {what} in StatefulSet {sts['metadata']['name']} "
                                 f"failed error: {err.message}")

    async def create_claims(self, sts: Obj, pod: Obj) -> None:
        """Create the claims `pod` mounts that do not exist yet (createPersistentVolumeClaims)."""
        for claim in su.claims(sts, su.ordinal(pod)):
            cname = claim["metadata"]["name"]
            existing = self.claims.get(f"{claim['metadata']['namespace']}/{cname}")
            if existing is not None:
                if existing["metadata"].get("deletionTimestamp"):
                    raise RuntimeError(f"pvc {cname} is being deleted")
                continue
            if pod["metadata"].get("uid"):
                claim["metadata"]["ownerReferences"] = su.claim_owner_refs(claim, sts, pod)
            elif su.retention(sts)[0] == "Delete":
                claim["metadata"]["ownerReferences"] = [
                    hist.new_controller_ref(sts, "apps/v1", "StatefulSet")]
            try:
                await self.client.create(CLAIMS, claim)
            except StatusError as e:
                if e.code == 409 and e.reason == "AlreadyExists":
                    continue
                self.recorder.record(
                    sts, "Warning", "FailedCreate",
                    f"create Claim {cname} for Pod {pod['metadata']['name']} in StatefulSet "
                    f"{sts['metadata']['name']} failed error: {e.message}")
                raise
            self.recorder.record(
                sts, "Normal", "SuccessfulCreate",
                f"create Claim {cname} Pod {pod['metadata']['name']} in StatefulSet "
                f"{sts['metadata']['name']} success")

    async def create_pod(self, sts: Obj, pod: Obj) -> None:
        what = f"Pod {pod['metadata']['name']}"
        try:
            await self.create_claims(sts, pod)
            created = await self.client.create(PODS, pod)
        except StatusError as e:
            if not (e.code == 409 and e.reason == "AlreadyExists"):
                self._event(sts, "create", what, e)
            raise
        await self.fix_claim_owners(sts, created)
        self._event(sts, "create", what, None)

    async def delete_pod(self, sts: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"])
        except StatusError as e:
            if e.code == 404:
                return
            self._event(sts, "delete", f"Pod {meta['name']}", e)
            raise
        self._event(sts, "delete", f"Pod {meta['name']}", None)

    async def fix_identity(self, sts: Obj, pod: Obj) -> None:
        """Restore the identity labels and the claims of a pod that lost them."""
        meta = pod["metadata"]
        if not su.storage_matches(sts, pod):
            await self.create_claims(sts, pod)
        if not su.identity_matches(sts, pod):
            try:
                await self.client.patch(PODS, meta["name"], {"metadata": {
                    "labels": su.identity_labels(sts, su.ordinal(pod))}}, meta["namespace"])
            except StatusError as e:
                self._event(sts, "update", f"Pod {meta['name']}", e)
                raise
            self._event(sts, "update", f"Pod {meta['name']}", None)

    async def fix_claim_owners(self, sts: Obj, pod: Obj) -> bool:
        """Put each claim's ownerReferences where the retention policy wants them; whether all
        claims already matched."""
        matched = True
        for want in su.claims(sts, su.ordinal(pod)):
            meta = want["metadata"]
            claim = self.claims.get(f"{meta['namespace']}/{meta['name']}")
            if claim is None:
                continue
            refs = su.claim_owner_refs(claim, sts, pod)
            if refs == (claim["metadata"].get("ownerReferences") or []):
                continue
            matched = False
            try:
                await self.client.patch(CLAIMS, meta["name"], {"metadata": {
                    "ownerReferences": refs or None}}, meta["namespace"])
            except StatusError as e:
                if e.code != 404:
                    raise
        return matched

    async def write_status(self, sts: Obj, status: Obj) -> None:
        """Merge-patch the status: no resourceVersion, so a cache that has not yet seen our
        previous write does not turn every sync into a conflict (the generation it reports
        never goes back, since the cache never does)."""
        su.complete_rolling_update(sts, status)
        if not su.status_differs(sts, status):
            return
        body = {k: v if v or k in ("replicas", "availableReplicas", "collisionCount") else None
                for k, v in status.items()}
        await self.client.patch(STATEFULSETS, sts["metadata"]["name"], {"status": body},
                                sts["metadata"]["namespace"], subresource="status")

    async def delete_revision(self, revision: Obj) -> None:
        meta = revision["metadata"]
        try:
            await self.client.delete(hist.REVISIONS, meta["name"], meta["namespace"])
        except StatusError as e:
            if e.code != 404:
                raise
