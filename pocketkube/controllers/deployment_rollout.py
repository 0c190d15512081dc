"""The two rollout strategies of a Deployment (kube's `pkg/controller/deployment/rolling.go`,
`recreate.go` and `progress.go`).

RollingUpdate scales the new ReplicaSet up as far as maxSurge allows, then the old ones down as
far as maxUnavailable allows (unhealthy replicas of old ReplicaSets first), one step per sync;
the ReplicaSets' status changes bring the next sync. Recreate scales every old ReplicaSet to
zero, waits until none of their pods is left, then scales the new one up.
"""

from __future__ import annotations

from typing import Any

from pocketkube.client.informer import key_of
from pocketkube.controllers import deployment_status as ds
from pocketkube.controllers import deployment_util as du
from pocketkube.controllers.deployment_sync import DeploymentSync

Obj = dict[str, Any]


def _check_down(rs: Obj, new_size: int, context: str) -> None:
    """Scaling an old ReplicaSet down never grows it (the sync fails and is retried)."""
    if new_size > du.replicas(rs):
        meta = rs["metadata"]
        raise ValueError(f"{context}got invalid request to scale down "
                         f"{meta.get('namespace')}/{meta['name']} {du.replicas(rs)} -> {new_size}")


class DeploymentRollout(DeploymentSync):
    queue: Any

    # -- RollingUpdate ----------------------------------------------------------------------------
    async def rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self.get_all_rss_and_sync_revision(d, rs_list, True)
        assert new_rs is not None
        all_rss: list[Obj] = [*old_rss, new_rs]
        scaled, new_rs = await self.reconcile_new_rs(all_rss, new_rs, d)
        all_rss = [*old_rss, new_rs]
        if scaled:
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if await self.reconcile_old_rss(all_rss, du.active(old_rss), new_rs, d):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if ds.deployment_complete(d, d.get("status") or {}):
            await self.cleanup(old_rss, d)
        await self.sync_rollout_status(all_rss, new_rs, d)

    async def reconcile_new_rs(self, all_rss: list[Obj], new_rs: Obj,
                               d: Obj) -> tuple[bool, Obj]:
        want = du.replicas(d)
        if du.replicas(new_rs) == want:
            return False, new_rs
        if du.replicas(new_rs) > want:
            return await self.scale_rs_and_record(new_rs, want, d)
        count = du.new_rs_new_replicas(d, all_rss, new_rs)
        return await self.scale_rs_and_record(new_rs, count, d)

    async def reconcile_old_rss(self, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj,
                                d: Obj) -> bool:
        if du.sum_spec(old_rss) == 0:
            return False
        min_available = du.replicas(d) - du.max_unavailable(d)
        new_unavailable = du.replicas(new_rs) - du.status_of(new_rs, "availableReplicas")
        max_scaled_down = du.sum_spec(all_rss) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old_rss, cleaned = await self.cleanup_unhealthy(old_rss, d, max_scaled_down)
        scaled = await self.scale_down_old_for_rolling([*old_rss, new_rs], old_rss, d)
        return cleaned + scaled > 0

    async def cleanup_unhealthy(self, old_rss: list[Obj], d: Obj,
                                max_cleanup: int) -> tuple[list[Obj], int]:
        """Scale down old ReplicaSets by their unavailable replicas first: removing those costs
        no availability."""
        old_rss = du.by_creation(old_rss)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            size, avail = du.replicas(rs), du.status_of(rs, "availableReplicas")
            if size == 0 or size == avail:
                continue
            down = min(max_cleanup - total, size - avail)
            # A status that still counts pods from before a scale-down is not a reason to grow.
            _check_down(rs, size - down, "when cleaning up unhealthy replicas, ")
            _, old_rss[i] = await self.scale_rs_and_record(rs, size - down, d)
            total += down
        return old_rss, total

    async def scale_down_old_for_rolling(self, all_rss: list[Obj], old_rss: list[Obj],
                                         d: Obj) -> int:
        min_available = du.replicas(d) - du.max_unavailable(d)
        available = du.sum_status(all_rss, "availableReplicas")
        if available <= min_available:
            return 0
        total, budget = 0, available - min_available
        for rs in du.by_creation(old_rss):
            if total >= budget:
                break
            if du.replicas(rs) == 0:
                continue
            down = min(du.replicas(rs), budget - total)
            _check_down(rs, du.replicas(rs) - down, "")
            await self.scale_rs_and_record(rs, du.replicas(rs) - down, d)
            total += down
        return total

    # -- Recreate ---------------------------------------------------------------------------------
    async def rollout_recreate(self, d: Obj, rs_list: list[Obj],
                               pod_map: dict[str, list[Obj]]) -> None:
        new_rs, old_rss = await self.get_all_rss_and_sync_revision(d, rs_list, False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled = False
        for rs in du.active(old_rss):
            did, _ = await self.scale_rs_and_record(rs, 0, d)
            scaled = scaled or did
        if scaled:
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if self.old_pods_running(new_rs, old_rss, pod_map):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, old_rss = await self.get_all_rss_and_sync_revision(d, rs_list, True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        await self.scale_rs_and_record(new_rs, du.replicas(d), d)
        if ds.deployment_complete(d, d.get("status") or {}):
            await self.cleanup(old_rss, d)
        await self.sync_rollout_status(all_rss, new_rs, d)

    @staticmethod
    def old_pods_running(new_rs: Obj | None, old_rss: list[Obj],
                         pod_map: dict[str, list[Obj]]) -> bool:
        if du.sum_status(list(old_rss), "replicas") > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for uid, pods in pod_map.items():
            if uid == new_uid:
                continue
            for pod in pods:
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False

    # -- status with progress -----------------------------------------------------------------------
    async def sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None,
                                  d: Obj) -> None:
        now = self.wall()
        status = ds.rollout_status(all_rss, new_rs, d, now)
        if ds.same_status(d.get("status") or {}, status):
            after = ds.stuck_requeue_after(d, status, now)
            if after is not None:
                key = key_of(d)
                if after == 0:
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.add_after(key, after)
            return
        d["status"] = status
        await self.write_status(d)
