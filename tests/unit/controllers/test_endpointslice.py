"""The EndpointSlice controller: endpoints built from pods, slice packing at 100 endpoints,
low-churn updates, placeholders, ownership, and sync() against an in-memory API whose watch
may trail its writes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pocketkube.controllers.base import InformerFactory
from pocketkube.controllers.endpointslice import (
    NODES,
    PODS,
    SERVICES,
    SLICES,
    EndpointSliceController,
    Plan,
    reconcile,
)
from pocketkube.controllers.endpointslice_util import (
    SliceTracker,
    address_types,
    endpoint_key,
    pod_to_endpoint,
)
from tests.unit.controllers.endpoints_fixtures import FakeApi, NoEvents, node, pod, svc

NODES_BY_NAME = {"sim-0": node("sim-0", zone="zone-a"), "sim-1": node("sim-1")}


def nodes(name: str) -> dict | None:
    return NODES_BY_NAME.get(name)


def pods(n: int, start: int = 0, **kw: Any) -> list[dict]:
    return [pod(f"p{i:04d}", f"10.1.{i // 250}.{i % 250 + 1}", **kw)
            for i in range(start, start + n)]


_rv = iter(range(1, 1_000_000))


def persist(plan: Plan, existing: list[dict]) -> list[dict]:
    """The slices after applying `plan` (names for creates, new versions for updates)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        del by_name[s["metadata"]["name"]]
    for s in plan.update:
        by_name[s["metadata"]["name"]] = copy.deepcopy(s)
    for s in plan.create:
        s = copy.deepcopy(s)
        s["metadata"]["name"] = f"{s['metadata']['generateName']}{next(_rv)}"
        by_name[s["metadata"]["name"]] = s
    for s in by_name.values():
        s["metadata"]["resourceVersion"] = str(next(_rv))
    return list(by_name.values())


def names(slices: list[dict]) -> list[str]:
    return sorted(s["metadata"]["name"] for s in slices)


def sizes(slices: list[dict]) -> list[int]:
    return sorted(len(s.get("endpoints") or []) for s in slices)


# --- endpoints -------------------------------------------------------------------------------


