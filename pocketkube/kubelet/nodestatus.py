"""The node agent's Node object (kube's pkg/kubelet/kubelet_node_status.go and
nodestatus/setters.go): registering the Node, reporting capacity, allocatable, addresses,
nodeInfo and the four conditions every 10 s when something changed (or once a minute
regardless), keeping the heartbeat Lease, and waiting for node IPAM to give the node its pod
CIDR. A restarted agent reuses its Node: labels are reconciled and the status is patched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pocketkube.api.errors import StatusError
from pocketkube.client.rest import ApiClient, resource
from pocketkube.client.workqueue import Clock
from pocketkube.kubelet.eviction import (
    MEMORY_AVAILABLE,
    NODEFS_AVAILABLE,
    allocatable_reservation,
    binary_si,
    existing,
)
from pocketkube.kubelet.lease import NodeLease

log = logging.getLogger("pocketkube.kubelet.nodestatus")

Obj = dict[str, Any]
NODES = resource("", "nodes")
KUBELET_VERSION = "v1.32.0"
UPDATE_INTERVAL = 10.0  # nodeStatusUpdateFrequency
REPORT_INTERVAL = 60.0  # a status write even when nothing changed
MAX_PODS = 110
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
          "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
# (type, reason and message when False, when True), in the kubelet's order.
PRESSURES = (
    ("MemoryPressure", ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
     ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
    ("DiskPressure", ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
     ("KubeletHasDiskPressure", "kubelet has disk pressure")),
    ("PIDPressure", ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
     ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_arch() -> str:
    machine = platform.machine().lower()
    return ARCHES.get(machine, machine)


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, val = line.partition("=")
        if key == "PRETTY_NAME":
            return val.strip().strip('"')
    return "Linux"


def machine_sizes(root: Path) -> tuple[int, int]:
    """(memory, root filesystem) sizes in bytes, as cAdvisor's machine info has them."""
    memory = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    st = os.statvfs(existing(root))
    return memory, st.f_blocks * st.f_frsize


def capacity(memory: int, storage: int) -> dict[str, str]:
    return {"cpu": str(os.cpu_count() or 1), "ephemeral-storage": binary_si(storage),
            "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": binary_si(memory),
            "pods": str(MAX_PODS)}


def allocatable(memory: int, storage: int) -> dict[str, str]:
    """Capacity minus the hard eviction thresholds (no system/kube reservations)."""
    return {**capacity(memory, storage),
            "memory": binary_si(memory - allocatable_reservation(memory, MEMORY_AVAILABLE)),
            "ephemeral-storage": binary_si(
                storage - allocatable_reservation(storage, NODEFS_AVAILABLE))}


def node_info(runtime_version: str) -> dict[str, str]:
    machine_id = _read("/etc/machine-id")
    return {
        "architecture": go_arch(),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "containerRuntimeVersion": runtime_version,
        "kernelVersion": os.uname().release,
        "kubeProxyVersion": KUBELET_VERSION,
        "kubeletVersion": KUBELET_VERSION,
        "machineID": machine_id,
        "operatingSystem": "linux",
        "osImage": os_image(),
        "systemUUID": _read("/sys/class/dmi/id/product_uuid", machine_id).lower(),
    }


