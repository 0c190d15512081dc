"""/etc/hosts, /etc/resolv.conf and /etc/hostname as the kubelet and the CRI runtime write them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pocketkube.kubelet.dnsconfig import (
    DNSConfigError,
    kernel_hostname,
    pod_dns,
    pod_hostname,
    write_pod_files,
)

HOST_RESOLV = """# generated
nameserver 192.168.1.1
nameserver 192.168.1.2
search corp.example. lab.example
options edns0 ndots:2
"""

KUBE_HOSTS_HEADER = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n")


def pod(**spec: object) -> dict:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], **spec}}


def write(tmp_path: Path, p: dict, pod_ips: list[str] | None = None) -> tuple[str, str, str]:
    resolv = tmp_path / "host-resolv.conf"
    resolv.write_text(HOST_RESOLV)
    hosts = tmp_path / "host-hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.1 node-a\n")
    paths = write_pod_files(p, tmp_path / "pod", pod_ips=pod_ips or ["10.244.0.7"],
                            cluster_dns=["10.96.0.10"], cluster_domain="cluster.local",
                            host_resolv=resolv, host_hosts=hosts)
    return tuple(p.read_text() for p in paths)  # type: ignore[return-value]


def test_hosts_file_exactly_as_the_kubelet_writes_it(tmp_path: Path) -> None:
    hosts, _, hostname = write(tmp_path, pod())
    assert hosts == KUBE_HOSTS_HEADER + "10.244.0.7\tweb-0\n"
    assert hostname == "web-0\n"


def test_hosts_with_subdomain_and_aliases(tmp_path: Path) -> None:
    p = pod(hostname="db", subdomain="backend",
            hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]},
                         {"ip": "127.0.0.1", "hostnames": ["foo.local"]}])
    hosts, _, hostname = write(tmp_path, p, ["10.244.0.7", "fd00::7"])
    assert hosts == (KUBE_HOSTS_HEADER
                     + "10.244.0.7\tdb.backend.shop.svc.cluster.local\tdb\n"
                     + "fd00::7\tdb.backend.shop.svc.cluster.local\tdb\n"
                     + "\n# Entries added by HostAliases.\n"
                     + "10.1.2.3\tfoo.remote\tbar.remote\n"
                     + "127.0.0.1\tfoo.local\n")
    assert hostname == "db\n"


def test_host_network_hosts_and_hostname(tmp_path: Path) -> None:
    p = pod(hostNetwork=True, hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}])
    hosts, resolv, hostname = write(tmp_path, p)
    assert hosts == ("# Kubernetes-managed hosts file (host network).\n"
                     "127.0.0.1 localhost\n10.0.0.1 node-a\n"
                     "\n# Entries added by HostAliases.\n1.2.3.4\tx\n")
    assert hostname == socket.gethostname() + "\n"
    # ClusterFirst with host network falls back to the node's DNS.
    assert resolv == ("search corp.example lab.example\nnameserver 192.168.1.1\n"
                      "nameserver 192.168.1.2\noptions edns0 ndots:2\n")


def test_resolv_cluster_first(tmp_path: Path) -> None:
    _, resolv, _ = write(tmp_path, pod(dnsPolicy="ClusterFirst"))
    assert resolv == ("search shop.svc.cluster.local svc.cluster.local cluster.local "
                      "corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n")


def test_resolv_cluster_first_with_host_net(tmp_path: Path) -> None:
    _, resolv, _ = write(tmp_path, pod(dnsPolicy="ClusterFirstWithHostNet", hostNetwork=True))
    assert resolv.startswith("search shop.svc.cluster.local svc.cluster.local")
    assert "nameserver 10.96.0.10\n" in resolv


def test_resolv_default_and_none(tmp_path: Path) -> None:
    _, resolv, _ = write(tmp_path, pod(dnsPolicy="Default"))
    assert resolv == ("search corp.example lab.example\nnameserver 192.168.1.1\n"
                      "nameserver 192.168.1.2\noptions edns0 ndots:2\n")
    cfg = {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    _, resolv, _ = write(tmp_path, pod(dnsPolicy="None", dnsConfig=cfg))
    assert resolv == "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"


def test_dns_config_merges_and_limits() -> None:
    cfg = {"nameservers": ["10.96.0.10", "1.1.1.1", "8.8.8.8", "9.9.9.9"],
           "searches": ["shop.svc.cluster.local", *[f"d{i}.example" for i in range(40)]],
           "options": [{"name": "ndots", "value": "1"}, {"name": "timeout", "value": "3"}]}
    servers, searches, options = pod_dns(pod(dnsConfig=cfg), ["10.96.0.10"], "cluster.local",
                                         HOST_RESOLV)
    assert servers == ["10.96.0.10", "1.1.1.1", "8.8.8.8"]
    assert len(searches) == 32
    assert searches[:6] == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local",
                            "corp.example", "lab.example", "d0.example"]
    assert options == ["ndots:1", "timeout:3"]


def test_hostname_truncation_and_fqdn() -> None:
    long = pod()
    long["metadata"]["name"] = "a" * 62 + "-b"
    assert pod_hostname(long, "cluster.local") == ("a" * 62, "")
    fq = pod(hostname="h", subdomain="s", setHostnameAsFQDN=True)
    assert kernel_hostname(fq, "cluster.local") == "h.s.shop.svc.cluster.local"
    too_long = pod(hostname="h" * 40, subdomain="s" * 20, setHostnameAsFQDN=True)
    with pytest.raises(DNSConfigError, match="is too long"):
        kernel_hostname(too_long, "cluster.local")


def test_rewrite_keeps_the_inode(tmp_path: Path) -> None:
    # Containers bind-mount these files: an update must change the content, not the inode.
    write(tmp_path, pod(), [])
    before = os.stat(tmp_path / "pod" / "etc-hosts").st_ino
    hosts, _, _ = write(tmp_path, pod(), ["10.244.0.9"])
    assert os.stat(tmp_path / "pod" / "etc-hosts").st_ino == before
    assert hosts.endswith("10.244.0.9\tweb-0\n")
