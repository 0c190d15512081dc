"""The Deployment controller's writes (kube's `pkg/controller/deployment/sync.go`): finding or
creating the new ReplicaSet and keeping revisions in step, scaling ReplicaSets (with the
ScalingReplicaSet events), proportional scaling when a Deployment is resized mid-rollout,
cleaning up old ReplicaSets beyond revisionHistoryLimit, and writing the Deployment's status.

Mixed into DeploymentController; methods take the Deployment as a private mutable copy `d`
which they update as kube's controller updates its copy.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import resource
from pocketkube.controllers import deployment_status as ds
from pocketkube.controllers import deployment_util as du
from pocketkube.controllers import podcontrol as pc

Obj = dict[str, Any]
DEPLOYMENTS = resource("apps", "deployments")
REPLICASETS = resource("apps", "replicasets")
STATUS_FIELDS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                 "availableReplicas", "unavailableReplicas", "conditions", "collisionCount")


def _owner(d: Obj) -> Obj:
    return {**d, "apiVersion": "apps/v1", "kind": "Deployment"}


class DeploymentSync:
    client: Any
    recorder: Any
    sets: Any
    deployments: Any
    wall: Any

    # -- writing the Deployment ---------------------------------------------------------------------
    async def write_status(self, d: Obj) -> None:
        """UpdateStatus: the whole status (Go leaves out zero values), and the revision
        annotation when it moved."""
        meta = d["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        rev = (meta.get("annotations") or {}).get(du.REVISION)
        cached = self.deployments.get(f"{ns}/{name}") or d
        if rev is not None and du.annotations(cached).get(du.REVISION) != rev:
            await self.client.patch(DEPLOYMENTS, name,
                                    {"metadata": {"annotations": {du.REVISION: rev}}}, ns)
        status = d.get("status") or {}
        body = {f: (status.get(f) if status.get(f) not in (None, 0, []) else None)
                for f in STATUS_FIELDS}
        await self.client.patch(DEPLOYMENTS, name, {"status": body}, ns, subresource="status")

    @staticmethod
    def set_revision(d: Obj, rev: str) -> bool:
        ann = d["metadata"].setdefault("annotations", {})
        if ann.get(du.REVISION) == rev:
            return False
        ann[du.REVISION] = rev
        return True

    # -- the new ReplicaSet -----------------------------------------------------------------------
    async def get_all_rss_and_sync_revision(self, d: Obj, rs_list: list[Obj],
                                            create: bool) -> tuple[Obj | None, list[Obj]]:
        old = du.find_old_rss(d, rs_list)
        new_rs = await self.get_new_rs(d, rs_list, old, create)
        return new_rs, old

    async def get_new_rs(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj],
                         create: bool) -> Obj | None:
        existing = du.find_new_rs(d, rs_list)
        new_revision = str(du.max_revision(old_rss) + 1)
        now = self.wall()
        if existing is not None:
            rs = copy.deepcopy(existing)
            ann = rs["metadata"].setdefault("annotations", {})
            changed = du.set_new_rs_annotations(d, ann, new_revision, True)
            min_ready = d["spec"].get("minReadySeconds", 0) or 0
            if changed or (rs["spec"].get("minReadySeconds", 0) or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                updated = await self.client.update(REPLICASETS, rs)
                # Later steps of this sync see the write, not the cache's older copy.
                rs_list[rs_list.index(existing)] = updated
                return updated
            needs = self.set_revision(d, ann.get(du.REVISION, ""))
            status = d.setdefault("status", {})
            if du.has_progress_deadline(d) and ds.get_condition(status, "Progressing") is None:
                ds.set_condition(status, ds.new_condition(
                    "Progressing", "True", ds.FOUND_NEW_RS,
                    f'Found new replica set "{rs["metadata"]["name"]}"', now))
                needs = True
            if needs:
                await self.write_status(d)
            return rs
        if not create:
            return None
        spec = d["spec"]
        collision = (d.get("status") or {}).get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pth = du.compute_hash(template, collision)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), du.HASH_LABEL: pth}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.HASH_LABEL: pth}
        name = f'{d["metadata"]["name"]}-{pth}'
        ns = d["metadata"].get("namespace")
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns, "labels": dict(tmeta["labels"]),
                         "ownerReferences": [pc.controller_ref(_owner(d))], "annotations": {}},
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0) or 0,
                     "selector": selector, "template": template},
        }
        count = du.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = count
        du.set_new_rs_annotations(d, new_rs["metadata"]["annotations"], new_revision, False)
        already = False
        try:
            created = await self.client.create(REPLICASETS, new_rs, ns)
        except StatusError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                created = await self._existing_or_collision(d, ns, name)
                already = True
            elif pc.namespace_terminating(e):
                raise
            else:
                msg = f'Failed to create new replica set "{name}": {e}'
                if du.has_progress_deadline(d):
                    ds.set_condition(d.setdefault("status", {}), ds.new_condition(
                        "Progressing", "False", ds.FAILED_RS_CREATE, msg, now))
                    # The creation failure is the error to report.
                    with contextlib.suppress(StatusError):
                        await self.write_status(d)
                self.recorder.record(_owner(d), "Warning", ds.FAILED_RS_CREATE, msg)
                raise
        if not already and count > 0:
            self.recorder.record(_owner(d), "Normal", "ScalingReplicaSet",
                                 f"Scaled up replica set {name} from 0 to {count}")
        needs = self.set_revision(d, new_revision)
        if not already and du.has_progress_deadline(d):
            ds.set_condition(d.setdefault("status", {}), ds.new_condition(
                "Progressing", "True", ds.NEW_RS_CREATED, f'Created new replica set "{name}"',
                now))
            needs = True
        if needs:
            await self.write_status(d)
        return created

    async def _existing_or_collision(self, d: Obj, ns: str | None, name: str) -> Obj:
        """The name is taken: ours with the same template (a slow cache), or a hash collision
        that bumps status.collisionCount and retries."""
        rs = self.sets.get(f"{ns}/{name}")
        if rs is None:
            rs = await self.client.get(REPLICASETS, name, ns)
        ref = pc.controller_of(rs)
        if ref is not None and ref.get("uid") == d["metadata"]["uid"] and \
                du.equal_ignore_hash(d["spec"].get("template"), rs["spec"].get("template")):
            return rs
        status = d.setdefault("status", {})
        status["collisionCount"] = (status.get("collisionCount") or 0) + 1
        await self.write_status(d)
        raise StatusError(409, "AlreadyExists",
                          f'replicasets.apps "{name}" already exists')

    # -- scaling ----------------------------------------------------------------------------------
    async def scale_rs(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        size_changes = du.replicas(rs) != new_scale
        maximum = du.replicas(d) + du.max_surge(d)
        if not size_changes and not du.replicas_annotations_need_update(
                rs, du.replicas(d), maximum):
            return False, rs
        old_scale = du.replicas(rs)
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = new_scale
        du.set_replicas_annotations(body["metadata"].setdefault("annotations", {}),
                                    du.replicas(d), maximum)
        updated = await self.client.update(REPLICASETS, body)
        if size_changes:
            how = "up" if old_scale < new_scale else "down"
            self.recorder.record(_owner(d), "Normal", "ScalingReplicaSet",
                                 f"Scaled {how} replica set {rs['metadata']['name']} from "
                                 f"{old_scale} to {new_scale}")
        return size_changes, updated

    async def scale_rs_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if du.replicas(rs) == new_scale:
            return False, rs
        return await self.scale_rs(rs, new_scale, d)

    async def scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Scaling event or paused Deployment: resize, proportionally during a rollout."""
        target = du.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if du.replicas(target) != du.replicas(d):
                await self.scale_rs_and_record(target, du.replicas(d), d)
            return
        if du.is_saturated(d, new_rs):
            for old in du.active(old_rss):
                await self.scale_rs_and_record(old, 0, d)
            return
        if not du.is_rolling(d):
            return
        all_rss = du.active([*old_rss, new_rs])
        allowed = du.replicas(d) + du.max_surge(d) if du.replicas(d) > 0 else 0
        to_add = allowed - du.sum_spec(all_rss)
        if to_add > 0:
            all_rss = du.by_size_newer(all_rss)
        elif to_add < 0:
            all_rss = du.by_size_older(all_rss)
        added = 0
        sizes: dict[str, int] = {}
        for rs in all_rss:
            if to_add != 0:
                share = du.rs_proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = du.replicas(rs) + share
                added += share
            else:
                sizes[rs["metadata"]["name"]] = du.replicas(rs)
        for i, rs in enumerate(all_rss):
            name = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[name] = max(sizes[name] + to_add - added, 0)
            await self.scale_rs(rs, sizes[name], d)

    # -- sync for scaling and paused Deployments ----------------------------------------------------
    async def sync_scaling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self.get_all_rss_and_sync_revision(d, rs_list, False)
        await self.scale(d, new_rs, old_rss)
        if d["spec"].get("paused"):
            await self.cleanup(old_rss, d)
        await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None,
                                     d: Obj) -> None:
        status = ds.calculate_status(all_rss, new_rs, d, self.wall())
        if ds.same_status(d.get("status") or {}, status):
            return
        d["status"] = status
        await self.write_status(d)

    async def is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self.get_all_rss_and_sync_revision(d, rs_list, False)
        for rs in du.active([*old_rss, new_rs]):
            try:
                desired = int(du.annotations(rs)[du.DESIRED_REPLICAS])
            except (KeyError, ValueError):
                continue
            if desired != du.replicas(d):
                return True
        return False

    async def cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """Delete the oldest ReplicaSets beyond revisionHistoryLimit that have scaled to 0."""
        if not du.has_revision_history_limit(d):
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        diff = len(alive) - d["spec"]["revisionHistoryLimit"]
        if diff <= 0:
            return
        for rs in du.by_revision(alive)[:diff]:
            meta = rs["metadata"]
            if du.status_of(rs, "replicas") != 0 or du.replicas(rs) != 0 or \
                    meta.get("generation", 0) > du.status_of(rs, "observedGeneration"):
                continue
            try:
                await self.client.delete(REPLICASETS, meta["name"], meta.get("namespace"))
            except StatusError as e:
                if e.code != 404:
                    raise
