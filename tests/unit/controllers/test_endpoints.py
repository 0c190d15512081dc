"""The Endpoints controller: subsets grouped by port set, readiness, named ports, headless
services, truncation, the no-op check, and sync() against an in-memory API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pocketkube.controllers import endpoint_util as eu
from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.endpoints import (
    ENDPOINTS,
    PODS,
    SERVICES,
    EndpointsController,
    compute_subsets,
    endpoints_to_write,
    truncate,
)
from tests.unit.controllers.endpoints_fixtures import FakeApi, NoEvents, pod, svc

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ips(subsets: list[dict], field: str = "addresses") -> list[str]:
    return [a["ip"] for s in subsets for a in s.get(field) or []]


# --- subsets ----------------------------------------------------------------------------------


def test_ready_and_not_ready_pods_share_one_subset_per_port_set() -> None:
    subsets = compute_subsets(svc(), [pod("a", "10.0.0.2"), pod("b", "10.0.0.1"),
                                      pod("c", "10.0.0.3", ready=False)])
    assert subsets == [{
        "addresses": [
            {"ip": "10.0.0.1", "nodeName": "sim-0",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}},
            {"ip": "10.0.0.2", "nodeName": "sim-0",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [
            {"ip": "10.0.0.3", "nodeName": "sim-0",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_publish_not_ready_addresses_lists_every_pod_as_ready() -> None:
    s = svc(publishNotReadyAddresses=True)
    subsets = compute_subsets(s, [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False),
                                  pod("c", "10.0.0.3", terminating=True)])
    # Terminating pods too: kube's ShouldPodBeInEndpoints(pod, publishNotReadyAddresses).
    assert ips(subsets) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert ips(subsets, "notReadyAddresses") == []


def test_terminating_terminal_and_unaddressed_pods_are_left_out() -> None:
    pods = [pod("ok", "10.0.0.1"), pod("term", "10.0.0.2", terminating=True),
            pod("done", "10.0.0.3", phase="Succeeded"), pod("failed", "10.0.0.4", phase="Failed"),
            pod("pending", None, node="", phase="Pending")]
    assert ips(compute_subsets(svc(), pods)) == ["10.0.0.1"]


def test_named_target_port_resolves_per_pod_and_skips_pods_without_it() -> None:
    s = svc(ports=[{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    pods = [pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
            pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 9090}]),
            pod("c", "10.0.0.3", ports=[{"name": "http", "containerPort": 53,
                                         "protocol": "UDP"}]),
            pod("d", "10.0.0.4")]
    subsets = compute_subsets(s, pods)
    by_port = {s["ports"][0]["port"]: ips([s]) for s in subsets}
    assert by_port == {8080: ["10.0.0.1"], 9090: ["10.0.0.2"]}
    assert all(s["ports"][0]["name"] == "web" for s in subsets)


def test_sidecar_ports_resolve_but_plain_init_container_ports_do_not() -> None:
    s = svc(ports=[{"port": 80, "targetPort": "metrics", "protocol": "TCP"}])
    sidecar = pod("a", "10.0.0.1", initContainers=[
        {"name": "side", "image": "x", "restartPolicy": "Always",
         "ports": [{"name": "metrics", "containerPort": 9100}]}])
    init = pod("b", "10.0.0.2", initContainers=[
        {"name": "init", "image": "x", "ports": [{"name": "metrics", "containerPort": 9100}]}])
    assert [(ips([x]), x["ports"][0]["port"]) for x in compute_subsets(s, [sidecar, init])] == \
        [(["10.0.0.1"], 9100)]


def test_addresses_are_grouped_by_the_ports_they_serve() -> None:
    s = svc(ports=[{"name": "a", "port": 80, "targetPort": 80, "protocol": "TCP"},
                   {"name": "b", "port": 81, "targetPort": "extra", "protocol": "TCP"}])
    both = pod("both", "10.0.0.1", ports=[{"name": "extra", "containerPort": 9000}])
    one = pod("one", "10.0.0.2")
    subsets = compute_subsets(s, [both, one])
    got = sorted((tuple(ips([x])), tuple(p["port"] for p in x["ports"])) for x in subsets)
    # Port 80 is served by both pods, 9000 by one: two subsets.
    assert got == [(("10.0.0.1",), (9000,)), (("10.0.0.1", "10.0.0.2"), (80,))]


def test_headless_service_without_ports_gets_portless_subsets() -> None:
    s = svc(clusterIP="None", ports=[])
    assert compute_subsets(s, [pod("a", "10.0.0.1")]) == [{
        "addresses": [{"ip": "10.0.0.1", "nodeName": "sim-0", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}]}]
    # A service with a cluster IP and no ports serves nothing.
    assert compute_subsets(svc(ports=[]), [pod("a", "10.0.0.1")]) == []


def test_hostname_is_set_for_pods_in_the_service_subdomain() -> None:
    named = pod("a", "10.0.0.1", hostname="a", subdomain="web")
    other = pod("b", "10.0.0.2", hostname="b", subdomain="elsewhere")
    addrs = {a["ip"]: a for a in compute_subsets(svc(), [named, other])[0]["addresses"]}
    assert addrs["10.0.0.1"]["hostname"] == "a"
    assert "hostname" not in addrs["10.0.0.2"]


def test_truncation_keeps_ready_addresses_first() -> None:
    ready = [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(900)]
    not_ready = [{"ip": f"10.1.{i // 250}.{i % 250}"} for i in range(300)]
    subsets = [{"addresses": ready, "notReadyAddresses": not_ready, "ports": [{"port": 80}]}]
    assert truncate(subsets)
    assert len(subsets[0]["addresses"]) == 900
    assert len(subsets[0]["notReadyAddresses"]) == 100
    many = [{"addresses": [{"ip": str(i)} for i in range(1500)],
             "notReadyAddresses": [{"ip": "x"}]}]
    assert truncate(many)
    assert len(many[0]["addresses"]) == 1000 and "notReadyAddresses" not in many[0]
    assert not truncate([{"addresses": [{"ip": "1"}]}])


# --- the object to write ----------------------------------------------------------------------


def test_new_endpoints_carry_service_labels_and_trigger_time() -> None:
    s = svc(labels={"team": "a"})
    subsets = compute_subsets(s, [pod("a")])
    ep = endpoints_to_write(s, subsets, None, T0)
    assert ep is not None
    assert ep["metadata"] == {"name": "web", "namespace": "default", "labels": {"team": "a"},
                              "annotations": {eu.TRIGGER_TIME: "2025-01-01T00:00:00Z"}}
    assert ep["subsets"] == subsets


def test_unchanged_endpoints_are_not_written_again() -> None:
    s = svc(clusterIP="None")
    subsets = compute_subsets(s, [pod("a")])
    current = endpoints_to_write(s, subsets, None, T0)
    assert current["metadata"]["labels"] == {eu.HEADLESS: ""}
    current["metadata"]["resourceVersion"] = "5"
    assert endpoints_to_write(s, subsets, current, None) is None
    # A changed label is written, and the trigger annotation goes when there is no new trigger.
    relabelled = svc(clusterIP="None", labels={"x": "y"})
    new = endpoints_to_write(relabelled, subsets, current, None)
    assert new["metadata"]["labels"] == {"x": "y", eu.HEADLESS: ""}
    assert "annotations" not in new["metadata"]
    assert new["metadata"]["resourceVersion"] == "5"


def test_over_capacity_endpoints_are_truncated_and_annotated() -> None:
    pods = [pod(f"p{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(1001)]
    ep = endpoints_to_write(svc(), compute_subsets(svc(), pods), None, None)
    assert ep["metadata"]["annotations"] == {"endpoints.kubernetes.io/over-capacity": "truncated"}
    assert len(ips(ep["subsets"])) == 1000


def test_trigger_time_is_the_creation_then_the_earliest_new_change() -> None:
    tracker = eu.TriggerTimeTracker()
    s = svc()
    a = pod("a", ready_since="2025-01-01T00:10:00Z")
    assert tracker.compute(s, [a]) == T0  # first sync: the service's creation
    assert tracker.compute(s, [a]) is None  # nothing new since
    b = pod("b", ready_since="2025-01-01T00:20:00Z")
    a2 = pod("a", ready_since="2025-01-01T00:30:00Z")
    assert eu.format_time(tracker.compute(s, [a2, b])) == "2025-01-01T00:20:00Z"
    assert eu.format_time(datetime(2025, 1, 1, 0, 0, 0, 120000, tzinfo=UTC)) == \
        "2025-01-01T00:00:00.12Z"


def test_pod_updates_queue_only_services_whose_endpoints_may_change() -> None:
    factory = InformerFactory(None)  # type: ignore[arg-type]
    services = factory.informer(SERVICES)
    eu.index_namespaces(services)
    for s in (svc("web"), svc("api", selector={"tier": "api"}), svc("all", selector={})):
        services._put(s)
    old = pod("a", labels={"app": "web"})
    same = {**old, "metadata": {**old["metadata"], "resourceVersion": "999",
                                "annotations": {"note": "x"}}}
    assert eu.services_to_update(services, old, same) == set()
    unready = pod("a", labels={"app": "web"}, ready=False)
    assert eu.services_to_update(services, old, unready) == {"default/web", "default/all"}
    moved = pod("a", labels={"tier": "api"})
    # Only labels changed: the services it left or joined, not the one selecting everything.
    assert eu.services_to_update(services, old, moved) == {"default/web", "default/api"}


# --- sync -------------------------------------------------------------------------------------


@pytest.fixture
def world() -> tuple[FakeApi, EndpointsController]:
    factory = InformerFactory(None)  # type: ignore[arg-type]
    api = FakeApi(factory)
    factory.client = api  # type: ignore[assignment]
    return api, EndpointsController(api, factory, recorder=NoEvents())  # type: ignore[arg-type]


async def test_sync_creates_updates_and_deletes_endpoints(world) -> None:
    api, ctl = world
    api.seed(SERVICES, svc())
    api.seed(PODS, pod("a", "10.0.0.1"), pod("x", "10.0.0.9", labels={"app": "other"}))
    await ctl.sync("default/web")
    assert api.writes() == [("create", "endpoints", "web")]
    (ep,) = api.of("endpoints")
    assert ips(ep["subsets"]) == ["10.0.0.1"]

    await ctl.sync("default/web")
    assert api.writes() == []  # nothing changed, nothing written

    api.seed(PODS, pod("b", "10.0.0.2", ready=False))
    await ctl.sync("default/web")
    assert api.writes() == [("update", "endpoints", "web")]
    (ep,) = api.of("endpoints")
    assert ips(ep["subsets"]) == ["10.0.0.1"]
    assert ips(ep["subsets"], "notReadyAddresses") == ["10.0.0.2"]

    ctl.services._remove(svc())
    await ctl.sync("default/web")
    assert api.writes() == [("delete", "endpoints", "web")]
    assert api.of("endpoints") == []


async def test_services_without_selector_or_external_name_are_left_alone(world) -> None:
    api, ctl = world
    manual = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "manual", "namespace": "default", "resourceVersion": "3"},
              "subsets": [{"addresses": [{"ip": "192.0.2.1"}]}]}
    api.seed(SERVICES, svc("manual", selector="none"),
             svc("ext", type="ExternalName", externalName="example.com"))
    api.seed(ENDPOINTS, manual)
    api.seed(PODS, pod("a", labels={"app": "manual"}), pod("b", labels={"app": "ext"}))
    await ctl.sync("default/manual")
    await ctl.sync("default/ext")
    assert api.writes() == []
    assert api.of("endpoints") == [manual]


async def test_pod_events_queue_the_services_selecting_the_pod(world) -> None:
    api, ctl = world
    api.seed(SERVICES, svc("web"), svc("other", selector={"app": "other"}),
             svc("elsewhere", ns="prod"))
    assert await drain(ctl.queue) == {"default/web", "default/other", "prod/elsewhere"}
    api.seed(PODS, pod("a"))
    assert await drain(ctl.queue) == {"default/web"}
    api.seed(PODS, pod("a", labels={"app": "other"}))  # relabelled: left one, joined another
    assert await drain(ctl.queue) == {"default/web", "default/other"}


async def drain(queue) -> set[str]:
    keys = set()
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.add(key)
    return keys
