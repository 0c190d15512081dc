"""Memory of a cluster holding many objects: `pocketkube server` with N nodes and M pods.

    python bench/memory.py [--nodes 5000] [--pods 30000]

Starts its own server (SQLite, temp data dir), creates N Ready Node objects and M pods already
bound to them (spec.nodeName set, so no scheduling work), waits until the API's list shows them
all, lets the components' informers settle, then prints the resident memory (VmRSS and the peak
VmHWM) of the API server process and of its components process, and the on-disk store size.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.server_proc import ServerProcess  # noqa: E402

CONCURRENCY = 32


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "250"},
                       "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "250"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, node_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "mem", "shard": name[-1]}},
            "spec": {"nodeName": node_name, "containers": [{
                "name": "app", "image": "busybox:1.36",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


def memory(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(c) for c in text)
    return out


async def create_all(session: aiohttp.ClientSession, url: str, docs: list[tuple[str, dict]]
                     ) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(path: str, doc: dict) -> None:
        async with sem, session.post(url + path, data=orjson.dumps(doc),
                                     headers={"Content-Type": "application/json"}) as r:
            await r.read()
            if r.status != 201:
                raise RuntimeError(f"create {path} answered {r.status}")

    await asyncio.gather(*(one(p, d) for p, d in docs))


async def run(n_nodes: int, n_pods: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pocketkube-bench-mem-") as tmp:
        server = ServerProcess(Path(tmp) / "data", log_level="warning")
        await asyncio.to_thread(server.start)
        try:
            ctx: ssl.SSLContext = server.ssl_context()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx,
                                                                            limit=64)) as s:
                t0 = time.monotonic()
                await create_all(s, server.url, [("/api/v1/nodes", node(f"n-{i}"))
                                                 for i in range(n_nodes)])
                await create_all(s, server.url, [
                    ("/api/v1/namespaces/default/pods", pod(f"p-{i}", f"n-{i % n_nodes}"))
                    for i in range(n_pods)])
                took = time.monotonic() - t0
                async with s.get(server.url + "/api/v1/pods?limit=1") as r:
                    assert r.status == 200
                await asyncio.sleep(5)  # let the components' informers take in the last events
            server_mem = memory(server.pid)
            kids = [(c, memory(c)) for c in children(server.pid)]
            db = sum(f.stat().st_size for f in (Path(tmp) / "data" / "db").iterdir())
            print(f"\n{n_nodes} nodes and {n_pods} pods created in {took:.1f} s "
                  f"({(n_nodes + n_pods) / took:.0f} objects/s)")
            print(f"API server process      RSS {server_mem[0]:5d} MiB  peak {server_mem[1]:5d} MiB")
            for pid, (rss, peak) in kids:
                print(f"components process {pid:<5d}  RSS {rss:5d} MiB  peak {peak:5d} MiB")
            print(f"SQLite store on disk    {db / 2**20:.0f} MiB")
        finally:
            await asyncio.to_thread(server.stop)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=30000)
    args = ap.parse_args()
    asyncio.run(run(args.nodes, args.pods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
