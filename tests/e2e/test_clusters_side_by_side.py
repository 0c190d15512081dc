"""Two clusters with real nodes on one host, as a user gets them by starting a second cluster
in another data dir: the second takes free pod and service ranges by itself, each cluster's
pods reach their own `echo` Service (same namespace and name in both) through their own cluster
DNS and proxy rules, and deleting one cluster leaves the other's rules and traffic untouched.
Traffic goes only to the clusters' own ClusterIPs and pod addresses, from inside their pods.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pocketkube.proxy.chains import Chains, tag_for
from pocketkube.proxy.iptables import owned
from tests.e2e.conftest import Kubectl
from tests.e2e.test_services_dns import (
    client_pod,
    fetch_in_pod,
    service,
    wait_endpoints,
    web_pod,
)
from tests.support.cluster import Cluster
from tests.support.node import node_cluster
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("require_root")


def service_cidr(cluster: Cluster) -> str:
    return json.loads((cluster.data_dir / "config.json").read_text())["service_cidr"]


def nat() -> str:
    return subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                          check=True).stdout


def own_chains(cluster: Cluster) -> set[str]:
    return set(owned(nat(), Chains(tag_for(service_cidr(cluster))).top_level("nat")))


def serve_echo(cluster: Cluster, web: str) -> Kubectl:
    """A pod `web` behind Service default/echo, and a client pod; returns kubectl for them."""
    k = Kubectl(cluster, "default")
    k.create([web_pod(web, {"app": "echo"}), service("echo", {"app": "echo"}), client_pod()])
    k("wait", "--for=condition=Ready", f"pod/{web}", "pod/client", "--timeout=60s")
    wait_endpoints(k, "echo", 1)
    return k


def answers_by_name(k: Kubectl, times: int = 5) -> list[str]:
    """What `http://echo/` answers from the client pod, resolved by its cluster's DNS."""
    return eventually(lambda: (lambda got: got if "-" not in got else None)(
        fetch_in_pod(k, "client", "http://echo/", times)), timeout=30)


@pytest.fixture(scope="module")
def clusters(require_root: None, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Cluster, Cluster, ExitStack]]:
    base: Path = tmp_path_factory.mktemp("side-by-side")
    with ExitStack() as stack:
        first = stack.enter_context(node_cluster(base / "first"))
        # The first proxy's chains mark its service range as taken before the second starts.
        eventually(lambda: Chains(tag_for(service_cidr(first))).services in own_chains(first),
                   timeout=30)
        second_stack = stack.enter_context(ExitStack())
        second = second_stack.enter_context(node_cluster(base / "second"))
        yield first, second, second_stack


def test_each_cluster_serves_its_own_echo_and_survives_the_other(
        clusters: tuple[Cluster, Cluster, ExitStack]) -> None:
    first, second, second_stack = clusters
    ranges = {service_cidr(first), service_cidr(second)}
    assert len(ranges) == 2, f"both clusters on {ranges}"
    k1, k2 = serve_echo(first, "web-first"), serve_echo(second, "web-second")
    dns1 = k1("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    dns2 = k2("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert dns1 != dns2  # each cluster's pods ask their own cluster DNS
    assert set(answers_by_name(k1)) == {"web-first"}
    assert set(answers_by_name(k2)) == {"web-second"}

    before = own_chains(first)
    theirs = own_chains(second)
    pod_range = json.loads(second.kubectl("get", "nodes", "-o", "json").stdout)[
        "items"][0]["spec"]["podCIDR"]
    second_range = service_cidr(second)
    assert before and theirs and not before & theirs
    second_stack.close()  # `pocketkube delete` of the second cluster
    chains_now = own_chains(first)
    assert chains_now == before, "deleting the second cluster touched the first's chains"
    present = {line[1:].split()[0] for line in nat().splitlines() if line.startswith(":")}
    assert not theirs & present, f"left behind: {sorted(theirs & present)}"
    everything = nat() + subprocess.run(["iptables-save", "-t", "filter"], capture_output=True,
                                        text=True, check=True).stdout
    left = [line for line in everything.splitlines()
            if pod_range in line or second_range in line]
    assert not left, f"the deleted cluster's rules are still there: {left}"
    gateway = str(next(ipaddress.ip_network(pod_range).hosts()))
    addresses = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                               check=True).stdout
    assert f" {gateway}/" not in addresses  # its bridge is gone
    assert set(answers_by_name(k1)) == {"web-first"}
