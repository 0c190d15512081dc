"""API server benchmark: what a client sees over HTTPS, next to the raw store measured in the same run.

    python bench/api.py [--backend sqlite|etcd|both] [--n 2000] [--paced-seconds 30]

For each backend it starts its own `pocketkube server` (temp data dir; for etcd also a throwaway
etcd) and drives it with one aiohttp session using the admin client certificate over keep-alive
connections (TLS verified against the cluster CA). It prints:

- creates of ConfigMaps at concurrency 1 and 32 (throughput and latency), the raw backend's
  create rate at the same concurrency, and their ratio (API writes/s ÷ raw writes/s);
- create latency under a steady, open-loop load (20 creates/s: requests are sent on schedule
  whatever earlier ones are doing, so a slow request cannot hide the ones queued behind it);
- GET of one object and LIST of 500 objects as JSON and as a server-side Table;
- watch fan-out: 1000 watch streams on one namespace, then one change at a time; the figure is
  the time from sending the write until the last of the 1000 streams has received the event.

A benchmark, not a test: it asserts nothing about timing. Every figure includes the client, which
shares the machine (and, on two cores, a core) with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as `python bench/api.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backend import raw_write_rate  # noqa: E402
from pocketkube.storage.etcd import EtcdBackend  # noqa: E402
from pocketkube.storage.interface import Backend  # noqa: E402
from pocketkube.storage.sqlite import SQLiteBackend  # noqa: E402
from tests.support.etcd import start_etcd  # noqa: E402
from tests.support.server_proc import ServerProcess  # noqa: E402

log = logging.getLogger("pocketkube.bench.api")

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
PAYLOAD = "x" * 900  # a ConfigMap of about 1 KiB stored, the size bench/backend.py writes
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float
    latencies: list[float]  # seconds, one per request

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        """The q-th percentile latency in milliseconds (nearest rank)."""
        s = sorted(self.latencies)
        return 1000 * s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


class Client:
    """The few API calls the benchmark makes, each returning its latency in seconds."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def _call(self, method: str, path: str, want: int, body: object = None,
                    accept: str = "application/json") -> tuple[float, bytes]:
        data = orjson.dumps(body) if body is not None else None
        started = time.perf_counter()
        async with self.session.request(method, self.url + path, data=data, headers={
                "Accept": accept, "Content-Type": "application/json"}) as resp:
            raw = await resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != want:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {raw[:300]!r}")
        return elapsed, raw

    async def namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self._call("POST", "/api/v1/namespaces", 201, body)

    async def create(self, ns: str, name: str) -> float:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"payload": PAYLOAD}}
        return (await self._call("POST", f"/api/v1/namespaces/{ns}/configmaps", 201, body))[0]

    async def get(self, ns: str, name: str) -> float:
        return (await self._call("GET", f"/api/v1/namespaces/{ns}/configmaps/{name}", 200))[0]

    async def list(self, ns: str, accept: str = "application/json") -> tuple[float, bytes]:
        return await self._call("GET", f"/api/v1/namespaces/{ns}/configmaps", 200, None, accept)


async def closed_loop(name: str, count: int, concurrency: int,
                      op: Callable[[int], Awaitable[float]]) -> Result:
    """`count` calls of op(i), `concurrency` at a time, each starting when a previous ends."""
    indices = iter(range(count))
    latencies: list[float] = []

    async def worker() -> None:
        for i in indices:  # shared iterator: each index is taken by exactly one worker
            latencies.append(await op(i))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, concurrency, time.perf_counter() - started, latencies)


async def paced(name: str, rate: float, seconds: float,
                op: Callable[[int], Awaitable[float]]) -> Result:
    """Open-loop load: request i is sent at start + i/rate whether or not earlier ones ended."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(op(i)))
    latencies = list(await asyncio.gather(*tasks))
    return Result(name, 0, loop.time() - start, latencies)


async def watch_fanout(client: Client, ns: str, watchers: int, changes: int,
                       ssl_ctx: object) -> list[float]:
    """Seconds from sending each change until all `watchers` streams delivered it."""
    _, raw = await client.list(ns)
    rv = orjson.loads(raw)["metadata"]["resourceVersion"]
    # Own connections: one per stream, so the request session's pool is left alone.
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=0)
    received = [[0.0] * watchers for _ in range(changes)]
    counts = [0] * changes
    done = [asyncio.Event() for _ in range(changes)]
    path = f"{client.url}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}"
    async with aiohttp.ClientSession(connector=connector) as session:
        opened: list[aiohttp.ClientResponse] = []
        gate = asyncio.Semaphore(64)  # TLS handshakes cost the server CPU: do not open all at once

        async def open_one() -> None:
            async with gate:
                resp = await session.get(path, timeout=aiohttp.ClientTimeout(total=None))
                if resp.status != 200:
                    raise RuntimeError(f"watch: HTTP {resp.status}")
                opened.append(resp)

        await asyncio.gather(*(open_one() for _ in range(watchers)))
        log.info("%d watch streams open", len(opened))

        async def reader(w: int, resp: aiohttp.ClientResponse) -> None:
            seen = 0
            while seen < changes:
                line = await resp.content.readline()
                if not line:
                    return
                received[seen][w] = time.perf_counter()
                counts[seen] += 1
                if counts[seen] == watchers:
                    done[seen].set()
                seen += 1

        readers = [asyncio.create_task(reader(w, r)) for w, r in enumerate(opened)]
        spans = []
        try:
            for k in range(changes):
                sent = time.perf_counter()
                await client.create(ns, f"change-{k}")
                await asyncio.wait_for(done[k].wait(), 30)
                spans.append(max(received[k]) - sent)
        finally:
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for r in opened:
                r.close()
    return spans


async def raw_rate(kind: str, etcd_endpoints: list[str], tmp: Path, n: int,
                   concurrency: int) -> float:
    """The raw store's create rate on a fresh backend of the same kind (same etcd, own prefix)."""
    backend: Backend
    if kind == "sqlite":
        backend = SQLiteBackend(tmp / f"raw-{uuid.uuid4().hex}.db")
    else:
        backend = EtcdBackend(etcd_endpoints)
    await backend.start()
    try:
        return await raw_write_rate(backend, n, concurrency)
    finally:
        await backend.close()