def test_endpoint_conditions_follow_readiness_and_termination() -> None:
    s = svc()
    ready = pod_to_endpoint(pod("a", "10.0.0.1"), nodes("sim-0"), s, "IPv4")
    assert ready == {"addresses": ["10.0.0.1"],
                     "conditions": {"ready": True, "serving": True, "terminating": False},
                     "targetRef": {"kind": "Pod", "namespace": "default", "name": "a",
                                   "uid": "uid-a"},
                     "nodeName": "sim-0", "zone": "zone-a"}
    going = pod_to_endpoint(pod("b", terminating=True, node="sim-1"), nodes("sim-1"), s, "IPv4")
    assert going["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert "zone" not in going
    unready = pod_to_endpoint(pod("c", ready=False, terminating=True), None, s, "IPv4")
    assert unready["conditions"] == {"ready": False, "serving": False, "terminating": True}
    published = pod_to_endpoint(pod("d", ready=False), None,
                                svc(publishNotReadyAddresses=True), "IPv4")
    assert published["conditions"]["ready"] is True
    assert pod_to_endpoint(pod("e", "10.0.0.5"), None, s, "IPv6")["addresses"] == []


def test_address_types_follow_ip_families() -> None:
    assert address_types(svc()) == ["IPv4"]
    assert address_types(svc(ipFamilies=["IPv6", "IPv4"])) == ["IPv4", "IPv6"]
    assert address_types(svc(ipFamilies=[], clusterIP="fd00::10")) == ["IPv6"]
    assert address_types(svc(ipFamilies=[], clusterIP="None")) == ["IPv4", "IPv6"]


# --- reconcile ---------------------------------------------------------------------------------


def test_a_new_service_gets_one_owned_labelled_slice() -> None:
    s = svc(labels={"team": "a"})
    plan = reconcile(s, pods(3), nodes, [])
    assert (len(plan.create), plan.update, plan.delete, plan.errors) == (1, [], [], [])
    (sl,) = plan.create
    assert sl["metadata"] == {
        "generateName": "web-", "namespace": "default",
        "labels": {"team": "a", "kubernetes.io/service-name": "web",
                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                             "uid": "svc-uid-web", "controller": True,
                             "blockOwnerDeletion": True}]}
    assert sl["addressType"] == "IPv4"
    assert sl["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    assert [e["targetRef"]["name"] for e in sl["endpoints"]] == ["p0000", "p0001", "p0002"]


def test_many_endpoints_are_packed_in_slices_of_at_most_100() -> None:
    plan = reconcile(svc(), pods(250), nodes, [])
    assert sizes(plan.create) == [50, 100, 100]


def test_an_unchanged_service_writes_nothing() -> None:
    existing = persist(reconcile(svc(), pods(150), nodes, []), [])
    again = reconcile(svc(), pods(150), nodes, existing)
    assert (again.create, again.update, again.delete) == ([], [], [])


def test_new_endpoints_fill_the_slice_closest_to_full() -> None:
    existing = persist(reconcile(svc(), pods(170), nodes, []), [])  # 100 + 70
    plan = reconcile(svc(), pods(175), nodes, existing)
    assert plan.create == [] and plan.delete == []
    (updated,) = plan.update
    assert len(updated["endpoints"]) == 75
    assert updated["metadata"]["name"] in names(existing)


def test_removing_a_pod_touches_only_its_slice() -> None:
    existing = persist(reconcile(svc(), pods(200), nodes, []), [])
    holder = next(s for s in existing if any(e["targetRef"]["name"] == "p0005"
                                             for e in s["endpoints"]))
    remaining = [p for p in pods(200) if p["metadata"]["name"] != "p0005"]
    plan = reconcile(svc(), remaining, nodes, existing)
    assert [s["metadata"]["name"] for s in plan.update] == [holder["metadata"]["name"]]
    assert len(plan.update[0]["endpoints"]) == 99 and plan.create == [] and plan.delete == []


def test_changed_endpoints_are_updated_in_place_and_fill_that_slice_first() -> None:
    existing = persist(reconcile(svc(), pods(150), nodes, []), [])
    changed = pods(150)
    changed[120] = pod("p0120", "10.1.0.121", ready=False)  # in the slice of 50
    plan = reconcile(svc(), [*changed, *pods(3, start=500)], nodes, existing)
    assert plan.create == [] and plan.delete == []
    (updated,) = plan.update  # the changed slice also takes the new endpoints
    eps = {e["targetRef"]["name"]: e for e in updated["endpoints"]}
    assert len(eps) == 53 and eps["p0120"]["conditions"]["ready"] is False
    assert {"p0500", "p0501", "p0502"} <= set(eps)
    # A change in a full slice updates it; the new endpoints then go to the slice that ends
    # up closest to full.
    changed = pods(150)
    changed[0] = pod("p0000", "10.1.0.1", ready=False)
    plan = reconcile(svc(), [*changed, *pods(3, start=500)], nodes, existing)
    assert plan.create == [] and sizes(plan.update) == [53, 100]


def test_a_service_with_no_endpoints_keeps_one_placeholder() -> None:
    plan = reconcile(svc(), [], nodes, [])
    (placeholder,) = plan.create
    assert placeholder["endpoints"] == [] and "ports" not in placeholder
    existing = persist(plan, [])
    again = reconcile(svc(), [], nodes, existing)
    assert (again.create, again.update, again.delete) == ([], [], [])
    # Its endpoints gone, a slice is reused as the placeholder rather than deleted + created.
    full = persist(reconcile(svc(), pods(2), nodes, existing), existing)
    emptied = reconcile(svc(), [], nodes, full)
    assert emptied.create == [] and len(emptied.update) == 1 and emptied.delete == []
    assert emptied.update[0]["endpoints"] == [] and "ports" not in emptied.update[0]


def test_slices_of_another_owner_or_address_type_are_deleted() -> None:
    existing = persist(reconcile(svc(), pods(2), nodes, []), [])
    stale = copy.deepcopy(existing[0])
    stale["metadata"]["name"] = "web-old"
    stale["metadata"]["ownerReferences"][0]["uid"] = "previous-service"
    v6 = copy.deepcopy(existing[0])
    v6["metadata"]["name"] = "web-v6"
    v6["addressType"] = "IPv6"
    plan = reconcile(svc(), pods(2), nodes, [*existing, stale, v6])
    assert names(plan.delete) == ["web-old", "web-v6"]
    assert plan.create == [] and plan.update == []


def test_pods_group_into_slices_by_resolved_ports() -> None:
    s = svc(ports=[{"port": 80, "targetPort": "http", "protocol": "TCP"}])
    got = reconcile(s, [pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
                        pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 9090}]),
                        pod("c", "10.0.0.3")], nodes, [])
    assert sorted((tuple(p["port"] for p in sl.get("ports") or []),
                   [e["targetRef"]["name"] for e in sl["endpoints"]]) for sl in got.create) == \
        [((), ["c"]), ((8080,), ["a"]), ((9090,), ["b"])]


