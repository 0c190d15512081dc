"""Workload controllers benchmark: a Deployment of many replicas on many simulated nodes.

    python bench/controllers.py [--nodes 1000] [--replicas 1000] [--timeout 900]

It starts its own `pocketkube server --simulated-nodes N` (SQLite, temp data dir), waits for the
nodes to be Ready, then measures:

- rollout: the time from creating a Deployment of `--replicas` pods until its status reports
  every replica updated and available (what `kubectl rollout status` waits for);
- rolling update: the same after changing the image (maxSurge/maxUnavailable 25%);
- API requests per pod made by the controller manager during each phase, by resource, and those
  of the scheduler and the simulated nodes for comparison.

Requests are counted inside the server's processes: the benchmark puts a `sitecustomize` module
on PYTHONPATH that wraps `ApiClient.request` and `ApiClient.watch` and writes the per-component
counts (the client's User-Agent) to a file every half second. The controller manager's figure
includes every controller it runs; with no Services or orphans the workload controllers make
nearly all of it, and the per-resource lines show where it goes.

A benchmark, not a test: it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/controllers.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pocketkube.client.rest import ApiClient, ClientConfig, resource  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402

log = logging.getLogger("pocketkube.bench.controllers")
NODES, NAMESPACES = resource("", "nodes"), resource("", "namespaces")
DEPLOYMENTS = resource("apps", "deployments")
NS = "bench"

COUNTER = '''
import atexit, json, os, threading, time
from collections import Counter

_out = os.environ["POCKETKUBE_BENCH_COUNTS"]
_counts = Counter()

def _install():
    from pocketkube.client import rest

    def where(path):
        parts = path.split("?")[0].strip("/").split("/")
        if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
            parts = parts[parts.index("namespaces") + 2:]
        elif parts[0] == "api":
            parts = parts[2:]
        else:
            parts = parts[3:]
        sub = "/" + parts[2] if len(parts) > 2 else ""
        return (parts[0] if parts else "") + sub

    orig_request, orig_watch = rest.ApiClient.request, rest.ApiClient.watch

    async def request(self, method, path, *a, **kw):
        _counts[f"{self.config.user_agent} {method} {where(path)}"] += 1
        return await orig_request(self, method, path, *a, **kw)

    def watch(self, r, *a, **kw):
        _counts[f"{self.config.user_agent} WATCH {r.plural}"] += 1
        return orig_watch(self, r, *a, **kw)

    rest.ApiClient.request, rest.ApiClient.watch = request, watch

def _dump():
    tmp = f"{_out}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(dict(_counts), f)
    os.replace(tmp, f"{_out}.{os.getpid()}")

def _loop():
    while True:
        time.sleep(0.5)
        _dump()

try:
    _install()
    threading.Thread(target=_loop, daemon=True).start()
    atexit.register(_dump)
except Exception:
    pass
'''


def read_counts(base: Path) -> Counter[str]:
    total: Counter[str] = Counter()
    for f in base.parent.glob(base.name + ".*"):
        if f.suffix == ".tmp":
            continue
        try:
            total.update(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return total


def deployment(replicas: int, image: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "web", "image": image}]}}}}


def complete(d: dict[str, Any], replicas: int) -> bool:
    st = d.get("status") or {}
    return st.get("observedGeneration", 0) >= d["metadata"].get("generation", 1) and \
        st.get("updatedReplicas") == replicas and st.get("replicas") == replicas and \
        st.get("availableReplicas") == replicas


async def wait_complete(client: ApiClient, replicas: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = await client.get(DEPLOYMENTS, "web", NS)
        if complete(d, replicas):
            return
        rv = d["metadata"]["resourceVersion"]
        try:
            async for _, obj in client.watch(DEPLOYMENTS, NS, rv, timeout=30,
                                             field_selector="metadata.name=web"):
                if complete(obj, replicas):
                    return
                if time.monotonic() > deadline:
                    break
        except Exception as e:  # a 410 or a dropped stream: look again
            log.info("watch ended: %s", e)
    raise TimeoutError(f"rollout not complete after {timeout}s")


async def wait_nodes(client: ApiClient, n: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        items = (await client.list(NODES)).get("items") or []
        ready = sum(1 for node in items for c in (node.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Ready" and c.get("status") == "True")
        if ready >= n:
            return time.monotonic() - start
        await asyncio.sleep(1.0)
    raise TimeoutError(f"{n} nodes not Ready after {timeout}s")


def report(title: str, seconds: float, before: Counter[str], after: Counter[str],
           pods: int) -> None:
    diff = after - before
    print(f"\n{title}: {seconds:.1f}s ({pods / seconds:.1f} pods/s)")
    agents: Counter[str] = Counter()
    for k, v in diff.items():
        agents[k.split(" ", 1)[0]] += v
    for agent, n in agents.most_common():
        print(f"  {agent:<32} {n:>7} requests  {n / pods:6.2f} per pod")
    print("  controller manager by verb and resource:")
    for k, v in sorted(diff.items(), key=lambda kv: -kv[1]):
        agent, what = k.split(" ", 1)
        if agent == "pocketkube-controller-manager" and v >= max(2, pods // 100):
            print(f"    {what:<40} {v:>7}")


async def run(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="pocketkube-bench-ctl-"))
    site = base / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(COUNTER)
    counts = base / "counts"
    os.environ["POCKETKUBE_BENCH_COUNTS"] = str(counts)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")])
    cluster = Cluster(base / "cluster", extra_args=["--simulated-nodes", str(args.nodes)])
    cluster.start(timeout=120)
    client = ApiClient(ClientConfig.from_data_dir(cluster.data_dir, cluster.url,
                                                  "pocketkube-bench"))
    try:
        took = await wait_nodes(client, args.nodes, args.timeout)
        print(f"{args.nodes} simulated nodes Ready after {took:.1f}s")
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NS}})
        c0 = read_counts(counts)
        t0 = time.monotonic()
        await client.create(DEPLOYMENTS, deployment(args.replicas, "nginx:1.25"), NS)
        await wait_complete(client, args.replicas, args.timeout)
        t1 = time.monotonic()
        await asyncio.sleep(1.0)  # let the counters reach their files
        c1 = read_counts(counts)
        report(f"rollout of {args.replicas} replicas", t1 - t0, c0, c1, args.replicas)
        t2 = time.monotonic()
        await client.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.26"}]}}}}, NS, "strategic")
        await wait_complete(client, args.replicas, args.timeout)
        t3 = time.monotonic()
        await asyncio.sleep(1.0)
        c2 = read_counts(counts)
        report("rolling update to a new image", t3 - t2, c1, c2, args.replicas)
    finally:
        await client.close()
        cluster.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