@contextmanager
def running_server(kind: str, tmp: Path) -> Iterator[tuple[ServerProcess, list[str]]]:
    etcd = start_etcd(tmp / "etcd") if kind == "etcd" else None
    try:
        datastore = f"etcd://{etcd.endpoints[0]}" if etcd else "sqlite"
        server = ServerProcess(tmp / "data", datastore=datastore)
        server.start()
        try:
            yield server, etcd.endpoints if etcd else []
        finally:
            server.stop()
    finally:
        if etcd:
            etcd.stop()


async def run_backend(kind: str, args: argparse.Namespace, tmp: Path,
                      server: ServerProcess, endpoints: list[str]) -> dict[str, object]:
    ssl_ctx = server.ssl_context()
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=64, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        c = Client(session, server.url)
        for ns in ("bench-create", "bench-paced", "bench-read", "bench-watch"):
            await c.namespace(ns)
        rows: list[Result] = []
        ratios: list[tuple[int, float, float]] = []
        for conc in (1, 32):
            tag = uuid.uuid4().hex[:6]
            log.info("%s: %d creates at concurrency %d", kind, args.n, conc)
            res = await closed_loop("create", args.n, conc,
                                    lambda i, t=tag: c.create("bench-create", f"c-{t}-{i}"))
            rows.append(res)
            raw = await raw_rate(kind, endpoints, tmp, args.n, conc)
            ratios.append((conc, res.rate, raw))
        log.info("%s: paced creates for %.0fs", kind, args.paced_seconds)
        rows.append(await paced(f"create @{args.rate:g}/s", args.rate, args.paced_seconds,
                                lambda i: c.create("bench-paced", f"p-{i}")))
        await closed_loop("setup", 500, 32, lambda i: c.create("bench-read", f"r-{i:03d}"))
        for conc in (1, 32):
            rows.append(await closed_loop("get", args.n, conc,
                                          lambda i: c.get("bench-read", f"r-{i % 500:03d}")))
        for fmt, accept in (("JSON", "application/json"), ("Table", TABLE_ACCEPT)):
            for conc in (1, 4):
                async def one(i: int, accept: str = accept) -> float:
                    return (await c.list("bench-read", accept))[0]
                rows.append(await closed_loop(f"list 500 ({fmt})", args.lists, conc, one))
        log.info("%s: watch fan-out to %d streams", kind, args.watchers)
        spans = await watch_fanout(c, "bench-watch", args.watchers, args.changes, ssl_ctx)
    return {"rows": rows, "ratios": ratios, "fanout": spans}


def report(console: Console, kind: str, figures: dict[str, object], args: argparse.Namespace,
           ) -> None:
    table = Table(title=f"pocketkube API server — {kind}", title_justify="left")
    for col in ("operation", "concurrency", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for r in figures["rows"]:  # type: ignore[attr-defined]
        table.add_row(r.name, str(r.concurrency or "paced"), str(len(r.latencies)),
                      f"{r.rate:,.0f}", f"{r.pct(50):.1f}", f"{r.pct(90):.1f}", f"{r.pct(99):.1f}")
    console.print(table)
    ratio = Table(title=f"API creates vs raw {kind} creates", title_justify="left")
    for col in ("concurrency", "API creates/s", "raw creates/s", "API ÷ raw"):
        ratio.add_column(col, justify="right")
    for conc, api, raw in figures["ratios"]:  # type: ignore[attr-defined]
        ratio.add_row(str(conc), f"{api:,.0f}", f"{raw:,.0f}", f"{api / raw:.2f}")
    console.print(ratio)
    spans = [1000 * s for s in figures["fanout"]]  # type: ignore[attr-defined]
    console.print(f"watch fan-out ({kind}): {args.watchers} streams, {len(spans)} changes — "
                  f"time until every stream has the event: median {statistics.median(spans):.1f}"
                  f" ms, min {min(spans):.1f} ms, max {max(spans):.1f} ms\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "etcd", "both"), default="both")
    parser.add_argument("--n", type=int, default=2000, help="creates and gets per measurement")
    parser.add_argument("--rate", type=float, default=20.0, help="paced creates per second")
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--lists", type=int, default=40, help="lists per measurement")
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=7, help="changes sent to the watchers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("pocketkube.storage").setLevel(logging.WARNING)  # the raw stores' chatter
    console = Console()
    for kind in ("sqlite", "etcd") if args.backend == "both" else (args.backend,):
        with tempfile.TemporaryDirectory(prefix=f"pocketkube-bench-{kind}-") as d:
            tmp = Path(d)
            with running_server(kind, tmp) as (server, endpoints):
                figures = asyncio.run(run_backend(kind, args, tmp, server, endpoints))
        report(console, kind, figures, args)


if __name__ == "__main__":
    main()
