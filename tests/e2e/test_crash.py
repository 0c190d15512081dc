"""Crash safety of the API server: kill -9 in the middle of a write stream, restart, check.

For the SQLite datastore and for a real etcd, the test streams creates and updates of ConfigMaps
from 8 concurrent clients while a watch follows them, kills the server with SIGKILL after a few
hundred writes were acknowledged, restarts it on the same data dir (and the same etcd), then
checks what a client relies on:

- every write that got a 2xx answer is still there, at that resourceVersion or a later one;
- the revision sequence continues: a new write gets a larger resourceVersion than any before;
- watching again from the last resourceVersion the first watch delivered misses nothing: it
  delivers every acknowledged write after that point and the current version of every object
  changed after it, in increasing resourceVersion order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.etcd import start_etcd
from tests.support.server_proc import ServerProcess

NS = "crash"
WRITERS = 8
KILL_AFTER = 300  # acknowledged writes before the SIGKILL
PHASE_TIMEOUT = 60.0
CM = f"/api/v1/namespaces/{NS}/configmaps"


@pytest.fixture(params=["sqlite", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    etcd = start_etcd(tmp_path / "etcd") if request.param == "etcd" else None
    datastore = f"etcd://{etcd.endpoints[0]}" if etcd else "sqlite"
    proc = ServerProcess(tmp_path / "data", datastore=datastore)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        if etcd:
            etcd.stop()


@contextlib.asynccontextmanager
async def session_for(server: ServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=server.ssl_context(), limit=32)
    async with aiohttp.ClientSession(server.url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


async def call(s: aiohttp.ClientSession, method: str, path: str, body: object = None) -> dict:
    async with s.request(method, path, data=None if body is None else orjson.dumps(body),
                         headers={"Content-Type": "application/json"}) as resp:
        raw = await resp.read()
        if not 200 <= resp.status < 300:
            raise AssertionError(f"{method} {path}: HTTP {resp.status}: {raw[:500]!r}")
        return orjson.loads(raw)


def configmap(name: str, seq: int, rv: str | None = None) -> dict:
    meta = {"name": name} if rv is None else {"name": name, "resourceVersion": rv}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"seq": str(seq)}}


@dataclass
class Watch:
    """One watch stream's events as (name, resourceVersion), and how it ended."""

    events: list[tuple[str, int]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    until: int = 0  # set `arrived` once an event at this revision or later came

    async def follow(self, s: aiohttp.ClientSession, rv: int) -> None:
        """Read until the stream ends; a connection broken by the crash is an end, not a failure."""
        params = {"watch": "true", "resourceVersion": str(rv)}
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with s.get(CM, params=params,
                             timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
                assert resp.status == 200, await resp.text()
                async for line in resp.content:
                    ev = orjson.loads(line)
                    if ev["type"] == "ERROR":
                        self.errors.append(ev["object"])
                        continue
                    meta = ev["object"]["metadata"]
                    self.events.append((meta["name"], int(meta["resourceVersion"])))
                    if self.until and self.events[-1][1] >= self.until:
                        self.arrived.set()


@dataclass
class Writers:
    """Concurrent creates and updates; `acked` holds every write that got a 2xx answer."""

    acked: list[tuple[str, int, int]] = field(default_factory=list)  # (name, rv, seq)
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    kill_after: int = KILL_AFTER

    async def writer(self, s: aiohttp.ClientSession, w: int, tag: str, limit: int) -> None:
        rnd = random.Random(w)
        mine: dict[str, str] = {}  # name -> resourceVersion of our last acknowledged write
        for seq in range(limit):
            if not mine or rnd.random() < 0.4:
                name, body = f"{tag}-{w}-{seq}", configmap(f"{tag}-{w}-{seq}", seq)
                obj = await call(s, "POST", CM, body)
            else:
                name = rnd.choice(sorted(mine))
                obj = await call(s, "PUT", f"{CM}/{name}", configmap(name, seq, mine[name]))
            assert "resourceVersion" in obj["metadata"], f"2xx answer without a resourceVersion: {obj}"
            mine[name] = obj["metadata"]["resourceVersion"]
            self.acked.append((name, int(mine[name]), seq))
            if len(self.acked) >= self.kill_after:
                self.enough.set()

    async def run_until_failure(self, s: aiohttp.ClientSession, tag: str) -> None:
        """Write until the server goes away (each writer stops at its first failed request)."""
        async def one(w: int) -> None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                await self.writer(s, w, tag, 100_000)

        await asyncio.gather(*(one(w) for w in range(WRITERS)))


async def test_kill9_loses_no_acknowledged_write_and_no_watch_event(
        server: ServerProcess) -> None:
    # Phase 1: writes and a watch, then SIGKILL mid-stream.
    async with session_for(server) as s:
        await call(s, "POST", "/api/v1/namespaces",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        start_rv = int((await call(s, "GET", CM))["metadata"]["resourceVersion"])
        first = Watch()
        watching = asyncio.create_task(first.follow(s, start_rv))
        writers = Writers()
        writing = asyncio.create_task(writers.run_until_failure(s, "pre"))
        enough = asyncio.ensure_future(writers.enough.wait())
        async with asyncio.timeout(PHASE_TIMEOUT):
            await asyncio.wait({enough, writing}, return_when=asyncio.FIRST_COMPLETED)
        if writing.done():  # the writers stopped before the crash: surface why
            enough.cancel()
            writing.result()
            raise AssertionError(f"writers stopped early:\n{server.log_tail()}")
        server.kill()
        async with asyncio.timeout(PHASE_TIMEOUT):
            await writing
            await watching
    pre = writers.acked
    assert len(pre) >= KILL_AFTER, server.log_tail()
    assert first.events, "the first watch delivered nothing before the crash"
    assert not first.errors, first.errors
    last_seen = first.events[-1][1]
    assert last_seen > start_rv

    # Phase 2: restart on the same data, watch again from the last delivered revision.
    await asyncio.to_thread(server.start)
    async with session_for(server) as s:
        stored = await call(s, "GET", CM)
        now = {o["metadata"]["name"]: o for o in stored["items"]}
        second = Watch()
        resumed = asyncio.create_task(second.follow(s, last_seen))

        # Every acknowledged write survived, at its revision or later.
        latest: dict[str, tuple[int, int]] = {}
        for name, rv, seq in pre:
            latest[name] = max(latest.get(name, (0, 0)), (rv, seq))
        lost = {n: rv for n, (rv, _) in latest.items()
                if n not in now or int(now[n]["metadata"]["resourceVersion"]) < rv}
        assert not lost, f"acknowledged writes lost after kill -9: {sorted(lost.items())[:10]}"
        stale = {n for n, (rv, seq) in latest.items()
                 if int(now[n]["metadata"]["resourceVersion"]) == rv
                 and now[n]["data"]["seq"] != str(seq)}
        assert not stale, f"objects at an acknowledged revision with other content: {stale}"

        # The revision sequence continues past everything written before the crash.
        highest = max(max(rv for _, rv, _ in pre),
                      max(int(o["metadata"]["resourceVersion"]) for o in now.values()))
        after = Writers(kill_after=40)
        async with asyncio.timeout(PHASE_TIMEOUT):
            await asyncio.gather(*(after.writer(s, w, "post", 5) for w in range(WRITERS)))
        assert min(rv for _, rv, _ in after.acked) > highest

        # The resumed watch delivers every change after `last_seen`, in order.
        second.until = max(rv for _, rv, _ in after.acked)
        if second.events and second.events[-1][1] >= second.until:
            second.arrived.set()
        async with asyncio.timeout(PHASE_TIMEOUT):
            await asyncio.wait({resumed, asyncio.ensure_future(second.arrived.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
        assert not second.errors, (
            f"watch from resourceVersion {last_seen} after the restart failed: {second.errors}")
        final = {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"])
                 for o in (await call(s, "GET", CM))["items"]}
        resumed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resumed

    revisions = [rv for _, rv in second.events]
    assert revisions == sorted(set(revisions)), "resumed watch out of order or repeated"
    assert all(rv > last_seen for rv in revisions)
    delivered = set(second.events)
    want_acked = {(n, rv) for n, rv, _ in pre + after.acked if rv > last_seen}
    assert want_acked <= delivered, (
        f"{len(want_acked - delivered)} acknowledged writes after resourceVersion {last_seen} "
        f"never reached the resumed watch, e.g. {sorted(want_acked - delivered)[:5]}")
    want_current = {(n, rv) for n, rv in final.items() if rv > last_seen}
    assert want_current <= delivered, sorted(want_current - delivered)[:5]
    # And the first watch, up to where it stopped, had everything acknowledged before that.
    before = {(n, rv) for n, rv, _ in pre if rv <= last_seen}
    assert before <= set(first.events), sorted(before - set(first.events))[:5]
