"""The API objects a node agent reads on behalf of its pods: ConfigMaps and Secrets (volumes and
environment variables), Services (service link variables) and service account tokens
(projected volumes).

Kube's kubelet watches each referenced ConfigMap and Secret on its own (one watch per object,
`configMapAndSecretChangeDetectionStrategy: Watch`). Here one informer per kind watches the
whole cluster instead: three watch connections in all, however many pods and namespaces the
node has, where per-object watches would each hold a connection of the client's pool and a
node with a hundred pods could starve the pod workers' own requests. The price is caching every
ConfigMap and Secret in memory, which a pocketkube-sized cluster affords. Notifications stay
fine-grained: `on_change` callbacks fire only for objects some caller has asked for
(configmap()/secret()), including one that did not exist when it was asked for and appears
later, so a pod waiting for its ConfigMap starts as soon as it is created.

A cache miss is confirmed with a GET (the watch may lag a ConfigMap created just before its
pod). When the credentials cannot list a kind cluster-wide (a bearer token bound to a narrow
role), reads fall back to GETs and changes are picked up by the pod workers' periodic refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pocketkube.api import errors
from pocketkube.client.informer import Informer
from pocketkube.client.rest import ApiClient, resource

log = logging.getLogger("pocketkube.kubelet.objects")

Obj = dict[str, Any]
ChangeCallback = Callable[[str, str, str], None]

# How long a read waits for an informer's first list before asking the API directly.
SYNC_WAIT = 5.0


class ObjectSource:
    def __init__(self, client: ApiClient, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._resources = {"ConfigMap": resource("", "configmaps"),
                           "Secret": resource("", "secrets")}
        self._informers = {kind: Informer(client, r) for kind, r in self._resources.items()}
        self._services = Informer(client, resource("", "services"))
        self._callbacks: list[ChangeCallback] = []
        self._wanted: set[tuple[str, str, str]] = set()
        self._gave_up: set[str] = set()  # kinds read by GET because the list never synced
        for kind, inf in self._informers.items():
            inf.on(add=lambda o, k=kind: self._changed(k, o),
                   update=lambda _old, new, k=kind: self._changed(k, new),
                   delete=lambda o, k=kind: self._changed(k, o))

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the watches; returns once they have listed (or after SYNC_WAIT, reads then
        fall back to GETs until they do)."""
        informers = [*self._informers.values(), self._services]
        for inf in informers:
            inf.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)),
                                   SYNC_WAIT)

    async def close(self) -> None:
        for inf in [*self._informers.values(), self._services]:
            await inf.stop()

    def on_change(self, callback: ChangeCallback) -> None:
        """callback(kind, namespace, name), kind "ConfigMap" or "Secret", for every add,
        update or delete of an object that was asked for. Called on the event loop; it must
        not block."""
        self._callbacks.append(callback)

    def _changed(self, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if key not in self._wanted:
            return
        for cb in list(self._callbacks):
            try:
                cb(*key)
            except Exception:
                log.exception("object change callback failed for %s %s/%s", *key)

    # -- reads ---------------------------------------------------------------------------------
    async def configmap(self, ns: str, name: str) -> Obj | None:
        """The ConfigMap, or None when it does not exist."""
        return await self._get("ConfigMap", ns, name)

    async def secret(self, ns: str, name: str) -> Obj | None:
        """The Secret (data base64-encoded, as served), or None when it does not exist."""
        return await self._get("Secret", ns, name)

    async def _get(self, kind: str, ns: str, name: str) -> Obj | None:
        self._wanted.add((kind, ns, name))
        inf = self._informers[kind]
        if await self._synced(kind, inf):
            obj = inf.get(f"{ns}/{name}")
            if obj is not None:
                return obj
        try:
            return await self.client.get(self._resources[kind], name, ns)
        except errors.StatusError as e:
            if e.code == 404:
                return None
            raise

    async def _synced(self, kind: str, inf: Informer) -> bool:
        if inf.synced.is_set():
            self._gave_up.discard(kind)
            return True
        if kind in self._gave_up:
            return False
        try:
            await asyncio.wait_for(inf.synced.wait(), SYNC_WAIT)
            return True
        except TimeoutError:
            log.warning("%s watch has not listed after %.0fs; reading with GETs", kind,
                        SYNC_WAIT)
            self._gave_up.add(kind)
            return False

    async def services(self, ns: str) -> list[Obj]:
        """The Services that give a pod in `ns` link variables: those of `ns` and the
        `kubernetes` Service of `default` (envvars.service_env picks among them)."""
        if not await self._synced("Service", self._services):
            items = (await self.client.list(self._services.resource, ns)).get("items") or []
            if ns != "default":
                with contextlib.suppress(errors.StatusError):
                    items.append(await self.client.get(self._services.resource, "kubernetes",
                                                       "default"))
            return items
        out = []
        for svc in self._services.list():
            meta = svc.get("metadata") or {}
            if meta.get("namespace") == ns or (meta.get("namespace") == "default"
                                               and meta.get("name") == "kubernetes"):
                out.append(svc)
        return out

    # -- tokens --------------------------------------------------------------------------------
    async def token(self, ns: str, service_account: str, *, audiences: list[str],
                    expiration_seconds: int, pod_name: str, pod_uid: str) -> Obj:
        """A TokenRequest for the service account, bound to the pod (POST
        serviceaccounts/<name>/token); returns the answered TokenRequest."""
        body: Obj = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"name": service_account, "namespace": ns},
            "spec": {"expirationSeconds": expiration_seconds,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name,
                                        "uid": pod_uid}},
        }
        if audiences:
            body["spec"]["audiences"] = audiences
        return await self.client.create(resource("", "serviceaccounts"), body, ns,
                                        subresource="token", name=service_account)
