"""CniNetwork against the real CNI plugins: namespaces on a test bridge get addresses in the
subnet, reach each other, serve a hostPort on 127.0.0.1, and leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import secrets
import shlex
import signal
from pathlib import Path

import pytest

from pocketkube.kubelet.network.cni import CniNetwork
from pocketkube.kubelet.network.iptables import masquerade_chain
from pocketkube.kubelet.runtime.interface import PortMapping

pytestmark = pytest.mark.usefixtures("require_root")


async def sh(*argv: str, check: bool = True) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        raise
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} failed ({proc.returncode}): {text}")
    return proc.returncode or 0, text


def normalized_rules(saved: str, network: str) -> set[str]:
    """iptables-save output without counters, table headers and other networks' tagged rules."""
    lines = set()
    for line in saved.splitlines():
        if line.startswith(("#", "*", "COMMIT")):
            continue
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if policy != "-":  # built-in chains exist or not with the table itself
                continue
            line = f":{name}"
        elif 'name: \\"' in line and f'name: \\"{network}\\"' not in line:
            continue
        lines.add(line)
    return lines


class Pods:
    """Sandboxes made on one test network, torn down (with their processes) at the end."""

    def __init__(self, net: CniNetwork) -> None:
        self.net = net
        self.made: list[tuple[str, str, list[PortMapping]]] = []

    async def add(self, ports: list[PortMapping] | None = None) -> tuple[str, str, list[str]]:
        sid = secrets.token_hex(32)
        path = await self.net.create_netns(sid)
        self.made.append((sid, path, ports or []))
        ips = await self.net.setup(sid, path, ("default", f"pod-{sid[:6]}", sid[:8]), ports or [])
        return sid, path, ips

    async def kill_processes(self, path: str) -> None:
        _, out = await sh("ip", "netns", "pids", Path(path).name, check=False)
        for pid in out.split():
            if pid.isdigit():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    async def close(self) -> None:
        for sid, path, ports in self.made:
            await self.kill_processes(path)
            await self.net.teardown(sid, path, ports)


@pytest.fixture
async def network(tmp_path: Path):
    octet = random.randint(1, 254)
    bridge = f"pkt{secrets.token_hex(3)}"
    _, before = await sh("iptables-save")
    net = CniNetwork(tmp_path / "net", bridge=bridge, subnet=f"10.250.{octet}.0/24")
    pods = Pods(net)
    try:
        yield net, pods, before
    finally:
        try:
            await pods.close()
        finally:
            await net.cleanup()


async def serve(netns: str, address: str, content: str, tmp_path: Path) -> None:
    """busybox httpd inside the namespace; it is listening once the command returns (it binds
    before it daemonizes)."""
    root = tmp_path / f"www-{secrets.token_hex(3)}"
    root.mkdir()
    (root / "index.html").write_text(content)
    await sh("ip", "netns", "exec", Path(netns).name, "busybox", "httpd", "-p", address,
             "-h", str(root))  # fmt: skip


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    writer.write(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data.decode(errors="replace")


async def test_two_pods_get_distinct_addresses_and_reach_each_other(network, tmp_path):
    net, pods, _ = network
    subnet = ipaddress.ip_network(net.subnet)
    _, ns_a, ips_a = await pods.add()
    _, ns_b, ips_b = await pods.add()
    assert len(ips_a) == 1 and len(ips_b) == 1
    assert ips_a != ips_b
    assert ipaddress.ip_address(ips_a[0]) in subnet
    assert ipaddress.ip_address(ips_b[0]) in subnet
    token = secrets.token_hex(8)
    await serve(ns_a, "8080", token, tmp_path)
    _, body = await sh("ip", "netns", "exec", Path(ns_b).name, "busybox", "wget", "-q", "-O", "-", f"http://{ips_a[0]}:8080/index.html")  # fmt: skip
    assert body == token
    _, lo = await sh("ip", "netns", "exec", Path(ns_b).name, "ip", "-o", "link", "show", "lo")
    assert "UP" in lo


async def test_connect_reaches_a_loopback_listener_inside_the_namespace(network, tmp_path):
    net, pods, _ = network
    _, ns_a, _ = await pods.add()
    port = random.randint(20000, 29999)
    token = secrets.token_hex(8)
    await serve(ns_a, f"127.0.0.1:{port}", token, tmp_path)
    reader, writer = await net.connect(ns_a, port)
    response = await http_get(reader, writer)
    assert response.startswith("HTTP/1.1 200 OK")
    assert response.endswith(token)
    with pytest.raises(ConnectionRefusedError):
        await net.connect(ns_a, port + 1)


async def test_host_port_on_localhost_reaches_the_pod(network, tmp_path):
    net, pods, _ = network
    host_port = random.randint(30000, 32000)
    _, ns_a, _ = await pods.add([PortMapping(container_port=8080, host_port=host_port)])
    token = secrets.token_hex(8)
    await serve(ns_a, "8080", token, tmp_path)
    response = await http_get(*await asyncio.open_connection("127.0.0.1", host_port))
    assert response.endswith(token)


async def test_teardown_then_cleanup_leave_nothing(network, tmp_path):
    net, pods, before = network
    host_port = random.randint(30000, 32000)
    sid, ns_a, _ = await pods.add([PortMapping(container_port=80, host_port=host_port)])
    sid_b, ns_b, _ = await pods.add()
    _, veths = await sh("ip", "-o", "link", "show", "master", net.bridge)
    assert veths.count("veth") == 2

    await pods.close()
    pods.made.clear()
    await net.teardown(sid, ns_a, [])  # a second DEL of the same sandbox is fine
    _, names = await sh("ip", "netns", "list")
    assert Path(ns_a).name not in names and Path(ns_b).name not in names
    _, veths = await sh("ip", "-o", "link", "show", "master", net.bridge)
    assert veths.strip() == ""
    assert await net.sandboxes() == []

    # A sandbox whose namespace vanished before DEL, and the network's masquerade rule (there
    # as long as the network is): cleanup sweeps them too.
    sid_c, ns_c, _ = await pods.add()
    await sh("ip", "netns", "delete", Path(ns_c).name)
    _, during = await sh("iptables-save")
    assert f"-j {masquerade_chain(net.name)}" in during

    await net.cleanup()
    pods.made.clear()
    _, after = await sh("iptables-save")
    assert normalized_rules(after, net.name) == normalized_rules(before, net.name)
    assert not Path(f"/sys/class/net/{net.bridge}").exists()
    assert not (net.root / "ipam").exists()
    assert sid_b not in after and sid not in after
