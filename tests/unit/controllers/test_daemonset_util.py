"""The pure DaemonSet rules: node eligibility (nodeSelector, required affinity, taints against
the pod's and the default daemon tolerations), pinning pods to nodes, the rolling-update plan
within maxUnavailable / maxSurge, status counts, and expectations."""

from __future__ import annotations

import pytest

from pocketkube.controllers import daemonset_update as plan
from pocketkube.controllers import daemonset_util as du


def ds(**spec: object) -> dict:
    template_spec = spec.pop("template_spec", {})
    body = {"selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}],
                                  **template_spec}},
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}
    body.update(spec)
    return {"metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid", "generation": 2},
            "spec": body}


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or []}}


def taint(key: str, effect: str, value: str = "") -> dict:
    return {"key": key, "value": value, "effect": effect}


@pytest.mark.parametrize(("taints", "tolerations", "want"), [
    ([], [], (True, True)),
    ([taint("dedicated", "NoSchedule", "x")], [], (False, True)),
    ([taint("dedicated", "NoExecute", "x")], [], (False, False)),
    ([taint("dedicated", "NoSchedule", "x")],
     [{"key": "dedicated", "operator": "Equal", "value": "x"}], (True, True)),
    ([taint("dedicated", "NoSchedule", "x")],
     [{"key": "dedicated", "operator": "Equal", "value": "y"}], (False, True)),
    ([taint("dedicated", "NoExecute", "x")], [{"operator": "Exists"}], (True, True)),
    ([taint("node.kubernetes.io/not-ready", "NoExecute")], [], (True, True)),
    ([taint("node.kubernetes.io/unreachable", "NoExecute")], [], (True, True)),
    ([taint("node.kubernetes.io/unschedulable", "NoSchedule")], [], (True, True)),
    ([taint("node.kubernetes.io/memory-pressure", "NoSchedule")], [], (True, True)),
    ([taint("node.kubernetes.io/network-unavailable", "NoSchedule")], [], (False, True)),
    ([taint("anything", "PreferNoSchedule")], [], (True, True)),
])
def test_taints_against_tolerations(taints: list, tolerations: list,
                                    want: tuple[bool, bool]) -> None:
    d = ds(template_spec={"tolerations": tolerations})
    assert du.should_run(node("n", taints=taints), d) == want


def test_host_network_daemons_tolerate_network_unavailable() -> None:
    d = ds(template_spec={"hostNetwork": True})
    assert du.should_run(node("n", taints=[taint("node.kubernetes.io/network-unavailable",
                                                 "NoSchedule")]), d) == (True, True)


def test_node_selector_affinity_and_node_name() -> None:
    d = ds(template_spec={"nodeSelector": {"disk": "ssd"}})
    assert du.should_run(node("a", {"disk": "ssd"}), d) == (True, True)
    assert du.should_run(node("b", {"disk": "hdd"}), d) == (False, False)
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}}
    d = ds(template_spec={"affinity": affinity})
    assert du.should_run(node("a", {"zone": "z2"}), d)[0]
    assert not du.should_run(node("a", {"zone": "z3"}), d)[0]
    assert not du.should_run(node("a"), ds(template_spec={"nodeName": "b"}))[0]


def test_pods_are_pinned_to_their_node_with_the_daemon_tolerations() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "Exists"}]}]}}}
    d = ds(template_spec={"affinity": affinity,
                          "tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                           "operator": "Exists", "effect": "NoSchedule"}]})
    pod = du.pod_for_node(d, du.pod_template(d, "h1"), "sim-1")
    assert pod["metadata"]["generateName"] == "d-"
    assert pod["metadata"]["labels"] == {"app": "d", "controller-revision-hash": "h1",
                                         "pod-template-generation": "2"}
    assert pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In",
                              "values": ["sim-1"]}]}]}
    keys = [t["key"] for t in pod["spec"]["tolerations"]]
    assert len(keys) == len(set(keys)) == 6
    assert du.target_node(pod) == "sim-1"
    assert "nodeName" not in pod["spec"]


