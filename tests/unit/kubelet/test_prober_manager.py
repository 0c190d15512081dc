"""Probe workers and the probe manager on a FakeClock: thresholds, initial delay, the startup
probe gating liveness and readiness, liveness failures and container restarts, jitter, events."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet.prober import ProbeManager
from pocketkube.kubelet.runtime.interface import ContainerStatus, ExecResult

UID = "uid-1"


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.field_paths: list[str | None] = []

    def record(self, obj, type_, reason, message, action=None, related=None, *,
               field_path=None) -> None:  # fmt: skip
        assert obj["kind"] == "Pod" and obj["metadata"]["uid"] == UID
        self.events.append((type_, reason, message))
        self.field_paths.append(field_path)


class FakeRuntime:
    """exec_sync answers by the command's first word: exit code from `codes` (default 0)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float) -> ExecResult:
        self.calls.append((container_id, argv[0]))
        code = self.codes.get(argv[0], 0)
        return ExecResult(code, f"{argv[0]} said {code}".encode())

    def count(self, word: str) -> int:
        return sum(1 for _, w in self.calls if w == word)


def exec_probe(word: str, **fields) -> dict:
    return {"exec": {"command": [word]}, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3, **fields}


def make_pod(restart_policy: str = "Always", **probes) -> dict:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"restartPolicy": restart_policy,
                     "containers": [{"name": "app", "image": "busybox", **probes}]},
            "status": {"phase": "Running"}}


def running(cid: str = "c1", state: str = "running") -> dict[str, ContainerStatus]:
    return {"app": ContainerStatus(id=cid, sandbox_id="s", name="app", attempt=0, state=state,
                                   started_at=time.time())}


class Harness:
    def __init__(self, rand: float = 0.0) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime()
        self.recorder = FakeRecorder()
        self.changes: list[str] = []
        self.m = ProbeManager(self.runtime, self.recorder, clock=self.clock,
                              on_change=self.changes.append, rand=lambda: rand)

    async def tick(self, kind: str, seconds: float) -> None:
        """Advance the clock and wait for the worker to handle the wake-up."""
        w = self.m.worker(UID, "app", kind)
        assert w is not None
        n = w.rounds + 1
        self.clock.advance(seconds)
        await asyncio.wait_for(w.wait_rounds(n), 5)

    async def first_round(self, *kinds: str) -> None:
        for kind in kinds:
            w = self.m.worker(UID, "app", kind)
            assert w is not None
            await asyncio.wait_for(w.wait_rounds(1), 5)


@pytest.fixture
async def h():
    harness = Harness()
    yield harness
    harness.m.close()


