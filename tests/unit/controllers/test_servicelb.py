"""ServiceLB: LoadBalancer Services get the eligible nodes' addresses as ingress, follow nodes
as they come and go, honour externalTrafficPolicy Local and loadBalancerClass, and are cleaned
up (status, finalizer) when they stop wanting a load balancer — with kube's events."""

from __future__ import annotations

from typing import Any

import pytest

from pocketkube.api.errors import StatusError
from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.servicelb import (
    FINALIZER,
    NODES,
    SERVICES,
    SLICES,
    ServiceLBController,
    eligible,
    ingress_ips,
    ready_endpoint_nodes,
)
from tests.unit.controllers.informing_fakeapi import FakeApi, drain
from tests.unit.controllers.nodes_support import Recorder, node_body


def node(name: str, ip: str = "", ready: str | None = "True", external: str = "",
         labels: dict | None = None, taints: list | None = None) -> dict:
    n = node_body(name, ready, taints=taints or [])
    n["metadata"]["labels"] = labels or {}
    addrs = [{"type": "InternalIP", "address": ip}] if ip else []
    if external:
        addrs.append({"type": "ExternalIP", "address": external})
    n["status"]["addresses"] = addrs + [{"type": "Hostname", "address": name}]
    return n


def service(name: str = "web", type_: str = "LoadBalancer", **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"type": type_, "ports": [{"port": 80, "nodePort": 30080}],
                     "ipFamilies": ["IPv4"], **spec},
            "status": {"loadBalancer": {}}}


