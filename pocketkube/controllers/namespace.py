"""The namespace controller: empties a namespace being deleted, then finalizes it
(kube's `pkg/controller/namespace/deletion`).

For a Terminating namespace holding the `kubernetes` finalizer it deletes every namespaced
resource in it (collection deletes, so pods get their graceful deletion), records progress in the
namespace's conditions, and once nothing is left removes the finalizer through
`namespaces/<name>/finalize`, at which point the API server deletes the namespace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.api.resources import TABLE, Resource
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
FINALIZER = "kubernetes"
RECHECK = 2.0  # seconds between checks while content is still going away

NAMESPACES = resource("", "namespaces")


def namespaced_resources() -> list[Resource]:
    """Every stored namespaced resource, once (the storage version)."""
    return [r for r in TABLE.resources
            if r.namespaced and r.stored and not r.storage_version and "list" in r.verbs]


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, client: Any, informers: InformerFactory, clock: Any = None) -> None:
        super().__init__(client, informers, clock)
        self.namespaces = informers.informer(NAMESPACES)
        self.namespaces.on(add=self.enqueue, update=lambda old, new: self.enqueue(new))

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        name = ns["metadata"]["name"]
        remaining: dict[str, int] = {}
        for r in namespaced_resources():
            try:
                left = await self._empty(r, name)
            except StatusError as e:
                if e.code in (404, 405):
                    continue
                raise
            if left:
                remaining[r.plural if not r.group else f"{r.plural}.{r.group}"] = left
        if remaining:
            await self._report(ns, remaining)
            self.queue.add_after(key, RECHECK)
            return
        spec_finalizers = [f for f in ns["spec"]["finalizers"] if f != FINALIZER]
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": ns["metadata"],
                "spec": {"finalizers": spec_finalizers}}
        try:
            await self.client.update(NAMESPACES, body, subresource="finalize")
        except StatusError as e:
            if e.code != 404:
                raise
        self.log.info("namespace %s finalized", name)

    async def _empty(self, r: Resource, ns: str) -> int:
        """Delete what is in `ns`; the number of objects still there."""
        lst = await self.client.list(r, ns)
        items = lst.get("items") or []
        for obj in items:
            if obj["metadata"].get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(r, obj["metadata"]["name"], ns,
                                         propagationPolicy="Background")
            except StatusError as e:
                if e.code != 404:
                    raise
        if not items:
            return 0
        return len((await self.client.list(r, ns)).get("items") or [])

    async def _report(self, ns: Obj, remaining: dict[str, int]) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        summary = ", ".join(f"{k} has {v} resource instances" for k, v in sorted(
            remaining.items()))
        conds = [{"type": "NamespaceContentRemaining", "status": "True",
                  "lastTransitionTime": now, "reason": "SomeResourcesRemain",
                  "message": f"Some resources are remaining: {summary}"}]
        status = {"phase": "Terminating", "conditions": conds}
        old = (ns.get("status") or {}).get("conditions") or []
        if [c.get("message") for c in old] == [conds[0]["message"]]:
            return
        try:
            await self.client.patch(NAMESPACES, ns["metadata"]["name"], {"status": status},
                                    subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise
