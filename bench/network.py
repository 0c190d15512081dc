"""Network programming latency: the time from an endpoints change to the proxy's rules being in
place, over many Services (pocketkube's target: p99 ≤ 1 s with 100 Services).

    python bench/network.py [--services 100] [--mode iptables|userspace] [--dns-queries 20000]

It starts its own `pocketkube server` (no node agent, SQLite, temp data dir) and runs the proxy
component in this process against it (iptables mode needs root). It creates N selector-less
ClusterIP Services, each with an EndpointSlice of two endpoints (addresses in 10.251.0.0/16,
which nothing on the host uses; no packet is ever sent), then changes one endpoint address per
Service and measures, per change, the time from sending the EndpointSlice update to the end of
the sync (`iptables-restore` returned) whose rules send traffic to the new address:

- one at a time: each change waits for the previous one to be in the rules;
- burst: all N changes sent at once (the coalescing window gathers them into few syncs).

It also prints the duration of the syncs themselves. The proxy's rules are removed at the end
(cleanup), as is the server. Then it measures cluster DNS over the same number of Services
(bench/dns.py: queries per second and latency on loopback, target p99 ≤ 5 ms; 0 queries skips
it). A benchmark, not a test: it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/network.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dns  # noqa: E402
from bench.scheduler import pct  # noqa: E402
from pocketkube.client.rest import ApiClient, ClientConfig, resource  # noqa: E402
from pocketkube.components import ComponentContext  # noqa: E402
from pocketkube.config import ServerConfig  # noqa: E402
from pocketkube.proxy import component  # noqa: E402
from pocketkube.proxy.changetracker import Snapshot  # noqa: E402
from pocketkube.proxy.model import SERVICE_NAME_LABEL  # noqa: E402
from pocketkube.proxy.rules import RuleSet  # noqa: E402
from tests.support.server_proc import ServerProcess  # noqa: E402

log = logging.getLogger("pocketkube.bench.network")
SERVICES = resource("", "services")
SLICES = resource("discovery.k8s.io", "endpointslices")
NAMESPACES = resource("", "namespaces")
NS = "bench"
NODE = "bench-node"


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"s{i}"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def addr(i: int, n: int) -> str:
    """Endpoint address number n of service i (n: 0 fixed, 1 initial, 2 and 3 the changes)."""
    return f"10.251.{n * 16 + i // 250}.{i % 250 + 1}"


def eslice(i: int, second: str) -> dict[str, Any]:
    eps = [{"addresses": [a], "conditions": {"ready": True}, "nodeName": NODE}
           for a in (addr(i, 0), second)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-bench", "labels": {
                SERVICE_NAME_LABEL: f"s{i}", "endpointslice.kubernetes.io/managed-by": "bench"}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class Arrivals:
    """When each endpoint address first appears in the applied rules."""

    def __init__(self) -> None:
        self.wanted: dict[str, asyncio.Future[float]] = {}
        self.sync_seconds: list[float] = []

    def expect(self, ip: str) -> asyncio.Future[float]:
        fut = asyncio.get_running_loop().create_future()
        self.wanted[ip] = fut
        return fut

    def iptables_synced(self, rs: RuleSet) -> None:
        now = time.monotonic()
        if not self.wanted:
            return
        dests = {r.rsplit("--to-destination ", 1)[1].split(":")[0]
                 for r in rs.nat_rules if "--to-destination" in r}
        self._found(dests, now)

    def userspace_synced(self, snap: Snapshot) -> None:
        dests = {e.ip for _, eps in snap.services for e in eps}
        self._found(dests, time.monotonic())

    def _found(self, dests: set[str], now: float) -> None:
        for ip in [ip for ip in self.wanted if ip in dests]:
            fut = self.wanted.pop(ip)
            if not fut.done():
                fut.set_result(now)


async def change(client: ApiClient, arrivals: Arrivals, i: int, n: int) -> float:
    new = addr(i, n)
    landed = arrivals.expect(new)
    sent = time.monotonic()
    await client.update(SLICES, {**eslice(i, new), "metadata": {
        **eslice(i, new)["metadata"], "namespace": NS}})
    return await asyncio.wait_for(landed, 30) - sent


async def main_async(n: int, mode: str | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pk-bench-network-"))
    server = ServerProcess(tmp / "data")
    await asyncio.to_thread(server.start)
    cfg = ClientConfig(server.url, server.ca_cert, server.admin_cert, server.admin_key,
                       user_agent="bench")
    client, proxy_client = ApiClient(cfg), ApiClient(cfg)
    task = None
    result: dict[str, Any] = {}
    try:
        await client.create(NAMESPACES, {"metadata": {"name": NS}})
        sem = asyncio.Semaphore(16)

        async def setup(i: int) -> None:
            async with sem:
                await client.create(SERVICES, service(i), NS)
                await client.create(SLICES, eslice(i, addr(i, 1)), NS)

        await asyncio.gather(*(setup(i) for i in range(n)))
        ctx = ComponentContext("proxy", ServerConfig(data_dir=tmp / "data"), proxy_client,
                               {"node_name": NODE, "mode": mode})
        proxy = component.Proxy(ctx, component.ProxyOptions.from_dict(ctx.options))
        arrivals = Arrivals()
        if proxy.mode == "iptables":
            proxy.proxier.listeners.append(arrivals.iptables_synced)  # type: ignore[union-attr]
        else:
            inner = proxy.proxier.sync

            async def sync(snap: Snapshot) -> None:
                await inner(snap)
                arrivals.userspace_synced(snap)

            proxy.tracker._sync = sync
        ready = arrivals.expect(addr(n - 1, 1))
        task = asyncio.create_task(proxy.run())
        await asyncio.wait_for(ready, 120)
        syncs_before = proxy.tracker.syncs
        one = [await change(client, arrivals, i, 2) for i in range(n)]
        syncs_one = proxy.tracker.syncs - syncs_before
        syncs_before = proxy.tracker.syncs
        burst = await asyncio.gather(*(change(client, arrivals, i, 3) for i in range(n)))
        syncs_burst = proxy.tracker.syncs - syncs_before
        sync_s = getattr(proxy.proxier, "sync_seconds", 0.0)
        result = {"mode": proxy.mode, "one": one, "burst": list(burst),
                  "syncs_one": syncs_one, "syncs_burst": syncs_burst, "last_sync": sync_s}
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if result.get("mode") == "iptables":
            await component.cleanup()
        await client.close()
        await proxy_client.close()
        await asyncio.to_thread(server.delete)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--mode", choices=["iptables", "userspace"], default=None)
    ap.add_argument("--dns-queries", type=int, default=20000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    r = asyncio.run(main_async(args.services, args.mode))
    print(f"\nendpoints change → rules in place, {args.services} services, {r['mode']} mode "
          f"(target p99 ≤ 1 s)")
    print(f"{'changes':<14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'syncs':>6}")
    for name, key, syncs in (("one at a time", "one", "syncs_one"),
                             ("burst", "burst", "syncs_burst")):
        lat = [x * 1000 for x in r[key]]
        print(f"{name:<14} {pct(lat, 50):>8.0f} {pct(lat, 99):>8.0f} {max(lat):>8.0f} "
              f"{r[syncs]:>6}")
    if r["mode"] == "iptables":
        print(f"last sync (render + iptables-restore): {r['last_sync'] * 1000:.0f} ms")
    if args.dns_queries > 0:
        print()
        print(dns.report(dns.run(args.services, args.dns_queries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
