"""The node agent's Node and Lease against a real pocketkube server, seen through kubectl:
registration (Ready, capacity, allocatable, System Info), status writes only on change, the
heartbeat Lease, re-registration after a restart, and waiting for node IPAM's pod CIDR."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pocketkube.client.rest import ApiClient, ClientConfig, resource
from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet.nodestatus import NodeStatus
from tests.support.cluster import Cluster

LEASES = resource("coordination.k8s.io", "leases")
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("nodestatus"))
    c.start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    api = ApiClient(ClientConfig.from_data_dir(cluster.data_dir, cluster.url, "pocketkube-agent"))
    try:
        yield api
    finally:
        await api.close()


class SleepWatchingClock(FakeClock):
    """A FakeClock that lets a test wait until the loops under test are asleep on it."""

    def __init__(self) -> None:
        super().__init__()
        self.asleep = 0
        self._changed = asyncio.Condition()

    async def sleep(self, seconds: float) -> None:
        async with self._changed:
            self.asleep += 1
            self._changed.notify_all()
        try:
            await super().sleep(seconds)
        finally:
            self.asleep -= 1

    async def wait_asleep(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.asleep >= n)


def node_name() -> str:
    return f"agent-{os.getpid() % 10000}-{next(_names)}"


def make_status(client: ApiClient, name: str, tmp_path: Path, clock=None, **labels: str
                ) -> NodeStatus:  # fmt: skip
    return NodeStatus(client, name, runtime_version="runc://1.1.5", kubelet_port=10250,
                      node_ip="127.0.0.1", labels=labels, root=tmp_path / "agent",
                      clock=clock or FakeClock())


async def test_register_shows_a_ready_node(cluster, client, tmp_path):
    name = node_name()
    node = await make_status(client, name, tmp_path, **{"node-role.pocketkube.io/agent": ""}
                             ).register()
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert [c["type"] for c in node["status"]["conditions"]] == \
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    row = cluster.kubectl("get", "node", name, "--no-headers").stdout.split()
    assert row[0] == name and row[1] == "Ready" and row[-1] == "v1.32.0"
    wide = cluster.kubectl("get", "node", name, "-o", "wide", "--no-headers").stdout
    assert "127.0.0.1" in wide and "runc://1.1.5" in wide
    out = cluster.kubectl("describe", "node", name).stdout
    assert "kubernetes.io/hostname=" + name in out
    assert "node-role.pocketkube.io/agent=" in out
    assert f"cpu:                {os.cpu_count()}" in out
    assert "pods:               110" in out
    assert "Allocatable:" in out and "Capacity:" in out
    assert "System Info:" in out
    assert f"Lease:\n  HolderIdentity:  {name}" in out
    assert "Kubelet Version:            v1.32.0" in out
    assert "Container Runtime Version:  runc://1.1.5" in out
    assert "Operating System:           linux" in out
    assert "KubeletReady                 kubelet is posting ready status" in out
    assert "kubelet has sufficient memory available" in out
    capacity, allocatable = node["status"]["capacity"], node["status"]["allocatable"]
    mem = int(capacity["memory"].removesuffix("Ki"))
    assert allocatable["memory"] == f"{mem - 100 * 1024}Ki"
    assert capacity["hugepages-2Mi"] == "0" and allocatable["pods"] == "110"


async def test_status_is_written_only_on_change_or_when_due(client, tmp_path):
    clock = FakeClock()
    ns = make_status(client, node_name(), tmp_path, clock)
    node = await ns.register()
    ready = node["status"]["conditions"][-1]
    writes = ns.writes
    clock.advance(10)
    assert not await ns.update_status()
    ns.set_runtime_ready(False, "container runtime is down")
    assert await ns.update_status()
    cond = ns.node["status"]["conditions"][-1]
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("False", "KubeletNotReady", "container runtime is down")
    ns.set_runtime_ready(True)
    ns.set_pressure("MemoryPressure", True)
    assert await ns.update_status()
    conds = {c["type"]: c for c in ns.node["status"]["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert (conds["MemoryPressure"]["status"], conds["MemoryPressure"]["reason"]) == \
        ("True", "KubeletHasInsufficientMemory")
    # Nothing changed, but a minute passed: the heartbeat is written anyway.
    clock.advance(60)
    assert await ns.update_status()
    assert ns.writes == writes + 3
    assert ready["reason"] == "KubeletReady"


async def test_restart_reuses_the_node(cluster, client, tmp_path):
    name = node_name()
    first = await make_status(client, name, tmp_path).register()
    second = await make_status(client, name, tmp_path, tier="gold").register()
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert second["metadata"]["labels"]["tier"] == "gold"
    # Ready stayed True: its transition time is kept.
    assert second["status"]["conditions"][-1]["lastTransitionTime"] == \
        first["status"]["conditions"][-1]["lastTransitionTime"]
    labels = json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)[
        "metadata"]["labels"]
    assert labels["kubernetes.io/os"] == "linux" and labels["tier"] == "gold"


async def test_lease_is_owned_by_the_node_and_renewed(cluster, client, tmp_path):
    clock = SleepWatchingClock()
    name = node_name()
    ns = make_status(client, name, tmp_path, clock)
    node = await ns.register()
    run = asyncio.ensure_future(ns.run())
    await asyncio.wait_for(clock.wait_asleep(2), 30)  # the status and the lease loops
    try:
        seen: list[dict] = []
        async for _type, lease in client.watch(LEASES, "kube-node-lease", timeout=30,
                                               field_selector=f"metadata.name={name}"):
            seen.append(lease)
            if len(seen) == 1:
                assert ns.lease.renewals >= 1  # register() wrote the first one
                clock.advance(10)  # the next renewal is due
            else:
                break
    finally:
        run.cancel()
    first, renewed = seen[0], seen[-1]
    assert first["spec"]["holderIdentity"] == name
    assert first["spec"]["leaseDurationSeconds"] == 40
    assert first["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]
    assert renewed["spec"]["renewTime"] > first["spec"]["renewTime"]
    out = cluster.kubectl("get", "lease", "-n", "kube-node-lease", name, "-o",
                          "jsonpath={.spec.holderIdentity}").stdout
    assert out == name


async def test_wait_pod_cidr_returns_what_node_ipam_assigns(client, tmp_path):
    ns = make_status(client, node_name(), tmp_path)
    await ns.register()
    cidr = await asyncio.wait_for(ns.wait_pod_cidr(), 60)
    assert cidr.startswith("10.244.") and cidr.endswith("/24")
    assert ns.node is not None
