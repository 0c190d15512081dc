"""The registry: one Store per stored resource, each with its kind's strategy, over one backend
and one watch cache. Also the admission that spans resources (NamespaceLifecycle) and the
bootstrap objects every cluster starts with."""

from __future__ import annotations

import logging
from typing import Any

from pocketkube.api import errors
from pocketkube.api.resources import TABLE, Resource, ResourceTable
from pocketkube.config import CLUSTER_CONFIG
from pocketkube.registry.codec import decode
from pocketkube.registry.converting import ConvertingStore
from pocketkube.registry.priority import system_classes
from pocketkube.registry.store import Store
from pocketkube.registry.strategy import Context, Strategy
from pocketkube.storage.cacher import WatchCache
from pocketkube.storage.interface import Backend

log = logging.getLogger("pocketkube.apiserver.registry")

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _strategy_class(r: Resource) -> type[Strategy]:
    # Imported here: each module registers the kinds whose behaviour differs from the default.
    from pocketkube.registry import STRATEGIES

    return STRATEGIES.get((r.group, r.plural), Strategy)


class Registry:
    def __init__(self, backend: Backend, service_cidr: str = "10.96.0.0/12",
                 table: ResourceTable = TABLE) -> None:
        self.backend = backend
        self.table = table
        self.service_cidr = service_cidr
        self.cache = WatchCache(backend, decode)
        self.stores: dict[tuple[str, str], Store] = {}
        self._converting: dict[tuple[str, str, str], ConvertingStore] = {}
        for r in table.resources:
            if r.stored and not r.storage_version:
                self.stores[(r.group, r.plural)] = Store(r, _strategy_class(r)(r, self), self)

    def store(self, group: str, plural: str) -> Store:
        return self.stores[(group, plural)]

    def store_for(self, r: Resource) -> Store | ConvertingStore | None:
        store = self.stores.get((r.group, r.plural))
        if store is None or store.resource.version == r.version:
            return store
        key = (r.group, r.version, r.plural)
        if key not in self._converting:
            self._converting[key] = ConvertingStore(r, store)
        return self._converting[key]

    async def start(self) -> None:
        await self.backend.start()
        await self.cache.start()
        for s in self.stores.values():
            await s.strategy.started()

    async def close(self) -> None:
        await self.cache.close()
        await self.backend.close()

    # -- admission spanning resources -----------------------------------------------------------
    async def admit_namespace(self, r: Resource, ns: str, name: str) -> None:
        """NamespaceLifecycle: no new content in a missing or terminating namespace."""
        nss = self.store("", "namespaces")
        obj = nss.cached(None, ns)
        if obj is None:
            # The cache may trail a namespace created a moment ago: ask the store.
            try:
                obj = await nss.get(None, ns)
            except errors.StatusError:
                raise errors.not_found("namespaces", ns) from None
        if (obj.get("status") or {}).get("phase") == "Terminating" or (
                obj["metadata"].get("deletionTimestamp")):
            raise errors.forbidden(
                f'{errors.qualified(r.plural, r.group)} "{name}" is forbidden: unable to create '
                f"new content in namespace {ns} because it is being terminated")

    # -- bootstrap ------------------------------------------------------------------------------
    async def bootstrap(self, address: str = "127.0.0.1", port: int = 6443,
                        cluster_cidr: str = "") -> None:
        """Objects every cluster has: the system namespaces, the `kubernetes` Service with
        its Endpoints and EndpointSlice pointing at this API server, and the cluster's address
        ranges in kube-system/pocketkube-config, which node agents joining from other machines
        read (as `kubeadm join` reads kubeadm-config)."""
        ctx = Context(field_manager="kube-apiserver")
        nss = self.store("", "namespaces")
        for ns in BOOTSTRAP_NAMESPACES:
            await self.ensure(nss, None, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": ns}}, ctx)
        svc: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "sessionAffinity": "None",
                     "clusterIP": self.first_service_ip(),
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": port}]},
        }
        await self.ensure(self.store("", "services"), "default", svc, ctx)
        labels = {"endpointslice.kubernetes.io/skip-mirror": "true"}
        ep = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
              "subsets": [{"addresses": [{"ip": address}],
                           "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
        await self.upsert(self.store("", "endpoints"), "default", ep, ctx)
        eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "kubernetes", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "kubernetes"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
               "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
        await self.upsert(self.store("discovery.k8s.io", "endpointslices"), "default", eps, ctx)
        data = {"serviceSubnet": self.service_cidr, "clusterDomain": "cluster.local"}
        if cluster_cidr:
            data["podSubnet"] = cluster_cidr
        config = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": CLUSTER_CONFIG, "namespace": "kube-system",
                               "labels": {}},
                  "data": data}
        await self.upsert(self.store("", "configmaps"), "kube-system", config, ctx)
        for pc in system_classes():
            await self.ensure(self.store("scheduling.k8s.io", "priorityclasses"), None, pc, ctx)

    async def upsert(self, store: Store, ns: str | None, obj: dict[str, Any],
                     ctx: Context) -> None:
        """Create, or replace when it differs (this server's address may have changed)."""
        name = obj["metadata"]["name"]
        try:
            cur = await store.get(ns, name)
        except errors.StatusError:
            await self.ensure(store, ns, obj, ctx)
            return
        new = {**cur, **{k: v for k, v in obj.items() if k != "metadata"}}
        new["metadata"] = {**cur["metadata"], "labels": obj["metadata"].get("labels", {})}
        if new != cur:
            await store.update(ns, name, new, ctx)

    async def ensure(self, store: Store, ns: str | None, obj: dict[str, Any],
                     ctx: Context) -> None:
        name = obj["metadata"]["name"]
        if await store.backend.get(store.key(ns, name)) is None:
            try:
                await store.create(ns, obj, ctx)
                log.info("created %s %s", store.resource.kind, name)
            except errors.StatusError as e:
                if e.reason != "AlreadyExists":
                    raise

    def first_service_ip(self) -> str:
        import ipaddress

        return str(ipaddress.ip_network(self.service_cidr, strict=False)[1])