class NodeStatus:
    def __init__(self, client: ApiClient, node_name: str, *, runtime_version: str,
                 kubelet_port: int, node_ip: str, labels: dict[str, str], root: Path,
                 clock: Clock) -> None:
        self.client = client
        self.node_name = node_name
        self.runtime_version = runtime_version
        self.kubelet_port = kubelet_port
        self.node_ip = node_ip
        self.labels = dict(labels)
        self.root = root
        self.clock = clock
        self.lease = NodeLease(client, node_name, clock=clock)
        self.node: Obj | None = None
        self.writes = 0  # status patches sent
        self._runtime_error = ""  # "" while the runtime is ready
        self._pressure = {t: False for t, _, _ in PRESSURES}
        self._last_report: float | None = None
        self._wake = asyncio.Event()

    # --- state other parts report --------------------------------------------------------------

    def set_runtime_ready(self, ready: bool, message: str = "container runtime is down") -> None:
        error = "" if ready else message
        if error != self._runtime_error:
            self._runtime_error = error
            self._wake.set()

    def set_pressure(self, condition: str, under_pressure: bool) -> None:
        if self._pressure.get(condition) != under_pressure:
            self._pressure[condition] = under_pressure
            self._wake.set()

    # --- the Node ------------------------------------------------------------------------------

    def default_labels(self) -> dict[str, str]:
        arch = go_arch()
        return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "kubernetes.io/hostname": self.node_name,
                "kubernetes.io/os": "linux", **self.labels}

    def _facts(self) -> Obj:
        """Everything in the status but the conditions (blocking: run in a thread)."""
        memory, storage = machine_sizes(self.root)
        return {
            # No InternalIP until the node knows it (the pod bridge's gateway comes with the
            # pod range, which the cluster assigns after registration).
            "addresses": [*([{"address": self.node_ip, "type": "InternalIP"}]
                            if self.node_ip else []),
                          {"address": self.node_name, "type": "Hostname"}],
            "allocatable": allocatable(memory, storage),
            "capacity": capacity(memory, storage),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": node_info(self.runtime_version),
        }

    def conditions(self, old: list[Obj], now: str) -> list[Obj]:
        """The four conditions with a fresh heartbeat; a transition time moves only when the
        condition's status does."""
        previous = {c.get("type"): c for c in old or []}
        wanted = []
        for type_, ok, bad in PRESSURES:
            reason, message = bad if self._pressure[type_] else ok
            wanted.append((type_, "True" if self._pressure[type_] else "False", reason, message))
        if self._runtime_error:
            wanted.append(("Ready", "False", "KubeletNotReady", self._runtime_error))
        else:
            wanted.append(("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
        out = []
        for type_, status, reason, message in wanted:
            prev = previous.get(type_) or {}
            same = prev.get("status") == status and prev.get("lastTransitionTime")
            out.append({"lastHeartbeatTime": now,
                        "lastTransitionTime": prev["lastTransitionTime"] if same else now,
                        "message": message, "reason": reason, "status": status,
                        "type": type_})
        return out

    async def register(self) -> Obj:
        """Create the Node, or take over the existing one; the Node with its status."""
        facts = await asyncio.to_thread(self._facts)
        now = now_rfc3339()
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": self.default_labels(),
                             "annotations": {
                                 "volumes.kubernetes.io/controller-managed-attach-detach":
                                     "true"}},
                "spec": {}, "status": {**facts, "conditions": self.conditions([], now)}}
        try:
            node = await self.client.create(NODES, body)
            log.info("registered node %s", self.node_name)
        except StatusError as e:
            if e.code != 409:
                raise
            node = await self.client.patch(NODES, self.node_name, {"metadata": {
                "labels": self.default_labels(),
                "annotations": body["metadata"]["annotations"]}})
            log.info("node %s already exists; updating it", self.node_name)
        self.node = node
        self.lease.node_uid = node["metadata"]["uid"]
        await self.update_status(force=True)
        try:
            await self.lease.renew()  # the first heartbeat at once, as the kubelet's lease loop
        except StatusError as e:
            log.warning("failed to create lease for node %s: %s", self.node_name, e)
        assert self.node is not None
        return self.node

    async def update_status(self, force: bool = False) -> bool:
        """Patch the status if it changed, if a report is due, or with `force`; whether a
        write happened."""
        node = await self.client.get(NODES, self.node_name)
        old = node.get("status") or {}
        facts = await asyncio.to_thread(self._facts)
        conditions = self.conditions(old.get("conditions") or [], now_rfc3339())
        changed = any(old.get(k) != v for k, v in facts.items()) or \
            _comparable(old.get("conditions") or []) != _comparable(conditions)
        due = self._last_report is None or \
            self.clock.now() - self._last_report >= REPORT_INTERVAL
        if not (force or changed or due):
            self.node = node
            return False
        self.node = await self.client.patch(NODES, self.node_name,
                                            {"status": {**facts, "conditions": conditions}},
                                            subresource="status")
        self._last_report = self.clock.now()
        self.writes += 1
        return True

    async def wait_pod_cidr(self) -> str:
        """The node's spec.podCIDR, waiting (watching the Node) until node IPAM sets it."""
        while True:
            node = await self.client.get(NODES, self.node_name)
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                return cidr
            try:
                async for type_, obj in self.client.watch(
                        NODES, resource_version=node["metadata"]["resourceVersion"],
                        timeout=60, field_selector=f"metadata.name={self.node_name}"):
                    if type_ in ("ADDED", "MODIFIED"):
                        cidr = (obj.get("spec") or {}).get("podCIDR")
                        if cidr:
                            return cidr
            except StatusError as e:
                if e.code != 410:
                    raise

    async def run(self) -> None:
        """Status every 10 s (sooner when a reported state changes) and lease renewals."""
        lease = asyncio.ensure_future(self.lease.run())
        try:
            while True:
                try:
                    await self.update_status()
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("failed to update node %s status: %s", self.node_name, e)
                await self._sleep(UPDATE_INTERVAL)
        finally:
            lease.cancel()

    async def _sleep(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
        self._wake.clear()


def _comparable(conditions: list[Obj]) -> list[tuple]:
    return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                  for c in conditions)

