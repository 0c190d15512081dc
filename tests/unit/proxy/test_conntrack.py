"""Stale UDP conntrack cleanup: which `conntrack -D` commands follow from two consecutive
syncs, and the runner's handling of the tool's exit codes — with a stand-in script for the
edge cases and the real tool on a loopback flow."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pocketkube.proxy import conntrack
from pocketkube.proxy.conntrack import delete_entries, stale_entry_commands
from pocketkube.proxy.model import Endpoint, ServicePort

D = ["conntrack", "-D", "-p", "udp"]


def sp(name: str = "dns", protocol: str = "UDP", port_name: str = "", node_port: int = 0,
       external_ips: tuple[str, ...] = (), vips: tuple[str, ...] = (),
       cluster_ip: str = "10.96.0.10") -> ServicePort:
    return ServicePort(namespace="ns", name=name, port_name=port_name, protocol=protocol,
                       cluster_ip=cluster_ip, port=53, node_port=node_port,
                       external_ips=list(external_ips), load_balancer_vips=list(vips))


A = Endpoint("10.1.0.5", 53)
B = Endpoint("10.1.0.6", 53)


def test_nothing_changed_deletes_nothing() -> None:
    state = [(sp(), [A, B])]
    assert stale_entry_commands(state, state) == []


def test_removed_endpoint_is_cleared_for_every_frontend() -> None:
    svc = sp(node_port=30053, external_ips=("192.0.2.1",), vips=("198.51.100.7",))
    assert stale_entry_commands([(svc, [A, B])], [(svc, [A])]) == [
        [*D, "--dport", "30053", "--reply-src", "10.1.0.6"],
        [*D, "--orig-dst", "10.96.0.10", "--reply-src", "10.1.0.6"],
        [*D, "--orig-dst", "192.0.2.1", "--reply-src", "10.1.0.6"],
        [*D, "--orig-dst", "198.51.100.7", "--reply-src", "10.1.0.6"],
    ]


def test_last_endpoint_removed_clears_it_but_not_the_service_ip() -> None:
    assert stale_entry_commands([(sp(), [A])], [(sp(), [])]) == [
        [*D, "--orig-dst", "10.96.0.10", "--reply-src", "10.1.0.5"]]


def test_endpoint_that_stops_serving_is_cleared_one_still_serving_is_not() -> None:
    gone = Endpoint("10.1.0.5", 53, ready=False, serving=False)
    draining = Endpoint("10.1.0.6", 53, ready=False, serving=True, terminating=True)
    assert stale_entry_commands([(sp(), [A, B])], [(sp(), [gone, draining])]) == [
        [*D, "--orig-dst", "10.96.0.10", "--reply-src", "10.1.0.5"]]


def test_endpoint_never_serving_has_nothing_to_clear() -> None:
    idle = Endpoint("10.1.0.7", 53, ready=False, serving=False)
    assert stale_entry_commands([(sp(), [A, idle])], [(sp(), [A])]) == []


def test_endpoint_port_change_clears_the_old_one() -> None:
    moved = Endpoint("10.1.0.5", 5353)
    assert stale_entry_commands([(sp(), [A])], [(sp(), [moved])]) == [
        [*D, "--orig-dst", "10.96.0.10", "--reply-src", "10.1.0.5"]]


def test_newly_active_service_clears_its_ips_and_node_port() -> None:
    svc = sp(node_port=30053, external_ips=("192.0.2.1",), vips=("198.51.100.7",))
    expected = [[*D, "--orig-dst", "10.96.0.10"], [*D, "--orig-dst", "192.0.2.1"],
                [*D, "--orig-dst", "198.51.100.7"], [*D, "--dport", "30053"]]
    assert stale_entry_commands([(svc, [])], [(svc, [A])]) == expected
    # Endpoints that were listed but not serving count as none.
    not_serving = Endpoint("10.1.0.5", 53, ready=False, serving=False)
    assert stale_entry_commands([(svc, [not_serving])], [(svc, [A])]) == expected
    # A new Service arriving with its endpoints is newly active too.
    assert stale_entry_commands([], [(svc, [A])]) == expected


def test_first_sync_treats_every_udp_service_with_endpoints_as_newly_active() -> None:
    new = [(sp("dns"), [A]), (sp("empty", cluster_ip="10.96.0.11"), []),
           (sp("web", protocol="TCP", cluster_ip="10.96.0.12"), [A])]
    assert stale_entry_commands([], new) == [[*D, "--orig-dst", "10.96.0.10"]]


def test_removed_udp_service_port_clears_its_cluster_ip() -> None:
    old = [(sp(port_name="a"), [A]), (sp(port_name="b"), [A])]
    new = [(sp(port_name="a"), [A])]
    assert stale_entry_commands(old, new) == [[*D, "--orig-dst", "10.96.0.10"]]
    assert stale_entry_commands(old, []) == [[*D, "--orig-dst", "10.96.0.10"]]


def test_tcp_and_sctp_are_left_alone() -> None:
    for proto in ("TCP", "SCTP"):
        svc = sp(protocol=proto, node_port=30053)
        assert stale_entry_commands([(svc, [A, B])], [(svc, [A])]) == []
        assert stale_entry_commands([(svc, [])], [(svc, [A])]) == []
        assert stale_entry_commands([(svc, [A])], []) == []


def test_same_protocol_key_only_udp_of_a_mixed_service() -> None:
    tcp, udp = sp(protocol="TCP", port_name="dns-tcp"), sp(port_name="dns")
    assert stale_entry_commands([(tcp, [A, B]), (udp, [A, B])],
                                [(tcp, [A]), (udp, [A])]) == [
        [*D, "--orig-dst", "10.96.0.10", "--reply-src", "10.1.0.6"]]


def test_commands_are_not_repeated() -> None:
    one, two = sp(port_name="one", node_port=30001), sp(port_name="two", node_port=30001)
    old = [(one, [A, B]), (two, [Endpoint("10.1.0.6", 54)])]
    new = [(one, [A]), (two, [])]
    assert stale_entry_commands(old, new) == [
        [*D, "--dport", "30001", "--reply-src", "10.1.0.6"],
        [*D, "--orig-dst", "10.96.0.10", "--reply-src", "10.1.0.6"]]


# The runner.

def fake_conntrack(tmp_path: Path, script: str) -> Path:
    """A `conntrack` stand-in on PATH that logs its argv and then runs `script`."""
    log = tmp_path / "calls"
    exe = tmp_path / "conntrack"
    exe.write_text(f'#!/bin/sh\necho "$*" >> {log}\n{script}\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return log


async def test_runner_counts_deletions_and_accepts_nothing_to_delete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    calls = fake_conntrack(tmp_path, """
case "$*" in
  *10.96.0.10*) echo "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted." >&2;;
  *) echo "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted." >&2; exit 1;;