def test_scaled_values_round_up() -> None:
    assert du.scaled_value("25%", 3, True) == 1
    assert du.scaled_value("50%", 3, True) == 2
    assert du.scaled_value(2, 3, True) == 2
    d = ds(updateStrategy={"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
    assert du.surge_and_unavailable(d, 3) == (0, 1)


def dpod(name: str, node_: str, hash_: str, ready: bool = True) -> dict:
    return {"metadata": {"name": name, "labels": {"controller-revision-hash": hash_},
                         "creationTimestamp": f"2024-01-01T00:00:0{name[-1]}Z"},
            "spec": {"nodeName": node_},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


NODES = [node("n0"), node("n1"), node("n2")]


def test_rolling_update_deletes_within_max_unavailable() -> None:
    by_node = plan.pods_by_node([dpod("p0", "n0", "old"), dpod("p1", "n1", "old"),
                                 dpod("p2", "n2", "old")])
    delete, create = plan.rolling_update_plan(ds(), NODES, by_node, "new", 0)
    assert [p["metadata"]["name"] for p in delete] == ["p0"] and create == []
    # A node without a pod counts as unavailable: nothing more is deleted meanwhile.
    by_node = plan.pods_by_node([dpod("p1", "n1", "old"), dpod("p2", "n2", "old")])
    assert plan.rolling_update_plan(ds(), NODES, by_node, "new", 0) == ([], [])
    # An old pod that is not ready anyway is replaced at once.
    by_node = plan.pods_by_node([dpod("p0", "n0", "new"), dpod("p1", "n1", "old", ready=False),
                                 dpod("p2", "n2", "old")])
    delete, _ = plan.rolling_update_plan(ds(), NODES, by_node, "new", 0)
    assert [p["metadata"]["name"] for p in delete] == ["p1", "p2"]


def test_rolling_update_with_surge_creates_before_deleting() -> None:
    d = ds(updateStrategy={"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    by_node = plan.pods_by_node([dpod("p0", "n0", "old"), dpod("p1", "n1", "old"),
                                 dpod("p2", "n2", "old")])
    assert plan.rolling_update_plan(d, NODES, by_node, "new", 0) == ([], ["n0"])
    by_node = plan.pods_by_node([dpod("p0", "n0", "old"), dpod("p3", "n0", "new"),
                                 dpod("p1", "n1", "old"), dpod("p2", "n2", "old")])
    delete, create = plan.rolling_update_plan(d, NODES, by_node, "new", 0)
    assert [p["metadata"]["name"] for p in delete] == ["p0"] and create == ["n1"]


def test_manage_plan_and_status_on_a_tainted_node() -> None:
    nodes = [node("n0", taints=[taint("dedicated", "NoSchedule", "x")]), node("n1"),
             node("n2", taints=[taint("gone", "NoExecute")])]
    by_node = plan.pods_by_node([dpod("p0", "n0", "h"), dpod("p2", "n2", "h"),
                                 dpod("p3", "n1", "h"), dpod("p4", "n1", "h")])
    create, delete, failed = plan.manage_plan(ds(), nodes, by_node, "h", lambda n: True, 0)
    # n0 keeps its pod (NoSchedule), n2 loses it (NoExecute), n1 keeps only the oldest.
    assert create == [] and failed == []
    assert sorted(p["metadata"]["name"] for p in delete) == ["p2", "p4"]
    st = plan.compute_status(ds(), nodes, by_node, "h", 0)
    assert st == {"desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                  "numberMisscheduled": 2, "numberReady": 1, "updatedNumberScheduled": 1,
                  "numberAvailable": 1, "numberUnavailable": 0}


def test_failed_pods_are_replaced() -> None:
    failed_pod = dpod("p1", "n1", "h", ready=False)
    failed_pod["status"]["phase"] = "Failed"
    by_node = plan.pods_by_node([failed_pod])
    create, delete, failed = plan.manage_plan(ds(), [node("n0"), node("n1")], by_node, "h",
                                              lambda n: True, 0)
    assert create == ["n0"] and delete == [failed_pod] == failed


def test_expectations() -> None:
    t = [0.0]
    exp = du.Expectations(lambda: t[0])
    assert exp.satisfied("k")
    exp.expect("k", 2, {"ns/a"})
    exp.creation_observed("k")
    exp.deletion_observed("k", "ns/a")
    assert not exp.satisfied("k")
    exp.creation_observed("k")
    assert exp.satisfied("k")
    exp.expect("k", 1, set())
    t[0] = du.EXPECTATIONS_TIMEOUT + 1
    assert exp.satisfied("k"), "expectations expire"
