"""Crash safety of the API server: kill -9 in the middle of a write stream, restart, check.

For the SQLite datastore and for a real etcd, the test streams creates and updates of ConfigMaps
from 8 concurrent clients while a watch follows them, kills the server with SIGKILL after a few
hundred writes were acknowledged, restarts it on the same data dir (and the same etcd), then
checks what a client relies on:

- every write that got a 2xx answer is still there, at that resourceVersion or a later one;
- the revision sequence continues: a new write gets a larger resourceVersion than any before;
- watching again from the last resourceVersion the first watch delivered misses nothing. As in
  kube-apiserver, a restarted server's watch cache starts its history at the revision it loaded,
  so that watch may instead end at once with 410 Expired ("too old resource version"); a client
  then relists and watches from the list's resourceVersion. Either way nothing is silently
  skipped: the watch delivers, in increasing resourceVersion order, every acknowledged write after
  its starting point and the current version of every object changed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.etcd import start_etcd
from tests.support.server_proc import ServerProcess

log = logging.getLogger("pocketkube.tests.crash")

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
    """One watch stream's events as (name, resourceVersion), and its ERROR events."""

    events: list[tuple[str, int]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    async def follow(self, s: aiohttp.ClientSession, rv: int, until: int = 0) -> None:
        """Read until the stream ends or delivers revision `until`; a connection broken by the
        crash is an end, not a failure."""
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
                    if until and self.events[-1][1] >= until:
                        return


async def watch_until(s: aiohttp.ClientSession, rv: int, until: int) -> Watch:
    watch = Watch()
    async with asyncio.timeout(PHASE_TIMEOUT):
        await watch.follow(s, rv, until)
    return watch


def assert_no_gap(watch: Watch, since: int, acked: set[tuple[str, int]],
                  current: dict[str, int]) -> None:
    """`watch` started at `since` delivered every acknowledged write and every object's current
    version newer than `since`, in strictly increasing resourceVersion order."""
    revisions = [rv for _, rv in watch.events]
    assert revisions == sorted(set(revisions)), f"watch from {since} out of order or repeated"
    assert all(rv > since for rv in revisions), f"watch from {since} replayed older events"
    delivered = set(watch.events)
    missing = {(n, rv) for n, rv in acked if rv > since} - delivered
    assert not missing, (f"{len(missing)} acknowledged writes after resourceVersion {since} "
                         f"never reached the watch, e.g. {sorted(missing)[:5]}")
    missing = {(n, rv) for n, rv in current.items() if rv > since} - delivered
    assert not missing, f"current objects the watch from {since} missed: {sorted(missing)[:5]}"


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

    # Phase 2: restart on the same data dir (and the same etcd).
    await asyncio.to_thread(server.start)
    async with session_for(server) as s:
        stored = await call(s, "GET", CM)
        list_rv = int(stored["metadata"]["resourceVersion"])
        now = {o["metadata"]["name"]: o for o in stored["items"]}

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
        highest = max([rv for _, rv, _ in pre] +
                      [int(o["metadata"]["resourceVersion"]) for o in now.values()])
        assert list_rv >= highest
        after = Writers(kill_after=10**9)
        async with asyncio.timeout(PHASE_TIMEOUT):
            await asyncio.gather(*(after.writer(s, w, "post", 5) for w in range(WRITERS)))
        assert min(rv for _, rv, _ in after.acked) > highest

        # Resume watching from the last revision the first watch delivered.
        newest = max(rv for _, rv, _ in after.acked)
        since = last_seen
        second = await watch_until(s, since, newest)
        if second.errors:
            # kube's answer when the restarted cache's history starts after `since`: exactly one
            # 410 Expired and the end of the stream; the client relists and watches from there.
            assert len(second.errors) == 1 and not second.events, second
            status = second.errors[0]
            assert (status["code"], status["reason"]) == (410, "Expired"), status
            assert status["message"].startswith(f"too old resource version: {since} ("), status
            since = list_rv
            second = await watch_until(s, since, newest)
            assert not second.errors, second.errors
        final = {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"])
                 for o in (await call(s, "GET", CM))["items"]}

    log.info("%d writes acknowledged before the kill; first watch reached %d, store at %d after "
             "restart; second watch from %d (%s) delivered %d events", len(pre), last_seen,
             list_rv, since, "relisted after 410" if since != last_seen else "resumed",
             len(second.events))
    acked = {(n, rv) for n, rv, _ in pre + after.acked}
    assert_no_gap(second, since, acked, final)
    # And the first watch, up to where it stopped, had everything acknowledged before that.
    before = {(n, rv) for n, rv in acked if rv <= last_seen}
    assert before <= set(first.events), sorted(before - set(first.events))[:5]
