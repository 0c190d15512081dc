"""Pod networking with the CNI reference plugins: one bridge per cluster, host-local IPAM over
the node's podCIDR, portmap for hostPort, loopback for `lo`, and one masquerade rule for the
whole subnet (iptables.ensure_masquerade, made once) rather than the bridge plugin's per-pod one.

Each sandbox gets a named network namespace (netns.py); `setup` runs the configuration list
(bridge + host-local, then portmap) on eth0 and, at the same time since they touch different
interfaces, the loopback plugin on lo, and caches the result so `teardown` can give it back to
DEL as prevResult, as libcni does. The network's name is the
bridge name, so the iptables rules the plugins tag with it (comments `name: "<bridge>" ...`) can
be found and removed by `cleanup` when the cluster is deleted, leaving other clusters' rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import shutil
from pathlib import Path

from pocketkube.kubelet.network import iptables, netns
from pocketkube.kubelet.network.plugins import (
    CNI_VERSION,
    CniError,
    Invocation,
    add_list,
    check_list,
    del_list,
    exec_plugin,
    plugin_config,
    result_ips,
)
from pocketkube.kubelet.runtime.interface import PortMapping

log = logging.getLogger(__name__)

__all__ = ["CniError", "CniNetwork"]


class CniNetwork:
    """The pod network of one node: `root` holds the IPAM state and cached results."""

    def __init__(self, root: Path, *, bridge: str, subnet: str,
                 plugin_dir: str = "/usr/lib/cni") -> None:  # fmt: skip
        self.root = Path(root)
        self.bridge = bridge
        self.subnet = subnet
        self.plugin_dir = Path(plugin_dir)
        self.name = bridge  # the CNI network name, written into the plugins' iptables comments
        self._ipam_dir = self.root / "ipam"
        self._results_dir = self.root / "results"
        self._masquerading = False
        self._masquerade_lock = asyncio.Lock()

    # --- configuration -----------------------------------------------------------------------

    def network_config(self, portmap: bool = True, ip_masq: bool = False) -> dict:
        """The configuration list: bridge (gateway, hairpin) with host-local IPAM over the
        subnet, then portmap for hostPorts (left out for a pod without any: one plugin run
        fewer on ADD and on DEL). The bridge's ipMasq is only on to DEL pods set up with it
        by an earlier version."""
        conf = {
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": ip_masq,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self._ipam_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }
        if not portmap:
            conf["plugins"] = conf["plugins"][:1]
        return conf

    @property
    def gateway(self) -> str:
        """The bridge's address: the first of the subnet, as host-local hands out gateways.
        The node is reachable from its pods here."""
        return str(next(ipaddress.ip_network(self.subnet, strict=False).hosts()))

    async def ensure_bridge(self) -> None:
        """Create the bridge with the gateway address now rather than at the first pod, so
        the node's address exists before any pod (hostNetwork pods never make it)."""
        if not await asyncio.to_thread(os.path.exists, f"/sys/class/net/{self.bridge}"):
            await netns.run("ip", "link", "add", self.bridge, "type", "bridge")
        prefix = ipaddress.ip_network(self.subnet, strict=False).prefixlen
        addrs = await netns.run("ip", "-o", "-4", "addr", "show", "dev", self.bridge)
        if f" {self.gateway}/" not in addrs:
            await netns.run("ip", "addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        await netns.run("ip", "link", "set", self.bridge, "up")
        await self.ensure_masquerade()

    async def ensure_masquerade(self) -> None:
        """The subnet's masquerade rule, checked once per agent (at the bridge or first pod)."""
        async with self._masquerade_lock:
            if not self._masquerading:
                await iptables.ensure_masquerade(self.name, self.subnet)
                self._masquerading = True

    async def guard_services(self, service_cidr: str) -> None:
        """Reject traffic to the service range that the service proxy did not translate, from
        pods and from this host: without the proxy's rules (not yet written, or removed) it
        would otherwise follow the default route off the machine. Tagged with the network's
        name, so `cleanup` removes these rules with the plugins' own."""
        comment = f'name: "{self.name}" id: "service-guard"'
        for chain, source in (("FORWARD", ["-s", self.subnet]), ("OUTPUT", [])):
            rule = [chain, *source, "-d", service_cidr, "-m", "conntrack", "!", "--ctstate",
                    "DNAT", "-m", "comment", "--comment", comment, "-j", "REJECT"]
            try:
                await netns.run("iptables", "-w", "-C", *rule)
            except netns.NetnsError:
                await netns.run("iptables", "-w", "-I", *rule)

    def loopback_config(self) -> dict:
        return {"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"}

    @staticmethod
    def _port_mappings(ports: list[PortMapping]) -> list[dict]:
        out = []
        for p in ports:
            if not p.host_port:
                continue
            entry = {"hostPort": p.host_port, "containerPort": p.container_port,
                     "protocol": (p.protocol or "TCP").lower()}  # fmt: skip
            if p.host_ip:
                entry["hostIP"] = p.host_ip
            out.append(entry)
        return out

    def _invocation(self, sandbox_id: str, netns_path: str, ifname: str,
                    pod: tuple[str, str, str] | None, ports: list[PortMapping]) -> Invocation:  # fmt: skip
        args = [("IgnoreUnknown", "1")]
        if pod is not None:
            namespace, name, uid = pod
            args += [("K8S_POD_NAMESPACE", namespace), ("K8S_POD_NAME", name),
                     ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id), ("K8S_POD_UID", uid)]  # fmt: skip
        return Invocation(container_id=sandbox_id, netns=netns_path, ifname=ifname, args=args,
                          runtime_config={"portMappings": self._port_mappings(ports)})  # fmt: skip

    def _result_path(self, sandbox_id: str) -> Path:
        return self._results_dir / f"{sandbox_id}.json"

    def _write_result(self, sandbox_id: str, record: dict) -> None:
        self._results_dir.mkdir(parents=True, exist_ok=True)
        path = self._result_path(sandbox_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def _read_result(self, sandbox_id: str) -> dict | None:
        try:
            return json.loads(self._result_path(sandbox_id).read_text())
        except (OSError, ValueError):
            return None

    # --- the contract --------------------------------------------------------------------------

    async def create_netns(self, sandbox_id: str) -> str:
        """A new network namespace for the sandbox (`pk-<id prefix>`); its path."""
        return await netns.create(netns.netns_name(sandbox_id))

    async def setup(self, sandbox_id: str, netns_path: str, pod: tuple[str, str, str],
                    ports: list[PortMapping]) -> list[str]:  # fmt: skip
        """Attach the namespace to the bridge (eth0) and bring lo up; the pod's IPs.
        On failure whatever was added is deleted again before the CniError propagates."""
        lo = Invocation(container_id=sandbox_id, netns=netns_path, ifname="lo")
        inv = self._invocation(sandbox_id, netns_path, "eth0", pod, ports)
        network = self.network_config(portmap=bool(ports))
        await self.ensure_masquerade()
        # Recorded before ADD so an interrupted setup is still torn down by cleanup().
        await asyncio.to_thread(self._write_result, sandbox_id,
                                {"netns": netns_path, "pod": list(pod), "result": None,
                                 "portmap": bool(ports), "ipMasq": False})  # fmt: skip
        try:
            loopback = plugin_config({"name": "cni-loopback", "cniVersion": CNI_VERSION},
                                     self.loopback_config(), lo, None)
            # Both run to the end (no task left running on failure); the first error counts.
            outcome = await asyncio.gather(exec_plugin(self.plugin_dir, "ADD", loopback, lo),
                                           add_list(self.plugin_dir, network, inv),
                                           return_exceptions=True)
            for item in outcome:
                if isinstance(item, BaseException):
                    raise item
            result = outcome[1]
        except BaseException:
            try:
                await self.teardown(sandbox_id, netns_path, ports, keep_netns=True)
            except Exception as exc:  # noqa: BLE001 - the ADD failure is the one to report
                log.warning("cleaning up after a failed network setup of %s: %s", sandbox_id, exc)
            raise
        await asyncio.to_thread(self._write_result, sandbox_id,
                                {"netns": netns_path, "pod": list(pod), "result": result,
                                 "portmap": bool(ports), "ipMasq": False})  # fmt: skip
        ips = result_ips(result)
        if not ips:
            raise CniError("bridge", "ADD", 1, f"no IP addresses in the result: {result}")
        log.info("sandbox %s: network %s, IPs %s", sandbox_id[:12], self.name, ips)
        return ips

    async def check(self, sandbox_id: str, netns_path: str, ports: list[PortMapping]) -> None:
        """CNI CHECK of the sandbox's attachment; raises CniError when it is broken."""
        record = await asyncio.to_thread(self._read_result, sandbox_id)
        if not record or not record.get("result"):
            raise CniError("bridge", "CHECK", 1, f"no cached result for {sandbox_id}")
        inv = self._invocation(sandbox_id, netns_path, "eth0", None, ports)
        network = self.network_config(record.get("portmap", True), record.get("ipMasq", True))
        await check_list(self.plugin_dir, network, inv, record["result"])

    async def teardown(self, sandbox_id: str, netns_path: str, ports: list[PortMapping],
                       *, keep_netns: bool = False) -> None:  # fmt: skip
        """DEL in reverse order (portmap, bridge + IPAM) with loopback's DEL alongside, then
        delete the namespace. Idempotent: DEL of something already gone succeeds, and a
        sandbox without a cached record (written before ADD, removed after a complete DEL)
        nor a namespace has nothing left to DEL (the runtime tears down on stop and again on
        removal)."""

        def look() -> tuple[dict | None, str]:
            exists = bool(netns_path) and os.path.exists(netns_path)
            return self._read_result(sandbox_id), netns_path if exists else ""

        record, ns_path = await asyncio.to_thread(look)
        if record is None and not ns_path:
            return
        prev = record.get("result") if record else None
        pod = tuple(record["pod"]) if record and record.get("pod") else None
        inv = self._invocation(sandbox_id, ns_path, "eth0", pod, ports)  # type: ignore[arg-type]
        portmap = bool(ports) or not record or record.get("portmap", True)
        ip_masq = not record or record.get("ipMasq", True)  # unknown: as set up before
        steps = [del_list(self.plugin_dir, self.network_config(portmap, ip_masq), inv, prev)]
        if ns_path:
            lo = Invocation(container_id=sandbox_id, netns=ns_path, ifname="lo")
            steps.append(exec_plugin(self.plugin_dir, "DEL", plugin_config(
                {"name": "cni-loopback", "cniVersion": CNI_VERSION}, self.loopback_config(),
                lo, None), lo))
        for item in await asyncio.gather(*steps, return_exceptions=True):
            if isinstance(item, BaseException):
                raise item
        if not keep_netns and netns_path:
            await netns.delete(netns_path)
        await asyncio.to_thread(self._result_path(sandbox_id).unlink, True)

    async def connect(self, netns_path: str, port: int
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
        """A TCP connection to 127.0.0.1:port inside the namespace (port-forward)."""
        return await netns.open_connection(netns_path, port)

    async def sandboxes(self) -> list[str]:
        """Ids of the sandboxes with network state here (set up and not torn down)."""

        def scan() -> list[str]:
            if not self._results_dir.is_dir():
                return []
            return sorted(p.stem for p in self._results_dir.glob("*.json"))

        return await asyncio.to_thread(scan)

    async def cleanup(self) -> None:
        """Remove everything this network put on the host: sandboxes still attached, the
        bridge, the IPAM state and the iptables rules and chains tagged with its name."""
        for sandbox_id in await self.sandboxes():
            record = await asyncio.to_thread(self._read_result, sandbox_id) or {}
            try:
                await self.teardown(sandbox_id, record.get("netns", ""), [])
            except Exception as exc:  # noqa: BLE001 - keep removing the rest
                log.warning("tearing down the network of %s: %s", sandbox_id, exc)
                await asyncio.to_thread(self._result_path(sandbox_id).unlink, True)
        if await asyncio.to_thread(os.path.exists, f"/sys/class/net/{self.bridge}"):
            await netns.run("ip", "link", "delete", self.bridge)
        await iptables.remove_network_rules(self.name)
        self._masquerading = False
        await asyncio.to_thread(shutil.rmtree, self._ipam_dir, True)
        await asyncio.to_thread(shutil.rmtree, self._results_dir, True)
