"""The node's heartbeat Lease (kube's pkg/kubelet/nodelease, client-go's lease controller):
`kube-node-lease/<node>` held by the node, renewed every 10 s with a 40 s duration, owned by
the Node so the garbage collector removes it with the node. The node lifecycle controller reads
renewTime to tell a live agent from a dead one without a node status write every 10 s.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock

log = logging.getLogger("pocketkube.kubelet.lease")

Obj = dict[str, Any]
LEASES = resource("coordination.k8s.io", "leases")
NAMESPACE = "kube-node-lease"
DURATION = 40  # leaseDurationSeconds (kube's nodeLeaseDurationSeconds)
RENEW_INTERVAL = 10.0  # a quarter of the duration, as the kubelet renews
RETRY_INTERVAL = 1.0  # after a failed renewal


def micro_time() -> str:
    """A metav1.MicroTime for now."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeLease:
    def __init__(self, client: ApiClient, node_name: str, *, clock: Clock,
                 duration: int = DURATION, renew_interval: float = RENEW_INTERVAL) -> None:
        self.client = client
        self.node_name = node_name
        self.clock = clock
        self.duration = duration
        self.renew_interval = renew_interval
        self.node_uid = ""  # set once the Node is registered: the lease's owner
        self.lease: Obj | None = None
        self.renewals = 0

    def _owner(self) -> list[Obj]:
        return [{"apiVersion": "v1", "kind": "Node", "name": self.node_name,
                 "uid": self.node_uid}]

    def _desired(self, base: Obj | None) -> Obj:
        lease = dict(base) if base else {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": NAMESPACE}}
        meta = dict(lease.get("metadata") or {})
        if self.node_uid and not any(o.get("uid") == self.node_uid
                                     for o in meta.get("ownerReferences") or []):
            meta["ownerReferences"] = self._owner()
        lease["metadata"] = meta
        lease["spec"] = {**(lease.get("spec") or {}), "holderIdentity": self.node_name,
                         "leaseDurationSeconds": self.duration, "renewTime": micro_time()}
        return lease

    async def renew(self) -> Obj:
        """Create the lease or move its renewTime to now; the lease as stored."""
        for _ in range(3):
            if self.lease is None:
                try:
                    self.lease = await self.client.get(LEASES, self.node_name, NAMESPACE)
                except StatusError as e:
                    if e.code != 404:
                        raise
                    self.lease = await self.client.create(LEASES, self._desired(None),
                                                          NAMESPACE)
                    self.renewals += 1
                    return self.lease
            try:
                self.lease = await self.client.update(LEASES, self._desired(self.lease))
            except StatusError as e:
                if e.code not in (404, 409):
                    raise
                # Someone else wrote it (or removed it): start again from what is stored.
                self.lease = None
                continue
            self.renewals += 1
            return self.lease
        raise RuntimeError(f"lease {NAMESPACE}/{self.node_name} kept changing under us")

    async def run(self) -> None:
        """Renew every renew_interval until cancelled; failures are retried sooner."""
        while True:
            delay = self.renew_interval
            try:
                await self.renew()
            except Exception as e:  # the API server may be restarting: keep trying
                log.warning("failed to renew lease %s/%s: %s", NAMESPACE, self.node_name, e)
                self.lease = None
                delay = min(RETRY_INTERVAL, self.renew_interval)
            await self.clock.sleep(delay)
