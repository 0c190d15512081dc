"""Node IPAM: /24s of the cluster CIDR handed out in rotation, rebuilt from the nodes at
start, released when a node goes, and an event when the range is full."""

import pytest

from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.nodeipam import CidrSet, NodeIpamController
from tests.unit.controllers.informing_fakeapi import FakeApi, drain
from tests.unit.controllers.nodes_support import NODES, Recorder


def test_cidrset_allocates_in_order_and_rotates_past_released_ranges():
    s = CidrSet("10.244.0.0/16")
    assert s.size == 256
    assert [s.allocate() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24",
                                               "10.244.2.0/24"]
    s.release("10.244.1.0/24")
    assert s.allocate() == "10.244.3.0/24"


def test_cidrset_occupy_skips_taken_ranges_and_ignores_foreign_ones():
    s = CidrSet("10.244.0.0/16")
    assert s.occupy("10.244.0.0/24") and s.occupy("10.244.1.0/24")
    assert not s.occupy("192.168.0.0/24") and not s.occupy("10.244.0.0/25")
    assert not s.occupy("not a cidr")
    assert s.allocate() == "10.244.2.0/24"


def test_cidrset_runs_out_and_wraps_around():
    s = CidrSet("10.0.0.0/23")
    assert [s.allocate(), s.allocate(), s.allocate()] == ["10.0.0.0/24", "10.0.1.0/24", None]
    s.release("10.0.0.0/24")
    assert s.allocate() == "10.0.0.0/24"
    with pytest.raises(ValueError):
        CidrSet("10.0.0.0/24", mask=16)


@pytest.fixture
def env():
    api = FakeApi()
    informers = InformerFactory(api)
    api.informers = informers
    return api, informers


def cidr_of(api, name):
    spec = api.find(NODES, name)["spec"]
    assert spec.get("podCIDRs", [spec.get("podCIDR")]) == [spec.get("podCIDR")]
    return spec.get("podCIDR")


async def test_nodes_get_the_next_free_range(env):
    api, informers = env
    ipam = NodeIpamController(api, informers, "10.244.0.0/16", recorder=Recorder())
    for name in ("a", "b", "c"):
        await api.create(NODES, {"metadata": {"name": name}, "spec": {}})
    await drain(ipam)
    assert [cidr_of(api, n) for n in "abc"] == ["10.244.0.0/24", "10.244.1.0/24",
                                               "10.244.2.0/24"]
    await api.delete(NODES, "b")
    await api.create(NODES, {"metadata": {"name": "d"}, "spec": {}})
    await drain(ipam)
    assert cidr_of(api, "d") == "10.244.3.0/24"
    assert not ipam.cidrs.occupy("10.244.9.0/23")
    assert 1 not in ipam.cidrs.used  # b's range was released


async def test_allocations_are_rebuilt_from_existing_nodes(env):
    api, informers = env
    await api.create(NODES, {"metadata": {"name": "old"},
                             "spec": {"podCIDR": "10.244.0.0/24",
                                      "podCIDRs": ["10.244.0.0/24"]}})
    ipam = NodeIpamController(api, informers, "10.244.0.0/16", recorder=Recorder())
    informers.informer(NODES)._put(api.find(NODES, "old"))  # as the initial list would
    ipam.rebuild()
    await api.create(NODES, {"metadata": {"name": "new"}, "spec": {}})
    await drain(ipam)
    assert cidr_of(api, "new") == "10.244.1.0/24"
    assert cidr_of(api, "old") == "10.244.0.0/24"


async def test_a_full_range_records_an_event_and_leaves_the_node_alone(env):
    api, informers = env
    rec = Recorder()
    ipam = NodeIpamController(api, informers, "10.0.0.0/24", recorder=rec)
    await api.create(NODES, {"metadata": {"name": "a"}, "spec": {}})
    await api.create(NODES, {"metadata": {"name": "b"}, "spec": {}})
    await drain(ipam)
    assert cidr_of(api, "a") == "10.0.0.0/24"
    assert cidr_of(api, "b") is None
    assert rec.events == [("b", "Normal", "CIDRNotAvailable",
                           "Node b status is now: CIDRNotAvailable")]
