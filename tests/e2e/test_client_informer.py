"""The async client and informer against a real pocketkube server."""

import asyncio
from pathlib import Path

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.client.informer import Informer
from pocketkube.client.rest import ApiClient, ClientConfig, resource
from tests.support.cluster import Cluster

CM = resource("", "configmaps")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("client"))
    c.start()
    yield c
    c.close()


@pytest.fixture
async def client(cluster):
    c = ApiClient(ClientConfig.from_kubeconfig(Path(cluster.kubeconfig)))
    yield c
    await c.close()


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_crud_and_errors(client):
    await client.create(CM, cm("c1", a="1"), "default")
    got = await client.get(CM, "c1", "default")
    assert got["data"] == {"a": "1"}
    with pytest.raises(StatusError) as e:
        await client.create(CM, cm("c1"), "default")
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"
    patched = await client.patch(CM, "c1", {"data": {"b": "2"}}, "default")
    assert patched["data"] == {"a": "1", "b": "2"}
    await client.delete(CM, "c1", "default")
    with pytest.raises(StatusError) as e:
        await client.get(CM, "c1", "default")
    assert e.value.code == 404


async def test_informer_sees_adds_updates_deletes(client):
    inf = Informer(client, CM, "default", label_selector="inf=yes")
    seen: asyncio.Queue = asyncio.Queue()
    inf.on(add=lambda o: seen.put_nowait(("add", o["metadata"]["name"])),
           update=lambda old, new: seen.put_nowait(("update", new["metadata"]["name"])),
           delete=lambda o: seen.put_nowait(("delete", o["metadata"]["name"])))
    inf.add_index("value", lambda o: [(o.get("data") or {}).get("v", "")])
    inf.start()
    await inf.wait_synced()
    body = cm("i1", v="x")
    body["metadata"]["labels"] = {"inf": "yes"}
    await client.create(CM, body, "default")
    assert await asyncio.wait_for(seen.get(), 5) == ("add", "i1")
    await client.patch(CM, "i1", {"data": {"v": "y"}}, "default")
    assert await asyncio.wait_for(seen.get(), 5) == ("update", "i1")
    assert [o["metadata"]["name"] for o in inf.by_index("value", "y")] == ["i1"]
    assert inf.by_index("value", "x") == []
    await client.delete(CM, "i1", "default")
    assert await asyncio.wait_for(seen.get(), 5) == ("delete", "i1")
    assert inf.get("default/i1") is None
    await inf.stop()
