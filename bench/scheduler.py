"""Scheduler benchmark: pods bound per second and creation-to-bind latency on large clusters.

    python bench/scheduler.py [--nodes 100 1000 5000] [--warmup 1000] [--pods 10000]
                              [--where server|separate] [--profile]

For each cluster size it starts its own `pocketkube server` (SQLite, temp data dir), creates the
Node objects directly (Ready, 32 cpu / 128Gi / 250 pods each), places `--warmup` pods first and
waits for them, then creates `--pods` more as fast as the API takes them and measures:

- pods/s bound: the average of the per-second counts of bindings (seen on a watch), over the
  seconds from the first to the last binding of the measured pods;
- p50/p99 from creation (the create request's response) to bind (the watch event carrying
  spec.nodeName);
- the server's resident memory (VmRSS, and the peak VmHWM) after the run.

`--where server` (default) measures the scheduler as `pocketkube server` runs it, inside the
server process beside the API server. `--where separate` runs a Scheduler in this benchmark
process instead (pods name it as their schedulerName, so the server's own scheduler leaves them
alone): the API server and the scheduler then each have a core. `--profile` samples the process
that schedules with py-spy and prints where its time goes.

A benchmark, not a test: it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/scheduler.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pocketkube.client.rest import ApiClient, ClientConfig, resource  # noqa: E402
from pocketkube.scheduler.scheduler import Scheduler  # noqa: E402
from tests.support.server_proc import ServerProcess  # noqa: E402

log = logging.getLogger("pocketkube.bench.scheduler")
PODS, NODES, NAMESPACES = resource("", "pods"), resource("", "nodes"), resource("", "namespaces")
NS = "bench"
CONCURRENCY = 48


def node(i: int) -> dict[str, Any]:
    res = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "100Gi"}
    name = f"node-{i:05}"
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "topology.kubernetes.io/zone": f"z{i % 3}"}},
            "status": {"capacity": res, "allocatable": res,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, scheduler: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"schedulerName": scheduler, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "10m",
                                                                "memory": "16Mi"}}}]}}


async def create_all(client: ApiClient, objs: list[dict], r: Any,
                     created: dict[str, float] | None = None) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(o: dict) -> None:
        async with sem:
            await client.create(r, o, o["metadata"].get("namespace"))
            if created is not None:
                created[o["metadata"]["name"]] = time.monotonic()

    await asyncio.gather(*(one(o) for o in objs))


class BindWatch:
    """Watches the namespace's pods; records when each first shows a nodeName."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.bound: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def run(self) -> None:
        lst = await self.client.list(PODS, NS)
        rv = lst["metadata"]["resourceVersion"]
        while True:
            async for _, obj in self.client.watch(PODS, NS, rv, 600):
                rv = obj["metadata"].get("resourceVersion", rv)
                name = obj["metadata"]["name"]
                if (obj.get("spec") or {}).get("nodeName") and name not in self.bound:
                    self.bound[name] = time.monotonic()
                    self.changed.set()

    async def wait_for(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(n in self.bound for n in names):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sum(1 for n in names if n not in self.bound)
                raise TimeoutError(f"{missing} pods still unbound after {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 5))


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (the components process of a `pocketkube server`)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds `pid` has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def start_profile(pid: int, seconds: int, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log.warning("py-spy not found; no profile")
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200",
                             "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 24) -> list[tuple[str, float]]:
    """Self time per function from py-spy's collapsed stacks, as fractions of all samples."""
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        count = int(n)
        total += count
        self_time[frames[-1]] += count
        # Inclusive share of the scheduler's own code paths.
        for area, marker in AREAS.items():
            if any(marker in f for f in frames):
                self_time[area] += count
    return [(f, c / total) for f, c in self_time.most_common(top)] if total else []


AREAS = {
    "[all] scheduling cycles (filter, score, assume)": "schedule_one (pocketkube/scheduler",
    "[all] scheduler informer handlers": "pocketkube/scheduler/eventhandlers.py",
    "[all] scheduler API writes (bind, status)": "pocketkube/scheduler/apicalls.py",
    "[all] event recording": "pocketkube/client/events.py",
    "[all] API server request handling": "pocketkube/apiserver/",
    "[all] storage": "pocketkube/storage/",
}


async def run_size(n_nodes: int, warmup: int, measured: int, where: str,
                   profile: bool, backlog: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pk-bench-sched-"))
    server = ServerProcess(tmp / "data")
    await asyncio.to_thread(server.start)
    client = ApiClient(ClientConfig(server.url, server.ca_cert, server.admin_cert,
                                    server.admin_key, user_agent="bench"), max_connections=64)
    sched_client = None
    clients: list[ApiClient] = []
    tasks: list[asyncio.Task] = []
    try:
        await client.create(NAMESPACES, {"metadata": {"name": NS}})
        t0 = time.monotonic()
        await create_all(client, [node(i) for i in range(n_nodes)], NODES)
        log.info("%d nodes created in %.1fs", n_nodes, time.monotonic() - t0)
        scheduler_name = "default-scheduler"
        if where == "separate":
            scheduler_name = "bench-scheduler"
            sched_client = ApiClient(ClientConfig(server.url, server.ca_cert, server.admin_cert,
                                                  server.admin_key, user_agent="bench-sched"))
            sched = Scheduler(sched_client, scheduler_name=scheduler_name)
            tasks.append(asyncio.create_task(sched.run()))
        watch = BindWatch(client)
        tasks.append(asyncio.create_task(watch.run()))
        warm = [pod(f"warm-{i}", scheduler_name) for i in range(warmup)]
        await create_all(client, warm, PODS)
        await watch.wait_for([p["metadata"]["name"] for p in warm], 600)
        log.info("%d warm-up pods bound", warmup)

        prof_path = tmp / "profile.txt"
        spy = None
        components = child_pids(server.proc.pid)
        if profile and not backlog:
            # The scheduler runs in the server's components process (its child).
            pid = (components[0] if components else server.proc.pid) if where == "server" \
                else os.getpid()
            spy = start_profile(pid, 20, prof_path)
        cpu_pids = {"api server": server.proc.pid, "components": components[0] if components
                    else None, "benchmark": os.getpid()}
        cpu_before = {k: cpu_seconds(v) for k, v in cpu_pids.items()}
        created: dict[str, float] = {}
        if backlog:
            # Pods wait for a scheduler that starts only once they all exist: the drain rate
            # is the scheduler's own (binding included), not the API server's create rate.
            scheduler_name = "bench-backlog"
        pods = [pod(f"p-{i}", scheduler_name) for i in range(measured)]
        start = time.monotonic()
        await create_all(client, pods, PODS, created)
        create_seconds = time.monotonic() - start
        if backlog:
            backlog_client = ApiClient(ClientConfig(
                server.url, server.ca_cert, server.admin_cert, server.admin_key,
                user_agent="bench-backlog"))
            clients.append(backlog_client)
            if profile:
                spy = start_profile(os.getpid(), 20, prof_path)
            tasks.append(asyncio.create_task(
                Scheduler(backlog_client, scheduler_name=scheduler_name).run()))
        await watch.wait_for(list(created), 1800)
        if spy is not None:
            await asyncio.to_thread(spy.wait)
        binds = sorted(watch.bound[n] for n in created)
        latencies = [watch.bound[n] - created[n] for n in created]
        first = binds[0]
        per_second = collections.Counter(int(t - first) for t in binds)
        seconds = max(per_second) + 1
        cpu = {k: (cpu_seconds(v) - cpu_before[k]) * 1000 / measured
               for k, v in cpu_pids.items() if v is not None}
        rss, hwm = memory_kib(server.proc.pid)
        crss = memory_kib(components[0])[0] if components else 0
        return {
            "cpu_ms_per_pod": cpu, "components_rss_mib": crss / 1024,
            "nodes": n_nodes, "pods": measured,
            "where": where + (", backlog" if backlog else ""),
            "create_rate": measured / create_seconds,
            "bind_rate": statistics.mean(per_second.get(s, 0) for s in range(seconds)),
            "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "rss_mib": rss / 1024, "hwm_mib": hwm / 1024,
            "profile": summarize_profile(prof_path) if profile else [],
        }
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if sched_client is not None:
            await sched_client.close()
        for c in clients:
            await c.close()
        await client.close()
        await asyncio.to_thread(server.stop)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--where", choices=("server", "separate"), default="server")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--backlog", action="store_true",
                    help="create the measured pods first, then start a scheduler for them")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("pocketkube.scheduler").setLevel(logging.WARNING)
    rows = [asyncio.run(run_size(n, args.warmup, args.pods, args.where, args.profile,
                                 args.backlog)) for n in args.nodes]
    print(f"\nscheduler benchmark ({rows[0]['where']}): {args.warmup} warm-up pods, "
          f"then {args.pods} measured")
    print(f"{'nodes':>6} {'creates/s':>10} {'binds/s':>9} {'p50 s':>7} {'p99 s':>7} "
          f"{'server RSS MiB':>15} {'peak MiB':>9} {'components MiB':>15}")
    for r in rows:
        print(f"{r['nodes']:>6} {r['create_rate']:>10.0f} {r['bind_rate']:>9.0f} "
              f"{r['p50']:>7.2f} {r['p99']:>7.2f} {r['rss_mib']:>15.0f} {r['hwm_mib']:>9.0f} "
              f"{r['components_rss_mib']:>15.0f}")
    print("\nCPU per measured pod (ms), by process:")
    for r in rows:
        print(f"{r['nodes']:>6} " + "  ".join(f"{k} {v:.2f}" for k, v in
                                           r["cpu_ms_per_pod"].items()))
    for r in rows:
        if r["profile"]:
            print(f"\nprofile, {r['nodes']} nodes (self time of the scheduling process):")
            for frame, share in r["profile"]:
                print(f"  {share * 100:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