# -- pure functions -----------------------------------------------------------------------------
def test_eligible_nodes_are_ready_not_excluded_and_not_being_removed():
    assert eligible(node("a", "10.0.0.1"))
    assert not eligible(node("a", "10.0.0.1", ready="False"))
    assert not eligible(node("a", "10.0.0.1", ready="Unknown"))
    assert not eligible(node("a", "10.0.0.1", ready=None))  # no conditions: no information
    assert not eligible(node("a", "10.0.0.1", labels={
        "node.kubernetes.io/exclude-from-external-load-balancers": ""}))
    assert not eligible(node("a", "10.0.0.1", taints=[
        {"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]))


def test_ingress_ips_sorted_internal_unless_some_node_has_an_external_ip():
    nodes = [node("b", "10.0.0.2"), node("a", "10.0.0.10"), node("c", "10.0.0.3", ready="False")]
    assert ingress_ips(service(), nodes) == ["10.0.0.10", "10.0.0.2"]
    nodes.append(node("d", "10.0.0.4", external="192.0.2.4"))
    assert ingress_ips(service(), nodes) == ["192.0.2.4"]


def test_ingress_ips_follow_the_service_ip_families_in_order():
    nodes = [node("a", "10.0.0.1"), node("b", "fd00::2")]
    assert ingress_ips(service(), nodes) == ["10.0.0.1"]
    assert ingress_ips(service(ipFamilies=["IPv6", "IPv4"]), nodes) == ["fd00::2", "10.0.0.1"]
    assert ingress_ips(service(ipFamilies=["IPv6"]), nodes) == ["fd00::2"]


def test_local_policy_keeps_only_nodes_with_a_ready_pod_endpoint():
    slices = [{"endpoints": [
        {"nodeName": "a", "conditions": {"ready": True}, "targetRef": {"kind": "Pod"}},
        {"nodeName": "b", "conditions": {"ready": False}, "targetRef": {"kind": "Pod"}},
        {"nodeName": "c", "conditions": {"ready": True}},  # not a pod
    ]}]
    local = ready_endpoint_nodes(slices)
    assert local == {"a"}
    nodes = [node("a", "10.0.0.1"), node("b", "10.0.0.2"), node("c", "10.0.0.3")]
    assert ingress_ips(service(), nodes, local) == ["10.0.0.1"]


# -- the controller over an in-memory API -------------------------------------------------------
@pytest.fixture
def env():
    api = FakeApi()
    informers = InformerFactory(api)
    api.informers = informers
    rec = Recorder()
    ctl = ServiceLBController(api, informers, recorder=rec)  # type: ignore[arg-type]
    return api, ctl, rec


def ips(api: FakeApi, name: str = "web") -> list[str]:
    svc = api.find(SERVICES, name, "ns")
    ingress = svc["status"]["loadBalancer"].get("ingress") or []
    assert all(i["ipMode"] == "VIP" for i in ingress)
    return [i["ip"] for i in ingress]


async def test_load_balancer_gets_every_ready_node_and_kube_events(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(NODES, node("sim-1", "10.250.0.2"))
    await api.create(NODES, node("sim-2", "10.250.0.3", ready="False"))
    await api.create(SERVICES, service())
    await drain(ctl)
    assert ips(api) == ["10.250.0.1", "10.250.0.2"]
    assert api.find(SERVICES, "web", "ns")["metadata"]["finalizers"] == [FINALIZER]
    assert rec.events == [
        ("web", "Normal", "EnsuringLoadBalancer", "Ensuring load balancer"),
        ("web", "Normal", "EnsuredLoadBalancer", "Ensured load balancer")]
    # Nothing to do: a second sync writes nothing and records nothing.
    calls = len(api.calls)
    ctl.queue.add("ns/web")
    await drain(ctl)
    assert len(api.calls) == calls and len(rec.events) == 2


async def test_nodes_coming_and_going_update_the_addresses(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    await drain(ctl)
    await api.create(NODES, node("sim-1", "10.250.0.2"))
    await drain(ctl)
    assert ips(api) == ["10.250.0.1", "10.250.0.2"]
    assert rec.events[-1] == ("web", "Normal", "UpdatedLoadBalancer",
                              "Updated LoadBalancer with new IPs: [10.250.0.1] -> "
                              "[10.250.0.1 10.250.0.2]")
    not_ready = node("sim-0", "10.250.0.1", ready="False")
    not_ready["metadata"]["resourceVersion"] = api.find(NODES, "sim-0")["metadata"][
        "resourceVersion"]
    await api.update(NODES, not_ready, subresource="status")
    await drain(ctl)
    assert ips(api) == ["10.250.0.2"]
    await api.delete(NODES, "sim-1")
    await drain(ctl)
    assert ips(api) == []
    assert rec.events[-1] == ("web", "Warning", "UnAvailableLoadBalancer",
                              "There are no available nodes for LoadBalancer")


async def test_heartbeats_alone_do_not_resync_services(env):
    api, ctl, _ = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    await drain(ctl)
    cur = api.find(NODES, "sim-0")
    beat = node_body("sim-0", heartbeat="2024-01-01T00:01:00Z")
    beat["metadata"].update(labels={}, resourceVersion=cur["metadata"]["resourceVersion"])
    beat["status"]["addresses"] = cur["status"]["addresses"]
    beat["spec"] = cur["spec"]
    await api.update(NODES, beat, subresource="status")
    assert len(ctl.queue) == 0


async def test_other_services_and_other_classes_are_left_alone(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service("plain", "ClusterIP"))
    await api.create(SERVICES, service("np", "NodePort"))
    await api.create(SERVICES, service("metal", loadBalancerClass="example.com/lb"))
    await drain(ctl)
    for name in ("plain", "np", "metal"):
        svc = api.find(SERVICES, name, "ns")
        assert svc["status"] == {"loadBalancer": {}} and not svc["metadata"].get("finalizers")
    assert rec.events == []


async def test_a_service_that_stops_being_a_load_balancer_is_cleaned_up(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    await drain(ctl)
    cur = api.find(SERVICES, "web", "ns")
    await api.patch(SERVICES, "web", {"spec": {"type": "ClusterIP"}}, "ns")
    await drain(ctl)
    svc = api.find(SERVICES, "web", "ns")
    assert svc["status"]["loadBalancer"] == {} and not svc["metadata"].get("finalizers")
    assert rec.reasons()[2:] == ["Type", "DeletingLoadBalancer", "DeletedLoadBalancer"]
    assert rec.events[-3][3] == "LoadBalancer -> ClusterIP"
    assert cur["metadata"]["finalizers"] == [FINALIZER]
    # And back again: ensured anew.
    await api.patch(SERVICES, "web", {"spec": {"type": "LoadBalancer"}}, "ns")
    await drain(ctl)
    assert ips(api) == ["10.250.0.1"]
    assert rec.reasons()[-3:] == ["Type", "EnsuringLoadBalancer", "EnsuredLoadBalancer"]


async def test_deleting_a_load_balancer_service_releases_its_finalizer(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    await drain(ctl)
    await api.delete(SERVICES, "web", "ns")
    assert api.find(SERVICES, "web", "ns")["metadata"]["deletionTimestamp"]
    await drain(ctl)
    assert api.find(SERVICES, "web", "ns") is None
    assert rec.reasons()[-2:] == ["DeletingLoadBalancer", "DeletedLoadBalancer"]


async def test_spec_changes_ensure_again_and_status_writes_do_not(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    await drain(ctl)
    assert len(rec.events) == 2  # our own status and finalizer writes did not ensure again
    await api.patch(SERVICES, "web", {"spec": {"ports": [{"port": 81, "nodePort": 30081}]}},
                    "ns")
    await drain(ctl)
    assert rec.reasons()[2:] == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]


async def test_local_traffic_policy_follows_endpoint_slices(env):
    api, ctl, _ = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(NODES, node("sim-1", "10.250.0.2"))
    await api.create(SERVICES, service(externalTrafficPolicy="Local"))
    await drain(ctl)
    assert ips(api) == []
    await api.create(SLICES, {
        "metadata": {"name": "web-abc", "namespace": "ns",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "sim-1",
                       "conditions": {"ready": True},
                       "targetRef": {"kind": "Pod", "name": "p", "namespace": "ns"}}]})
    await drain(ctl)
    assert ips(api) == ["10.250.0.2"]


async def test_a_failed_write_is_retried_with_the_ensure_events(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    real_patch = api.patch
    failures = [1]

    async def flaky(r, name, patch, namespace=None, **kw):
        if kw.get("subresource") == "status" and failures:
            failures.pop()
            raise StatusError(500, "InternalError", "boom")
        return await real_patch(r, name, patch, namespace, **kw)

    api.patch = flaky  # type: ignore[method-assign]
    with pytest.raises(Exception, match="boom"):
        await drain(ctl)
    ctl.queue.add("ns/web")
    await drain(ctl)
    assert ips(api) == ["10.250.0.1"]
    assert rec.reasons() == ["EnsuringLoadBalancer", "EnsuringLoadBalancer",
                             "EnsuredLoadBalancer"]


async def test_a_cache_behind_our_own_writes_does_not_write_or_report_them_again(env):
    api, ctl, rec = env
    await api.create(NODES, node("sim-0", "10.250.0.1"))
    await api.create(SERVICES, service())
    held: list[tuple] = []
    deliver = api._notify
    api._notify = lambda r, obj, deleted=False: held.append((r, obj, deleted))  # watch lags
    await drain(ctl)
    api._notify = deliver
    assert [c[0] for c in api.calls if c[1] == "services"] == ["create", "patch",
                                                               "patch/status"]
    for r, obj, deleted in held:  # the watch events arrive one by one, each synced at once
        deliver(r, obj, deleted)
        await drain(ctl)
    assert [c[0] for c in api.calls if c[1] == "services"] == ["create", "patch",
                                                               "patch/status"]
    assert rec.reasons() == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    assert ips(api) == ["10.250.0.1"]


async def test_no_nodes_warns_when_ensuring_not_on_every_sync(env):
    api, ctl, rec = env
    await api.create(SERVICES, service())
    await drain(ctl)
    ctl.queue.add("ns/web")
    await drain(ctl)
    assert rec.reasons() == ["EnsuringLoadBalancer", "UnAvailableLoadBalancer",
                             "EnsuredLoadBalancer"]
    assert ips(api) == []