def test_service_labels_are_copied_on_change_without_moving_endpoints() -> None:
    existing = persist(reconcile(svc(), pods(2), nodes, []), [])
    plan = reconcile(svc(labels={"tier": "web"}), pods(2), nodes, existing)
    (updated,) = plan.update
    assert updated["metadata"]["labels"]["tier"] == "web"
    assert updated["endpoints"] == existing[0]["endpoints"]


def test_pods_on_unknown_nodes_are_skipped_with_an_error() -> None:
    plan = reconcile(svc(), [pod("a"), pod("lost", "10.0.0.9", node="gone")], nodes, [])
    assert [e["targetRef"]["name"] for e in plan.create[0]["endpoints"]] == ["a"]
    assert plan.errors == ["skipping Pod lost for Service default/web: Node gone Not Found"]
    published = reconcile(svc(publishNotReadyAddresses=True), [pod("lost", node="gone")],
                          nodes, [])
    assert len(published.create[0]["endpoints"]) == 1 and published.errors == []


def test_terminating_pods_stay_and_terminal_ones_go() -> None:
    plan = reconcile(svc(), [pod("a", "10.0.0.1", terminating=True),
                             pod("b", "10.0.0.2", phase="Succeeded"),
                             pod("c", None, node="", phase="Pending")], nodes, [])
    (sl,) = plan.create
    assert [e["targetRef"]["name"] for e in sl["endpoints"]] == ["a"]


def test_endpoint_identity_ignores_conditions_and_node() -> None:
    a = pod_to_endpoint(pod("a", "10.0.0.1"), None, svc(), "IPv4")
    b = pod_to_endpoint(pod("a", "10.0.0.1", ready=False, node="sim-1"), None, svc(), "IPv4")
    assert endpoint_key(a) == endpoint_key(b)
    assert endpoint_key(a) != endpoint_key(pod_to_endpoint(pod("a", "10.0.0.2"), None, svc(),
                                                           "IPv4"))


# --- the write tracker -------------------------------------------------------------------------


