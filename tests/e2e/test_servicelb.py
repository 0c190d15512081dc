"""ServiceLB end to end, with two simulated nodes and the real kubectl: a LoadBalancer Service
shows the nodes' InternalIPs as EXTERNAL-IP (`kubectl expose --type=LoadBalancer` included),
follows nodes as they come and go, records the service controller's events, and lets go
(status, finalizer) when the Service stops being a LoadBalancer or is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Kubectl
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

SIM_IPS = "10.250.0.1,10.250.0.2"  # simulated nodes sim-0 and sim-1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("servicelb"), extra_args=["--simulated-nodes", "2"])
    c.start()
    try:
        yield c
    finally:
        c.close()


def external_ip(k: Kubectl, name: str) -> str:
    """The EXTERNAL-IP column of `kubectl get svc NAME`."""
    lines = k("get", "svc", name).stdout.splitlines()
    header, row = lines[0].split(), lines[1].split()
    return row[header.index("EXTERNAL-IP")]


def svc_json(k: Kubectl, name: str) -> dict:
    return json.loads(k("get", "svc", name, "-o", "json").stdout)


def reasons(k: Kubectl, name: str) -> list[str]:
    items = json.loads(k("get", "events", "--field-selector",
                         f"involvedObject.name={name},involvedObject.kind=Service",
                         "-o", "json").stdout)["items"]
    return [e["reason"] for e in sorted(items, key=lambda e: e["metadata"]["name"])]


def test_expose_deployment_as_load_balancer_shows_the_node_addresses(k: Kubectl) -> None:
    k("create", "deployment", "web", "--image=busybox", "--replicas=1")
    k("expose", "deployment", "web", "--type=LoadBalancer", "--port=80", "--target-port=8080")
    assert eventually(lambda: external_ip(k, "web") == SIM_IPS)
    svc = svc_json(k, "web")
    assert svc["status"]["loadBalancer"]["ingress"] == [
        {"ip": "10.250.0.1", "ipMode": "VIP"}, {"ip": "10.250.0.2", "ipMode": "VIP"}]
    assert svc["metadata"]["finalizers"] == ["service.kubernetes.io/load-balancer-cleanup"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    row = k("get", "svc", "web").stdout.splitlines()[1].split()
    assert row[1] == "LoadBalancer" and row[4] == f"80:{node_port}/TCP"
    assert eventually(lambda: reasons(k, "web") == ["EnsuringLoadBalancer",
                                                    "EnsuredLoadBalancer"])
    described = k("describe", "svc", "web").stdout
    assert "LoadBalancer Ingress:     10.250.0.1 (VIP), 10.250.0.2 (VIP)" in described
    assert "Ensured load balancer" in described


def test_nodes_coming_and_going_change_the_addresses(cluster: Cluster, k: Kubectl) -> None:
    k("create", "service", "loadbalancer", "lb", "--tcp=80:8080")
    assert eventually(lambda: external_ip(k, "lb") == SIM_IPS)
    exclude = "node.kubernetes.io/exclude-from-external-load-balancers"
    cluster.kubectl("label", "node", "sim-0", f"{exclude}=true")
    try:
        assert eventually(lambda: external_ip(k, "lb") == "10.250.0.2")
    finally:
        cluster.kubectl("label", "node", "sim-0", f"{exclude}-")
    assert eventually(lambda: external_ip(k, "lb") == SIM_IPS)
    assert eventually(lambda: "UpdatedLoadBalancer" in reasons(k, "lb"))


def test_service_that_stops_being_a_load_balancer_is_cleared(k: Kubectl) -> None:
    k("create", "service", "loadbalancer", "flip", "--tcp=80:8080")
    assert eventually(lambda: external_ip(k, "flip") == SIM_IPS)
    k("patch", "svc", "flip", "--type=merge", "-p",
      json.dumps({"spec": {"type": "ClusterIP", "externalTrafficPolicy": None, "ports": [
          {"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}))
    assert eventually(lambda: not svc_json(k, "flip")["metadata"].get("finalizers"))
    assert external_ip(k, "flip") == "<none>"
    assert not svc_json(k, "flip")["status"]["loadBalancer"].get("ingress")
    assert eventually(lambda: "DeletedLoadBalancer" in reasons(k, "flip"))


def test_deleting_a_load_balancer_service_completes(k: Kubectl) -> None:
    k("create", "service", "loadbalancer", "gone", "--tcp=80:8080")
    assert eventually(lambda: svc_json(k, "gone")["metadata"].get("finalizers"))
    k("delete", "svc", "gone", "--timeout=30s")
    assert "NotFound" in k.fails("get", "svc", "gone").stderr


def test_a_load_balancer_class_is_left_to_its_own_controller(k: Kubectl) -> None:
    k.apply({"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "other", "namespace": k.ns},
             "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb",
                      "ports": [{"port": 80}]}})
    k("create", "service", "loadbalancer", "mine", "--tcp=80:8080")
    assert eventually(lambda: external_ip(k, "mine") == SIM_IPS)
    assert external_ip(k, "other") == "<pending>"
    assert not svc_json(k, "other")["metadata"].get("finalizers")
