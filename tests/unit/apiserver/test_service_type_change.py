"""Changing a Service's type drops the fields only the old type uses, unless the same update
set them (kube's dropTypeDependentFields), so `kubectl patch -p '{"spec":{"type":"ClusterIP"}}'`
works on a NodePort or LoadBalancer Service."""

from __future__ import annotations

from pocketkube.registry.services import drop_type_dependent_fields


def lb_spec() -> dict:
    return {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": True,
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}


def test_switching_to_cluster_ip_drops_what_only_load_balancers_use() -> None:
    old = lb_spec()
    new = {**lb_spec(), "type": "ClusterIP",
           "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}
    drop_type_dependent_fields(new, old)
    assert new == {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}


def test_fields_the_update_changed_are_kept_for_validation_to_judge() -> None:
    old = lb_spec()
    new = {**lb_spec(), "type": "ClusterIP", "externalTrafficPolicy": "Local",
           "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31001}]}
    drop_type_dependent_fields(new, old)
    assert new["externalTrafficPolicy"] == "Local"
    assert new["ports"][0]["nodePort"] == 31001


def test_load_balancer_to_node_port_keeps_node_ports() -> None:
    new = {**lb_spec(), "type": "NodePort"}
    drop_type_dependent_fields(new, lb_spec())
    assert new["ports"][0]["nodePort"] == 31000
    assert new["externalTrafficPolicy"] == "Cluster"
    assert "allocateLoadBalancerNodePorts" not in new
