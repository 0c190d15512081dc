"""ObjectSource and the volumes it feeds against a real pocketkube server: a ConfigMap change
reaches a mounted volume within moments, and a projected volume (kube-api-access style) gets a
service account token for the pod with the right audience plus the cluster CA."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pocketkube.api import errors
from pocketkube.client.rest import ApiClient, ClientConfig, resource
from pocketkube.kubelet.objects import ObjectSource
from pocketkube.kubelet.volumes.manager import VolumeManager
from tests.support.cluster import Cluster

CONFIGMAPS = resource("", "configmaps")
NAMESPACES = resource("", "namespaces")
PODS = resource("", "pods")
SERVICE_ACCOUNTS = resource("", "serviceaccounts")
SERVICES = resource("", "services")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("objects-cluster"))
    c.start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    c = ApiClient(ClientConfig.from_data_dir(cluster.data_dir, cluster.url, "objects-test"))
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def source(client: ApiClient) -> AsyncIterator[ObjectSource]:
    s = ObjectSource(client, "node-a")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def namespace(client: ApiClient, name: str) -> str:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name}})
    return name


async def wait_for(client: ApiClient, r: object, ns: str, name: str,
                   timeout: float = 30.0) -> dict:
    """The object once it exists (list, then watch from the list's version)."""
    async def run() -> dict:
        lst = await client.list(r, ns, field_selector=f"metadata.name={name}")  # type: ignore[arg-type]
        if lst.get("items"):
            return lst["items"][0]
        async for type_, obj in client.watch(r, ns, lst["metadata"]["resourceVersion"],  # type: ignore[arg-type]
                                             field_selector=f"metadata.name={name}"):
            meta = obj.get("metadata") or {}
            # Checked here too: the watch is namespaced, but a server that leaked another
            # namespace's events must not end the wait early.
            if type_ in ("ADDED", "MODIFIED") and meta.get("namespace") == ns \
                    and meta.get("name") == name:
                return obj
        raise AssertionError(f"watch for {name} ended")

    return await asyncio.wait_for(run(), timeout)


async def next_change(changes: asyncio.Queue, expected: tuple[str, str, str],
                      earlier: set[tuple[str, str, str]]) -> None:
    """Wait for `expected`; a repeat of an object announced before may come first (the ADDED
    event of an object read by GET while the watch lagged)."""
    while True:
        got = await asyncio.wait_for(changes.get(), 10)
        if got == expected:
            earlier.add(got)
            return
        assert got in earlier, f"unexpected change {got}, waiting for {expected}"


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_configmap_change_refreshes_volume(client: ApiClient, source: ObjectSource,
                                                 tmp_path: Path) -> None:
    ns = await namespace(client, "objects-cm")
    await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg", "namespace": ns},
                                     "data": {"k": "v1"}})
    vm = VolumeManager(tmp_path / "pods", source, node_name="node-a", tmpfs=False)
    changes: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
    source.on_change(lambda *key: changes.put_nowait(key))
    pod = {"metadata": {"name": "p", "namespace": ns, "uid": "uid-cm"},
           "spec": {"containers": [{"name": "c"}],
                    "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                                {"name": "later", "configMap": {"name": "later",
                                                                "optional": True}}]}}
    dirs = await vm.setup(pod)
    assert (dirs["cfg"] / "k").read_text() == "v1"

    seen: set[tuple[str, str, str]] = set()
    await client.patch(CONFIGMAPS, "cfg", {"data": {"k": "v2"}}, ns)
    await next_change(changes, ("ConfigMap", ns, "cfg"), seen)
    await asyncio.gather(*vm._tasks)
    while (dirs["cfg"] / "k").read_text() != "v2":
        # That event was the lagging ADDED; the update's own event follows.
        await next_change(changes, ("ConfigMap", ns, "cfg"), seen)
        await asyncio.gather(*vm._tasks)

    # An object asked for before it existed is announced when it appears.
    await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "later", "namespace": ns},
                                     "data": {"x": "1"}})
    await next_change(changes, ("ConfigMap", ns, "later"), seen)
    await asyncio.gather(*vm._tasks)
    assert (dirs["later"] / "x").read_text() == "1"
    # Objects nobody asked for stay quiet.
    await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "unrelated", "namespace": ns}})
    await client.patch(CONFIGMAPS, "cfg", {"data": {"k": "v3"}}, ns)
    while not changes.empty():
        assert changes.get_nowait()[2] != "unrelated"
    await next_change(changes, ("ConfigMap", ns, "cfg"), seen)
    await vm.teardown("uid-cm")
    assert await source.configmap(ns, "absent") is None


