"""Address ranges of a cluster: validation of --cluster-cidr/--service-cidr, the overlap check,
and how a new cluster with a node keeps clear of ranges other clusters use on this host."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from pocketkube.cli import ranges
from pocketkube.cli.main import build_parser
from pocketkube.proxy.chains import Chains, tag_for

ROUTE_HEADER = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\t"
                "IRTT\n")


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_host_routes_read_proc_net_route(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTE_HEADER
                     + "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                     + "pk0\t0000F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert ranges.host_routes(table) == [net("10.244.0.0/24")]  # the default route is left out
    assert ranges.host_routes(tmp_path / "missing") == []


def test_defaults_when_nothing_on_the_host_uses_them() -> None:
    assert ranges.choose(None, None, routes=[net("192.168.1.0/24")], chains=set()) == (
        "10.244.0.0/16", "10.96.0.0/12")


def test_a_second_cluster_takes_the_next_free_ranges() -> None:
    # The first cluster's bridge routes 10.244.0.0/24 and its proxy owns KUBE-SERVICES.
    pod, svc = ranges.choose(None, None, routes=[net("10.244.0.0/24")],
                             chains={"KUBE-SERVICES", "KUBE-NODEPORTS"})
    assert (pod, svc) == ("10.245.0.0/16", "10.112.0.0/16")
    # A third one skips both.
    taken = {"KUBE-SERVICES", Chains(tag_for("10.112.0.0/16")).services}
    assert ranges.choose(None, None, routes=[net("10.244.0.0/24"), net("10.245.0.0/24")],
                         chains=taken) == ("10.246.0.0/16", "10.113.0.0/16")


def test_given_ranges_are_kept_and_avoided() -> None:
    assert ranges.choose("10.150.0.0/16", None, routes=[net("10.150.0.0/24")],
                         chains=set()) == ("10.150.0.0/16", "10.96.0.0/12")
    # A given service range inside the default pod range pushes the pod range along.
    assert ranges.choose(None, "10.244.0.0/16", routes=[], chains=set())[0] == "10.245.0.0/16"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--cluster-cidr", "10.244.0.0/24", "/16 or larger"),
    ("--cluster-cidr", "fd00::/48", "only IPv4"),
    ("--cluster-cidr", "10.244.1.0/16", "not a network"),
    ("--service-cidr", "10.0.0.0/8", "no larger than /12"),
    ("--service-cidr", "10.96.0.0/28", "/24 or larger"),
])
def test_bad_ranges_are_refused(option: str, value: str, message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["server", option, value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_overlapping_ranges_are_refused(tmp_path: Path) -> None:
    assert ranges.overlap_error("10.244.0.0/16", "10.96.0.0/12") is None
    assert "overlaps the service range" in str(
        ranges.overlap_error("10.96.0.0/16", "10.96.0.0/12"))
    proc = subprocess.run(
        [sys.executable, "-m", "pocketkube.cli.main", "server", "--data-dir", str(tmp_path / "d"),
         "--no-node-agent", "--cluster-cidr", "10.100.0.0/16"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "the pod range 10.100.0.0/16 overlaps the service range 10.96.0.0/12" in proc.stderr
    assert not (tmp_path / "d" / "config.json").exists()  # nothing remembered
