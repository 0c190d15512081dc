"""Cluster DNS benchmark: queries per second and latency over UDP on loopback.

    python bench/dns.py [--services 100] [--queries 20000] [--window 32]

A DnsServer (pocketkube.dns.server) runs in a child process on 127.0.0.1 with a ClusterView of
`--services` services: half ClusterIP with two named ports, half headless with three ready
endpoints each. This process asks a mix of questions (A of ClusterIP services, A of headless
services, SRV of named ports, A of endpoint hostnames, names that do not exist) from a plain
blocking UDP socket and prints:

- sequential: one query in flight: queries/s and latency p50/p90/p99/max (target p99 ≤ 5 ms);
- windowed: `--window` queries in flight: queries/s;
- reference: `resolve()` alone (no sockets, no wire format) in the server's process, answers/s,
  measured in the same run so the figures can be read against this machine.

A benchmark, not a test: it asserts nothing about timing. `run(services, queries, window)`
returns the figures for other benchmarks (e.g. a network benchmark) to print.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/dns.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnslib import QTYPE, DNSRecord  # noqa: E402

from pocketkube.dns.answer import Zone, resolve  # noqa: E402
from pocketkube.dns.server import DnsServer  # noqa: E402
from pocketkube.dns.upstream import Upstream  # noqa: E402
from pocketkube.dns.view import ClusterView  # noqa: E402

NS = "bench"


def cluster(services: int) -> ClusterView:
    svcs, slices = [], []
    for i in range(services):
        name = f"svc-{i:04}"
        ports = [{"name": "http", "port": 80, "protocol": "TCP"},
                 {"name": "metrics", "port": 9090, "protocol": "TCP"}]
        headless = i % 2 == 1
        ip = "None" if headless else f"10.96.{i // 250}.{i % 250 + 1}"
        svcs.append({"metadata": {"name": name, "namespace": NS},
                     "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports}})
        eps = [{"addresses": [f"10.244.{i % 250}.{j + 1}"], "conditions": {"ready": True},
                "hostname": f"{name}-{j}"} for j in range(3)]
        slices.append({"metadata": {"name": f"{name}-x", "namespace": NS,
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4", "endpoints": eps, "ports": ports})
    return ClusterView.from_objects(svcs, slices, [NS, "default", "kube-system"])


def questions(services: int) -> list[tuple[str, str]]:
    out = []
    for i in range(services):
        base = f"svc-{i:04}.{NS}.svc.cluster.local"
        out.append((base, "A"))
        out.append((f"_http._tcp.{base}", "SRV"))
        if i % 2:
            out.append((f"svc-{i:04}-1.{base}", "A"))
        out.append((f"missing-{i}.{NS}.svc.cluster.local", "A"))
    return out


def serve(services: int, conn: Connection) -> None:
    """The child process: the server, and the in-process reference on request."""
    async def main() -> None:
        view = cluster(services)
        server = DnsServer(view, Zone(), Upstream([]))
        port = await server.start("127.0.0.1", 0)
        conn.send(port)
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg == "stop":
                break
            conn.send(reference(view, questions(services), msg))
        await server.close()

    asyncio.run(main())


def reference(view: ClusterView, qs: list[tuple[str, str]], n: int) -> float:
    zone = Zone()
    typed = [(name + ".", getattr(QTYPE, t)) for name, t in qs]
    start = time.perf_counter()
    for i in range(n):
        name, qtype = typed[i % len(typed)]
        resolve(view, zone, name, qtype)
    return n / (time.perf_counter() - start)


def packets(qs: list[tuple[str, str]]) -> list[bytes]:
    return [DNSRecord.question(name, t).pack() for name, t in qs]


def sequential(port: int, pkts: list[bytes], n: int) -> tuple[float, list[float]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(5)
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        sock.send(pkts[i % len(pkts)])
        sock.recv(4096)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    sock.close()
    return n / elapsed, latencies


def windowed(port: int, pkts: list[bytes], n: int, window: int) -> float:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    start = time.perf_counter()
    sent = received = 0
    while sent < min(window, n):
        sock.send(pkts[sent % len(pkts)])
        sent += 1
    while received < n:
        sock.recv(4096)
        received += 1
        if sent < n:
            sock.send(pkts[sent % len(pkts)])
            sent += 1
    elapsed = time.perf_counter() - start
    sock.close()
    return n / elapsed


def run(services: int = 100, queries: int = 20000, window: int = 32) -> dict[str, Any]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=serve, args=(services, child), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        pkts = packets(questions(services))
        sequential(port, pkts, min(1000, queries))  # warm up
        qps, lat = sequential(port, pkts, queries)
        wqps = windowed(port, pkts, queries, window)
        parent.send(queries)
        ref = parent.recv()
        parent.send("stop")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    lat_ms = sorted(x * 1000 for x in lat)

    def pct(p: float) -> float:
        return lat_ms[min(len(lat_ms) - 1, int(p * len(lat_ms)))]

    return {"services": services, "queries": queries, "sequential_qps": qps,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": lat_ms[-1], "mean_ms": statistics.fmean(lat_ms),
            "window": window, "windowed_qps": wqps, "reference_answers_per_s": ref}


def report(f: dict[str, Any]) -> str:
    return "\n".join([
        f"cluster DNS over UDP on loopback, {f['services']} services, "
        f"{f['queries']} queries per figure",
        f"  sequential (1 in flight): {f['sequential_qps']:8.0f} queries/s   "
        f"p50 {f['p50_ms']:.3f} ms  p90 {f['p90_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms  "
        f"max {f['max_ms']:.3f} ms   (target p99 <= 5 ms: "
        f"{'met' if f['p99_ms'] <= 5 else 'MISSED'})",
        f"  windowed ({f['window']} in flight):  {f['windowed_qps']:8.0f} queries/s",
        f"  reference resolve() alone: {f['reference_answers_per_s']:8.0f} answers/s",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--window", type=int, default=32)
    args = ap.parse_args()
    print(report(run(args.services, args.queries, args.window)))


if __name__ == "__main__":
    main()
