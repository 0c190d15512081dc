"""Per-namespace defaults every Kubernetes namespace has: the `default` ServiceAccount (kube's
serviceaccounts controller) and the `kube-root-ca.crt` ConfigMap holding the cluster CA (the
root-ca-cert-publisher), recreated whenever they are deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import resource
from pocketkube.controllers.base import Controller, InformerFactory

NAMESPACES = resource("", "namespaces")
SERVICE_ACCOUNTS = resource("", "serviceaccounts")
CONFIGMAPS = resource("", "configmaps")
ROOT_CA = "kube-root-ca.crt"


def _active(ns: dict[str, Any] | None) -> bool:
    return ns is not None and not ns["metadata"].get("deletionTimestamp") and \
        (ns.get("status") or {}).get("phase", "Active") == "Active"


class ServiceAccountsController(Controller):
    name = "serviceaccount"

    def __init__(self, client: Any, informers: InformerFactory, ca_file: Path,
                 clock: Any = None) -> None:
        super().__init__(client, informers, clock)
        self.ca = ca_file.read_text()
        self.namespaces = informers.informer(NAMESPACES)
        self.accounts = informers.informer(SERVICE_ACCOUNTS)
        self.configmaps = informers.informer(CONFIGMAPS)
        self.namespaces.on(add=self.enqueue, update=lambda old, new: self.enqueue(new))
        for inf in (self.accounts, self.configmaps):
            inf.on(delete=self._owned_deleted, update=lambda old, new: self._owned_changed(new))

    def _owned_deleted(self, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] in ("default", ROOT_CA):
            self.queue.add(obj["metadata"]["namespace"])

    def _owned_changed(self, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == ROOT_CA:
            self.queue.add(obj["metadata"]["namespace"])

    async def sync(self, key: str) -> None:
        if not _active(self.namespaces.get(key)):
            return
        if self.accounts.get(f"{key}/default") is None:
            await self._create(SERVICE_ACCOUNTS, key, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": key}})
        cm = self.configmaps.get(f"{key}/{ROOT_CA}")
        want = {"ca.crt": self.ca}
        if cm is None:
            await self._create(CONFIGMAPS, key, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA, "namespace": key,
                             "annotations": {"kubernetes.io/description": (
                                 "Contains a CA bundle that can be used to verify the "
                                 "kube-apiserver when using internal endpoints such as the "
                                 "internal service IP or kubernetes.default.svc. No other usage "
                                 "is guaranteed across distributions of Kubernetes clusters.")}},
                "data": want})
        elif cm.get("data") != want:
            await self.client.patch(CONFIGMAPS, ROOT_CA, {"data": want}, key)

    async def _create(self, r: Any, ns: str, obj: dict[str, Any]) -> None:
        try:
            await self.client.create(r, obj, ns)
        except StatusError as e:
            # AlreadyExists: the cache was behind. Forbidden: the namespace began terminating.
            if e.code not in (409, 403):
                raise