esac""")
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="pocketkube.proxy.conntrack"):
        n = await delete_entries([[*D, "--orig-dst", "10.96.0.10"], [*D, "--dport", "30053"]])
    assert n == 2
    assert calls.read_text().splitlines() == ["-D -p udp --orig-dst 10.96.0.10",
                                              "-D -p udp --dport 30053"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("deleted 2 stale conntrack entries" in r.getMessage() for r in caplog.records)


async def test_runner_logs_real_failures_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    calls = fake_conntrack(tmp_path, """
case "$*" in
  *10.96.0.10*) echo "conntrack v1.4.7 (conntrack-tools): Operation not permitted" >&2; exit 1;;
  *) echo "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted." >&2;;
esac""")
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.ERROR, logger="pocketkube.proxy.conntrack"):
        n = await delete_entries([[*D, "--orig-dst", "10.96.0.10"], [*D, "--dport", "30053"]])
    assert n == 1 and len(calls.read_text().splitlines()) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "Operation not permitted" in errors[0]


async def test_missing_tool_warns_once_and_runs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(conntrack, "_missing_logged", False)
    with caplog.at_level(logging.WARNING, logger="pocketkube.proxy.conntrack"):
        assert await delete_entries([[*D, "--orig-dst", "10.96.0.10"]]) == 0
        assert await delete_entries([[*D, "--orig-dst", "10.96.0.11"]]) == 0
        assert await delete_entries([]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "conntrack not found: stale UDP conntrack entries will not be deleted "
        "(install the conntrack package)"]


# Run in a network namespace of its own: loopback up, and one rule that uses conntrack, which
# makes the kernel track that namespace's flows whatever the host's rules are.
IN_NETNS = """
set -e
ip link set lo up
iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT
exec "$0" - <<'PY'
import asyncio, json, logging, socket, subprocess
from pocketkube.proxy.conntrack import delete_entries
logging.basicConfig(level=logging.ERROR, format="ERROR %(message)s")
D = ["conntrack", "-D", "-p", "udp"]
listed = ["conntrack", "-L", "-p", "udp", "--orig-dst", "127.0.0.78"]
out = {"nothing": asyncio.run(delete_entries([[*D, "--orig-dst", "127.0.0.78"]]))}
# A datagram to a port nobody listens on leaves an [UNREPLIED] entry for 30 s.
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.sendto(b"x", ("127.0.0.78", 45123))
out["before"] = subprocess.run(listed, capture_output=True, text=True).stdout
out["other"] = asyncio.run(delete_entries([[*D, "--orig-dst", "127.0.0.78",
                                            "--reply-src", "10.1.0.5"]]))
out["deleted"] = asyncio.run(delete_entries([[*D, "--orig-dst", "127.0.0.78",
                                              "--reply-src", "127.0.0.78"]]))
out["after"] = subprocess.run(listed, capture_output=True, text=True).stdout
print(json.dumps(out))
PY
"""


def test_real_tool_deletes_a_udp_flow_in_a_private_namespace() -> None:
    assert conntrack.available(), "the conntrack tool is needed (apt-get install conntrack)"
    assert os.geteuid() == 0, "conntrack and network namespaces need root"
    repo = Path(__file__).resolve().parents[3]
    proc = subprocess.run(["unshare", "--net", "sh", "-c", IN_NETNS, sys.executable],
                          capture_output=True, text=True, cwd=repo, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stderr
    assert "ERROR" not in proc.stderr  # exit status 1 with nothing to delete is no error
    out = json.loads(proc.stdout)
    assert out["nothing"] == 0
    assert "dst=127.0.0.78 sport=" in out["before"] and "[UNREPLIED]" in out["before"]
    assert out["other"] == 0  # the reply source must match too
    assert out["deleted"] == 1
    assert out["after"] == ""
