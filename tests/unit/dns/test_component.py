"""The pieces of the cluster-dns component that need no cluster: its options, the kube-dns
objects it publishes, the node address it binds and the upstreams it forwards to."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketkube.dns import publish
from pocketkube.dns.component import NAME, DnsOptions, component_config, internal_ip, run
from pocketkube.dns.upstream import Upstream, parse_address, resolv_conf_nameservers


def test_cluster_dns_ip_is_the_tenth_service_address() -> None:
    assert publish.cluster_dns_ip("10.96.0.0/12") == "10.96.0.10"
    assert publish.cluster_dns_ip("10.0.0.0/16,fd00::/108") == "10.0.0.10"


def test_kube_dns_service_as_kubeadm_labels_it() -> None:
    svc = publish.service_object("10.96.0.10", 5353)
    assert svc["metadata"]["labels"] == {"k8s-app": "kube-dns",
                                         "kubernetes.io/cluster-service": "true",
                                         "kubernetes.io/name": "CoreDNS"}
    assert "selector" not in svc["spec"]
    assert [(p["name"], p["port"], p["protocol"], p["targetPort"])
            for p in svc["spec"]["ports"]] == [("dns", 53, "UDP", 5353),
                                                ("dns-tcp", 53, "TCP", 5353)]


def test_endpoints_and_slice_point_at_the_bound_address() -> None:
    eps = publish.slice_object("10.150.0.1", 5353, "node-a")
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "pocketkube-dns"
    assert eps["addressType"] == "IPv4"
    assert eps["endpoints"][0]["addresses"] == ["10.150.0.1"]
    assert eps["endpoints"][0]["conditions"]["ready"] is True
    assert {p["port"] for p in eps["ports"]} == {5353}
    assert publish.slice_object("fd00::1", 53, "node-a")["addressType"] == "IPv6"
    assert eps["metadata"]["name"] == "kube-dns-node-a"
    assert "ownerReferences" not in eps["metadata"]
    owned = publish.slice_object("10.150.0.1", 5353, "node-a", "uid-a")["metadata"]
    assert owned["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "node-a",
                                         "uid": "uid-a"}]


def test_endpoints_gather_every_nodes_server() -> None:
    slices = [publish.slice_object("10.150.1.1", 53, "node-b"),
              publish.slice_object("10.150.0.1", 53, "node-a")]
    ep = publish.endpoints_object(slices)
    assert ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    assert ep["subsets"] == [{
        "addresses": [{"ip": "10.150.0.1", "nodeName": "node-a"},
                      {"ip": "10.150.1.1", "nodeName": "node-b"}],
        "ports": [{"name": "dns", "protocol": "UDP", "port": 53},
                  {"name": "dns-tcp", "protocol": "TCP", "port": 53}]}]
    assert publish.endpoints_object([])["subsets"] == []
    long_name = "n" * 250
    name = publish.slice_name(long_name)
    assert len(name) == 253 and name != publish.slice_name("n" * 251)


def test_each_node_answers_its_own_pods() -> None:
    svc = publish.service_object("10.96.0.10", 53)
    assert svc["spec"]["internalTrafficPolicy"] == "Local"


def test_internal_ip_of_a_node() -> None:
    node = {"status": {"addresses": [{"type": "Hostname", "address": "a"},
                                     {"type": "InternalIP", "address": "10.150.0.1"}]}}
    assert internal_ip(node) == "10.150.0.1"
    assert internal_ip({"status": {}}) == "" and internal_ip(None) == ""


def test_options() -> None:
    opts = DnsOptions.from_dict({"port": 0, "node_name": "n1", "upstreams": ["127.0.0.1:53"]})
    assert (opts.port, opts.node_name, opts.ttl) == (0, "n1", 30)
    with pytest.raises(ValueError, match="unknown cluster-dns options: bogus"):
        DnsOptions.from_dict({"bogus": 1})
    assert component_config(port=0) == ({NAME: run}, {NAME: {"port": 0}})


def test_upstreams_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 127.0.0.53\n"
                    "nameserver fe80::1%eth0\noptions edns0\n")
    assert resolv_conf_nameservers(conf) == [("127.0.0.53", 53), ("fe80::1", 53)]
    assert resolv_conf_nameservers(tmp_path / "absent") == []
    assert parse_address("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_address("[::1]:5353") == ("::1", 5353)
    assert parse_address("::1") == ("::1", 53)
    up = Upstream([("10.150.0.1", 53), ("127.0.0.53", 53)], exclude={("10.150.0.1", 53)})
    assert up.servers == [("127.0.0.53", 53)]