def slice_named(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def test_tracker_reports_a_cache_behind_the_controllers_writes() -> None:
    t = SliceTracker()
    t.written("ns/web", slice_named("web-1", "10"))
    assert t.stale("ns/web", [])  # created, not seen yet
    assert t.stale("ns/web", [slice_named("web-1", "9")])
    assert not t.observed("ns/web", slice_named("web-1", "10"))  # our own write: no resync
    assert not t.stale("ns/web", [slice_named("web-1", "10")])
    t.deleted("ns/web", "web-1")
    assert t.stale("ns/web", [slice_named("web-1", "10")])
    assert not t.observed_deletion("ns/web", "web-1")
    assert not t.stale("ns/web", [])
    # Someone else's change or deletion is worth a sync.
    assert t.observed("ns/web", slice_named("web-2", "12"))
    t.written("ns/web", slice_named("web-3", "20"))
    assert t.observed("ns/web", slice_named("web-3", "21"))
    assert t.observed_deletion("ns/web", "web-4")


# --- sync --------------------------------------------------------------------------------------


def controller(lag: bool = False) -> tuple[FakeApi, EndpointSliceController, NoEvents]:
    factory = InformerFactory(None)  # type: ignore[arg-type]
    api = FakeApi(factory, lag=lag)
    factory.client = api  # type: ignore[assignment]
    events = NoEvents()
    ctl = EndpointSliceController(api, factory, recorder=events)  # type: ignore[arg-type]
    api.seed(NODES, *NODES_BY_NAME.values())
    return api, ctl, events


async def test_sync_writes_slices_and_is_idempotent() -> None:
    api, ctl, _ = controller()
    api.seed(SERVICES, svc())
    api.seed(PODS, *pods(120))
    await ctl.sync("default/web")
    assert [w[0] for w in api.writes()] == ["create", "create"]
    await ctl.sync("default/web")
    assert api.writes() == []
    annotations = api.of("endpointslices")[0]["metadata"]["annotations"]
    assert annotations == {"endpoints.kubernetes.io/last-change-trigger-time":
                           "2025-01-01T00:00:00Z"}


async def test_a_lagging_cache_never_creates_a_slice_twice() -> None:
    api, ctl, _ = controller(lag=True)
    api.seed(SERVICES, svc())
    api.seed(PODS, *pods(2))
    await ctl.sync("default/web")
    assert api.writes() == [("create", "endpointslices", "web-00001")]
    await ctl.sync("default/web")  # the cache has not seen the slice yet
    assert api.writes() == []
    api.deliver()
    await ctl.sync("default/web")
    assert api.writes() == [] and len(api.of("endpointslices")) == 1


async def test_deleting_the_service_removes_its_slices() -> None:
    api, ctl, _ = controller()
    api.seed(SERVICES, svc())
    api.seed(PODS, *pods(2))
    await ctl.sync("default/web")
    api.writes()
    ctl.services._remove(svc())
    await ctl.sync("default/web")
    assert [w[0] for w in api.writes()] == ["delete"]
    assert api.of("endpointslices") == []


async def test_a_missing_node_fails_the_sync_with_an_event() -> None:
    api, ctl, events = controller()
    api.seed(SERVICES, svc())
    api.seed(PODS, pod("a", "10.0.0.1"), pod("b", "10.0.0.2", node="gone"))
    with pytest.raises(RuntimeError, match="Node gone Not Found"):
        await ctl.sync("default/web")
    assert len(api.of("endpointslices")[0]["endpoints"]) == 1  # the rest is written anyway
    assert events.events == [(
        "Warning", "FailedToUpdateEndpointSlices",
        "Error updating Endpoint Slices for Service default/web: skipping Pod b for Service "
        "default/web: Node gone Not Found")]


async def test_only_changes_made_by_others_queue_the_service() -> None:
    api, ctl, _ = controller(lag=True)
    api.seed(SERVICES, svc())
    api.seed(PODS, *pods(2))
    await drain(ctl.queue)
    await ctl.sync("default/web")
    api.deliver()  # the watch shows the controller's own create
    assert await drain(ctl.queue) == set()
    (sl,) = api.of("endpointslices")
    edited = copy.deepcopy(sl)
    edited["endpoints"] = []
    edited["metadata"]["resourceVersion"] = "9999"
    api.seed(SLICES, edited)  # someone emptied it
    assert await drain(ctl.queue) == {"default/web"}
    await ctl.sync("default/web")
    assert [w[0] for w in api.writes()] == ["create", "update"]


async def drain(queue: Any) -> set[str]:
    keys = set()
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.add(key)
    return keys