async def test_services_for_a_namespace(client: ApiClient, source: ObjectSource) -> None:
    ns = await namespace(client, "objects-svc")
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": "web", "namespace": ns},
                                   "spec": {"ports": [{"port": 80}]}})
    await wait_for(client, SERVICES, "default", "kubernetes")
    svc = await wait_for(client, SERVICES, ns, "web")
    await asyncio.wait_for(_until_cached(source, ns, svc), 10)
    names = sorted((s["metadata"]["namespace"], s["metadata"]["name"])
                   for s in await source.services(ns))
    assert names == [("default", "kubernetes"), (ns, "web")]


async def _until_cached(source: ObjectSource, ns: str, svc: dict) -> None:
    done = asyncio.Event()
    key = f"{ns}/{svc['metadata']['name']}"
    source._services.on(add=lambda o: done.set() if f"{ns}/{o['metadata']['name']}" == key
                        else None)
    if source._services.get(key) is None:
        await done.wait()


async def test_projected_token_and_root_ca(cluster: Cluster, client: ApiClient,
                                           source: ObjectSource, tmp_path: Path) -> None:
    ns = await namespace(client, "objects-token")
    await wait_for(client, SERVICE_ACCOUNTS, ns, "default")
    root_ca = await wait_for(client, CONFIGMAPS, ns, "kube-root-ca.crt")
    pod = await client.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    # The projected volume ServiceAccount admission gives every pod, plus a second token for
    # another audience.
    pod["spec"]["volumes"] = [
        {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "vault", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "vault", "expirationSeconds": 600, "path": "vault-token"}}]}},
    ]
    vm = VolumeManager(tmp_path / "pods", source, node_name="node-a", tmpfs=False)
    try:
        dirs = await vm.setup(pod)
        access = dirs["kube-api-access-x7k2p"]
        assert (access / "ca.crt").read_text() == root_ca["data"]["ca.crt"]
        assert (access / "ca.crt").read_text() == (cluster.pki / "ca.crt").read_text()
        assert (access / "namespace").read_text() == ns
        token = (access / "token").read_text()
        claims = jwt_claims(token)
        assert claims["sub"] == f"system:serviceaccount:{ns}:default"
        assert claims["exp"] - claims["iat"] == 3607
        vault = jwt_claims((dirs["vault"] / "vault-token").read_text())
        assert vault["aud"] == ["vault"]
        assert vault["aud"] != claims["aud"]
        # The default-audience token authenticates to the API server; a forged one does not.
        assert await _whoami(cluster, access / "ca.crt", token) in (200, 403)
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert await _whoami(cluster, access / "ca.crt", forged) == 401
    finally:
        await vm.teardown(pod["metadata"]["uid"])


async def _whoami(cluster: Cluster, ca: Path, token: str) -> int:
    """The status of a namespaces list made with only the bearer token (403 would still mean
    authenticated; 401 means the token was refused)."""
    c = ApiClient(ClientConfig(cluster.url, ca_file=ca, token=token))
    try:
        await c.list(NAMESPACES)
        return 200
    except errors.StatusError as e:
        return e.code
    finally:
        await c.close()