@pytest.fixture
async def toggling_server():
    state = {"status": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(status=state["status"], text="body")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_readiness_over_http_with_thresholds(h, toggling_server):
    probe = {"httpGet": {"path": "/healthz", "port": toggling_server["port"]},
             "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 2,
             "failureThreshold": 2}
    pod = make_pod(readinessProbe=probe)
    h.m.sync(pod, "127.0.0.1", running())
    await h.first_round("readiness")
    # One success is below successThreshold 2: still the initial Failure.
    assert h.m.result(UID, "app", "readiness") == "Failure"
    await h.tick("readiness", 5)
    assert h.m.result(UID, "app", "readiness") == "Success"
    assert h.m.ready(UID, "app") and h.m.started(UID, "app")
    assert h.changes == [UID, UID]  # initial value, then Success
    toggling_server["status"] = 500
    await h.tick("readiness", 5)
    assert h.m.ready(UID, "app")  # one failure of two
    await h.tick("readiness", 5)
    assert h.m.result(UID, "app", "readiness") == "Failure"
    assert not h.m.ready(UID, "app")
    assert h.recorder.events[-1] == ("Warning", "Unhealthy",
                                     "Readiness probe failed: HTTP probe failed with "
                                     "statuscode: 500")
    assert len(h.recorder.events) == 2
    assert h.recorder.field_paths == ["spec.containers{app}"] * 2
    assert h.m.liveness_failure(UID, "app") is None


async def test_ready_without_readiness_probe_once_running(h):
    h.m.sync(make_pod(), "10.0.0.1", running())
    assert h.m.ready(UID, "app") and h.m.started(UID, "app")
    h.m.sync(make_pod(), "10.0.0.1", running(state="exited"))
    assert not h.m.ready(UID, "app") and not h.m.started(UID, "app")


async def test_initial_delay(h):
    h.m.sync(make_pod(livenessProbe=exec_probe("live", periodSeconds=5,
                                               initialDelaySeconds=10)), "", running())
    await h.first_round("liveness")
    await h.tick("liveness", 5)
    assert h.runtime.count("live") == 0
    await h.tick("liveness", 5)
    assert h.runtime.count("live") == 1


async def test_startup_probe_gates_liveness_and_readiness(h):
    h.runtime.codes["start"] = 1
    pod = make_pod(startupProbe=exec_probe("start", periodSeconds=1, failureThreshold=5),
                   livenessProbe=exec_probe("live", periodSeconds=1),
                   readinessProbe=exec_probe("ready", periodSeconds=1))
    h.m.sync(pod, "", running())
    await h.first_round("startup", "liveness", "readiness")
    for n in (2, 3):
        h.clock.advance(1)
        for kind in ("startup", "liveness", "readiness"):
            await asyncio.wait_for(h.m.worker(UID, "app", kind).wait_rounds(n), 5)
    assert h.runtime.count("start") == 3
    assert h.runtime.count("live") == 0 and h.runtime.count("ready") == 0
    assert not h.m.started(UID, "app") and not h.m.ready(UID, "app")
    h.runtime.codes["start"] = 0
    await h.tick("startup", 1)
    assert h.m.started(UID, "app")
    assert h.recorder.events == [("Warning", "Unhealthy", "Startup probe failed: start said 1")] * 3
    # Readiness is unknown yet: asking triggers its worker at once, without a clock tick.
    ready = h.m.worker(UID, "app", "readiness")
    before = ready.rounds
    assert not h.m.ready(UID, "app")
    await asyncio.wait_for(ready.wait_rounds(before + 1), 5)
    assert h.m.ready(UID, "app")
    await h.tick("liveness", 1)
    assert h.runtime.count("live") >= 1
    # The startup probe is done for this container.
    calls = h.runtime.count("start")
    await h.tick("startup", 1)
    assert h.runtime.count("start") == calls


async def test_startup_failure_kills(h):
    h.runtime.codes["start"] = 1
    h.m.sync(make_pod(startupProbe=exec_probe("start", periodSeconds=1, failureThreshold=2)),
             "", running())
    await h.first_round("startup")
    assert h.m.liveness_failure(UID, "app") is None
    await h.tick("startup", 1)
    assert h.m.liveness_failure(UID, "app") == \
        "Container app failed startup probe, will be restarted"


async def test_liveness_failure_holds_until_the_container_restarts(h):
    h.runtime.codes["live"] = 1
    h.m.sync(make_pod(livenessProbe=exec_probe("live", failureThreshold=2)), "", running("c1"))
    await h.first_round("liveness")
    assert h.m.liveness_failure(UID, "app") is None  # initial Success, one failure of two
    await h.tick("liveness", 10)
    assert h.m.liveness_failure(UID, "app") == \
        "Container app failed liveness probe, will be restarted"
    assert h.recorder.events[-1] == ("Warning", "Unhealthy", "Liveness probe failed: live said 1")
    # On hold: no more probes of the doomed container.
    await h.tick("liveness", 10)
    assert h.runtime.count("live") == 2
    # The kubelet restarted it: a new id clears the failure and probing resumes from scratch.
    h.runtime.codes["live"] = 0
    h.m.sync(make_pod(livenessProbe=exec_probe("live", failureThreshold=2)), "", running("c2"))
    assert h.m.liveness_failure(UID, "app") is None
    await h.tick("liveness", 10)
    assert h.runtime.calls[-1] == ("c2", "live")
    assert h.m.result(UID, "app", "liveness") == "Success"


async def test_liveness_failure_without_restart(h):
    h.runtime.codes["live"] = 1
    h.m.sync(make_pod("Never", livenessProbe=exec_probe("live", failureThreshold=1)), "",
             running())
    await h.first_round("liveness")
    assert h.m.liveness_failure(UID, "app") == "Container app failed liveness probe"


async def test_exited_container_with_restart_never_stops_the_worker(h):
    pod = make_pod("Never", readinessProbe=exec_probe("ready"))
    h.m.sync(pod, "", running())
    await h.first_round("readiness")
    assert h.m.ready(UID, "app")
    h.m.sync(pod, "", running(state="exited"))
    worker = h.m.worker(UID, "app", "readiness")
    await h.tick("readiness", 10)
    assert worker.finished
    assert not h.m.ready(UID, "app")


async def test_deleted_pod_is_not_killed_by_liveness(h):
    h.runtime.codes["live"] = 1
    pod = make_pod(livenessProbe=exec_probe("live", failureThreshold=1))
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    h.m.sync(pod, "", running())
    await h.first_round("liveness")
    assert h.m.worker(UID, "app", "liveness").finished
    assert h.runtime.count("live") == 0
    assert h.m.liveness_failure(UID, "app") is None


async def test_initial_jitter_right_after_start():
    harness = Harness(rand=0.5)
    try:
        harness.m.sync(make_pod(livenessProbe=exec_probe("live", periodSeconds=10)), "",
                       running())
        w = harness.m.worker(UID, "app", "liveness")
        harness.clock.advance(4.9)
        for _ in range(5):
            await asyncio.sleep(0)
        assert w.rounds == 0
        harness.clock.advance(0.1)
        await asyncio.wait_for(w.wait_rounds(1), 5)
        assert harness.runtime.count("live") == 1
    finally:
        harness.m.close()


async def test_errored_probe_keeps_previous_result(h):
    probe = {"httpGet": {"path": "/", "port": "missing"}, "periodSeconds": 10}
    h.m.sync(make_pod(readinessProbe=probe), "127.0.0.1", running())
    await h.first_round("readiness")
    assert h.m.result(UID, "app", "readiness") == "Failure"  # the initial value
    assert h.recorder.events == [("Warning", "Unhealthy",
                                  "Readiness probe errored and resulted in unknown state: "
                                  'strconv.Atoi: parsing "missing": invalid syntax')]


async def test_remove_pod_stops_workers(h):
    h.m.sync(make_pod(livenessProbe=exec_probe("live")), "", running())
    w = h.m.worker(UID, "app", "liveness")
    await h.first_round("liveness")
    h.m.remove_pod(UID)
    await asyncio.wait_for(w.wait_rounds(10**6), 5)
    assert w.finished and h.m.worker(UID, "app", "liveness") is None
    assert h.m.result(UID, "app", "liveness") is None
