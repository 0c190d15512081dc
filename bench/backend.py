"""Raw storage write rate: creates per second straight into a backend, no API server in between.

`raw_write_rate` is the reference other benchmarks print next to their own figures (e.g. the API
server's create rate), so the cost above the store is visible. Run directly to see what group
commit buys: one writer waits for a full commit per create, many concurrent writers share them.

    python -m bench.backend [--n 2000] [--concurrency 1 50] [--etcd 127.0.0.1:2379]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from pocketkube.storage.etcd import EtcdBackend
from pocketkube.storage.interface import Backend
from pocketkube.storage.sqlite import SQLiteBackend

VALUE = b"x" * 1024  # about the size of a small Pod object


async def raw_write_rate(backend: Backend, n: int, concurrency: int) -> float:
    """Create `n` fresh keys with `concurrency` writers in parallel; returns creates/s.
    `backend` must be started; the keys go under a prefix of their own (/bench/raw/<uuid>/)."""
    prefix = f"/bench/raw/{uuid.uuid4().hex}/"
    remaining = iter(range(n))

    async def writer() -> None:
        for i in remaining:  # a shared iterator: each index goes to exactly one writer
            await backend.create(f"{prefix}{i:08d}", VALUE)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(max(1, concurrency))))
    return n / (time.perf_counter() - started)


async def _report(name: str, backend: Backend, n: int, levels: list[int]) -> None:
    await backend.start()
    try:
        for concurrency in levels:
            rate = await raw_write_rate(backend, n, concurrency)
            print(f"{name:7s} {concurrency:4d} concurrent writers: {rate:10.0f} creates/s")
    finally:
        await backend.close()


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        await _report("sqlite", SQLiteBackend(Path(tmp) / "state.db"), args.n, args.concurrency)
    if args.etcd:
        await _report("etcd", EtcdBackend(args.etcd.split(",")), args.n, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="creates per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--etcd", help="also measure etcd at host:port[,host:port]")
    parser.add_argument("--dir", help="where the SQLite file goes (default: the system temp)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
