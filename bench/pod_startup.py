"""Pod start-up benchmark: how fast the node agent turns new pods into running containers.

    python bench/pod_startup.py [--batches 10 30 100]

It starts its own `pocketkube server` with the node agent (SQLite, temp data dir; runc + CNI
when run as root), then for each batch size creates that many busybox pods (`sleep 3600`) at
once and measures, for each pod, the time from its create request's response to the watch
event that shows it Running with every container started — Kubernetes' pod start-up latency
SLI (its SLO is p99 ≤ 5 s). Between batches the pods are deleted and the benchmark waits
until they are gone. It also prints the memory of the process that runs the node agent (the
server's components process) after each batch.

A benchmark, not a test: it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/pod_startup.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scheduler import child_pids, memory_kib, pct  # noqa: E402
from pocketkube.client.rest import ApiClient, ClientConfig, resource  # noqa: E402
from tests.support.server_proc import ServerProcess  # noqa: E402

log = logging.getLogger("pocketkube.bench.pod_startup")
PODS, NODES, NAMESPACES = resource("", "pods"), resource("", "nodes"), resource("", "namespaces")
NS = "bench"


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"b": "1"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}]}}


def running(obj: dict[str, Any]) -> bool:
    st = obj.get("status") or {}
    return st.get("phase") == "Running" and all(
        "running" in (c.get("state") or {}) for c in st.get("containerStatuses") or [{}])


class Watcher:
    """Records when each pod is first seen Running, and when each is gone."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.running: dict[str, float] = {}
        self.names: set[str] = set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        rv = ""
        while True:  # the server ends a watch after its timeout: go on from where it stopped
            async for typ, obj in self.client.watch(PODS, NS, resource_version=rv):
                rv = obj["metadata"].get("resourceVersion", rv)
                if typ == "BOOKMARK":
                    continue
                name, now = obj["metadata"]["name"], time.monotonic()
                if typ == "DELETED":
                    self.names.discard(name)
                else:
                    self.names.add(name)
                    if running(obj) and name not in self.running:
                        self.running[name] = now
                self.changed.set()

    async def until(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not done after {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 2))


async def batch(client: ApiClient, watch: Watcher, size: int, tag: str) -> list[float]:
    names = [f"{tag}-{i}" for i in range(size)]
    created: dict[str, float] = {}

    async def create(name: str) -> None:
        await client.create(PODS, pod(name), NS)
        created[name] = time.monotonic()

    await asyncio.gather(*(create(n) for n in names))
    await watch.until(lambda: all(n in watch.running for n in names), 300, f"batch {size}")
    latencies = [watch.running[n] - created[n] for n in names]
    await asyncio.gather(*(client.delete(PODS, n, NS) for n in names))
    await watch.until(lambda: not (watch.names & set(names)), 300, "deleting the batch")
    return latencies


async def main_async(batches: list[int]) -> tuple[str, list[dict[str, Any]]]:
    tmp = Path(tempfile.mkdtemp(prefix="pk-bench-startup-"))
    server = ServerProcess(tmp / "data", node_agent=True)
    await asyncio.to_thread(server.start)
    client = ApiClient(ClientConfig(server.url, server.ca_cert, server.admin_cert,
                                    server.admin_key, user_agent="bench"))
    rows = []
    runtime = ""
    watch_task = None
    try:
        await client.create(NAMESPACES, {"metadata": {"name": NS}})
        t0 = time.monotonic()
        while not (nodes := (await client.list(NODES))["items"]):
            if time.monotonic() - t0 > 120:
                raise TimeoutError("no node registered")
            await asyncio.sleep(0.5)
        runtime = nodes[0]["status"]["nodeInfo"]["containerRuntimeVersion"]
        watch = Watcher(client)
        watch_task = asyncio.create_task(watch.run())
        await batch(client, watch, 1, "warmup")  # the image and the network, once
        agent_pid = (child_pids(server.proc.pid) or [server.proc.pid])[0]
        for i, size in enumerate(batches):
            lat = await batch(client, watch, size, f"b{i}-{size}")
            rss, hwm = memory_kib(agent_pid)
            rows.append({"size": size, "p50": pct(lat, 50), "p99": pct(lat, 99),
                         "max": max(lat), "rss": rss / 1024, "hwm": hwm / 1024})
            log.info("batch of %d: p50 %.2fs p99 %.2fs", size, rows[-1]["p50"], rows[-1]["p99"])
    finally:
        if watch_task is not None:
            watch_task.cancel()
            await asyncio.gather(watch_task, return_exceptions=True)
        await client.close()
        await asyncio.to_thread(server.delete)
        shutil.rmtree(tmp, ignore_errors=True)
    return runtime, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 30, 100])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    runtime, rows = asyncio.run(main_async(args.batches))
    print(f"\npod start-up (creation → Running seen on a watch), one node, {runtime}")
    print(f"{'pods':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'agent RSS MiB':>14} "
          f"{'peak MiB':>9}")
    for r in rows:
        print(f"{r['size']:>5} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.2f} "
              f"{r['rss']:>14.0f} {r['hwm']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
