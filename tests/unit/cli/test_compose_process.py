"""The components process of `pocketkube server`: how the server names the components for the
child, how their health crosses the process boundary, and how the child is restarted and
stopped. The components here need no API server; the real ones are covered in
tests/e2e/test_components_process.py."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pocketkube.apiserver.health import Health, probe, remote_check
from pocketkube.cli import compose
from pocketkube.cli.components import decode_spec, encode_spec, reference, serve_health
from pocketkube.cli.instance import Instance
from pocketkube.cli.main import build_parser
from pocketkube.components import ComponentContext
from pocketkube.config import ServerConfig
from pocketkube.simulator import component as simulator

DEADLINE = 30.0


# Components the child process imports by name (this module is on its import path).
async def steady(ctx: ComponentContext) -> None:
    async def health() -> tuple[bool, str]:
        return True, f"steady with {ctx.options.get('colour', 'no colour')}"

    ctx.health = health
    await asyncio.Event().wait()


async def broken(ctx: ComponentContext) -> None:
    raise RuntimeError("boom")


async def eventually(
    check: Callable[[], Awaitable[tuple[bool, str]]], want: Callable[[bool, str], bool]
) -> tuple[bool, str]:
    """Poll `check` until `want` holds for its result (or fail after DEADLINE seconds)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await check()
        if want(*result):
            return result
        assert time.monotonic() < deadline, f"still {result}"
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# --- naming components for another process --------------------------------------------------


def test_reference_names_module_level_functions_only() -> None:
    assert reference(simulator.run) == "pocketkube.simulator.component:run"
    assert reference(steady) == f"{__name__}:steady"

    async def local(ctx: ComponentContext) -> None:
        return None

    assert reference(local) is None
    assert reference(lambda ctx: None) is None


def test_spec_round_trip(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", port=7443, datastore="etcd://h:2379")
    config.component_options["simulated-nodes"] = {"nodes": 3, "cpu": "2"}
    refs = {"simulated-nodes": "pocketkube.simulator.component:run", "gone": "no.such.module:run"}
    spec = decode_spec(encode_spec("https://127.0.0.1:7443", config, refs))
    assert spec.url == "https://127.0.0.1:7443"
    assert spec.config.data_dir == tmp_path / "data"
    assert (spec.config.port, spec.config.datastore) == (7443, "etcd://h:2379")
    assert spec.config.service_cidr == config.service_cidr
    assert spec.config.component_options == {"simulated-nodes": {"nodes": 3, "cpu": "2"}}
    assert spec.components == {"simulated-nodes": simulator.run}
    assert spec.config.components == {"simulated-nodes": simulator.run}
    assert list(spec.missing) == ["gone"]
    assert spec.missing["gone"].startswith("cannot load no.such.module:run: ")


def test_spec_refuses_config_that_is_not_json(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path)
    config.component_options["x"] = {"handle": object()}
    with pytest.raises(TypeError):
        encode_spec("https://127.0.0.1:1", config, {})


def test_placement_keeps_unnamed_components_here(monkeypatch: pytest.MonkeyPatch) -> None:
    async def local(ctx: ComponentContext) -> None:
        return None

    monkeypatch.delenv(compose.IN_PROCESS_ENV, raising=False)
    here, there = compose._placement({"a": steady, "b": local})
    assert (here, there) == ({"b": local}, {"a": f"{__name__}:steady"})
    monkeypatch.setenv(compose.IN_PROCESS_ENV, "1")
    here, there = compose._placement({"a": steady, "b": local})
    assert (here, there) == ({"a": steady, "b": local}, {})


def test_components_in_process_option_is_remembered(tmp_path: Path) -> None:
    parser = build_parser()
    instance = Instance(tmp_path / "c")
    instance.mark()
    assert parser.parse_args(["server"]).components_in_process is None
    assert instance.options().components_in_process is False
    given = parser.parse_args(["server", "--components-in-process"]).components_in_process
    instance.save_options(instance.options({"components_in_process": given}))
    assert instance.options().components_in_process is True
    assert instance.options({"components_in_process": None}).components_in_process is True
    off = parser.parse_args(["start", "--no-components-in-process"]).components_in_process
    assert instance.options({"components_in_process": off}).components_in_process is False


# --- health across processes ----------------------------------------------------------------


async def test_remote_checks_report_the_component_messages() -> None:
    served = Health()

    async def good() -> tuple[bool, str]:
        return True, "3 nodes, 7 pods"

    async def bad() -> tuple[bool, str]:
        return False, "registering nodes: 1/3"

    async def raising() -> tuple[bool, str]:
        raise ValueError("no lease")

    served.add_component("good", good)
    served.add_component("bad", bad)
    served.add_component("raising", raising)
    runner, port = await serve_health(served)
    base = f"http://127.0.0.1:{port}/healthz"
    try:
        assert await probe(f"{base}/good") == (True, "3 nodes, 7 pods")
        assert await probe(f"{base}/bad") == (False, "registering nodes: 1/3")
        assert await probe(f"{base}/raising") == (False, "no lease")
        assert await probe(f"{base}/unknown") == (False, "404 page not found")
        where = {"url": f"{base}/good"}
        check = remote_check(lambda: where["url"])
        assert await check() == (True, "3 nodes, 7 pods")
    finally:
        await runner.cleanup()
    ok, message = await check()
    assert not ok and message.startswith(f'Get "{base}/good": ')

    def down() -> str:
        raise compose.ComponentsDown("components process exited with code 1; restarting")

    assert await remote_check(down)() == (
        False,
        "components process exited with code 1; restarting",
    )


# --- the child process ------------------------------------------------------------------------


async def test_child_runs_components_is_restarted_and_stopped(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path)
    config.component_options["steady"] = {"colour": "blue"}
    refs = {"steady": f"{__name__}:steady", "broken": f"{__name__}:broken"}
    health = Health()
    child = compose.ComponentsProcess(
        encode_spec("https://127.0.0.1:1", config, refs), list(refs), health
    )
    checks = health.components()
    assert sorted(checks) == ["broken", "steady"]
    assert await checks["steady"]() == (False, "starting")
    task = asyncio.create_task(child.run())
    try:
        assert await eventually(checks["steady"], lambda ok, _: ok) == (
            True,
            "steady with blue",
        )
        # The child's own supervisor restarts a failing component and says why it is down.
        assert await eventually(checks["broken"], lambda _, m: m != "starting") == (
            False,
            "RuntimeError: boom",
        )
        first = child.pid
        assert first is not None and first != os.getpid()
        os.kill(first, signal.SIGKILL)
        ok, message = await eventually(checks["steady"], lambda ok, _: not ok)
        assert message in (
            "components process exited with code -9; restarting",
            "starting",
        ) or message.startswith("Get ")
        await eventually(checks["steady"], lambda ok, _: ok)
        second = child.pid
        assert second is not None and second != first
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert child.proc is not None and child.proc.returncode == 0  # stopped on SIGTERM
    assert not alive(second)
    ok, message = await checks["steady"]()
    assert not ok


async def test_child_stops_when_the_server_closes_its_stdin(tmp_path: Path) -> None:
    refs = {"steady": f"{__name__}:steady"}
    health = Health()
    child = compose.ComponentsProcess(
        encode_spec("https://127.0.0.1:1", ServerConfig(data_dir=tmp_path), refs),
        list(refs),
        health,
    )
    task = asyncio.create_task(child._run_once())
    await eventually(health.components()["steady"], lambda ok, _: ok)
    assert child.proc is not None and child.proc.stdin is not None
    child.proc.stdin.close()
    assert await asyncio.wait_for(task, DEADLINE) == 0
