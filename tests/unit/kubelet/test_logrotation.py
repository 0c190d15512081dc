"""The container log manager's policy and rotation sequence, with a fake runtime (whose reopen
makes a new file at the log path, as conmon does) and a fake clock."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
from pathlib import Path

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet.logrotation import (
    ContainerLogManager,
    LogRotatePolicy,
    all_logs,
    excess,
    filter_unused,
    parse_policy,
    rotated_name,
    to_compress,
)
from pocketkube.kubelet.runtime.interface import ContainerStatus

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class LogRuntime:
    """Containers with a log path; reopen makes a fresh file there (or fails when told to)."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerStatus] = {}
        self.reopened: list[str] = []
        self.fail_reopen: str = ""
        self.fail_list = False
        self.listed = asyncio.Event()

    def add(self, cid: str, log_path: Path, state: str = "running") -> None:
        self.containers[cid] = ContainerStatus(id=cid, sandbox_id="s", name=cid, attempt=0,
                                               state=state, log_path=str(log_path))  # fmt: skip

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        self.listed.set()
        if self.fail_list:
            raise RuntimeError("runtime is down")
        return list(self.containers.values())

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        return self.containers.get(container_id)

    async def reopen_container_log(self, container_id: str) -> None:
        if self.fail_reopen:
            raise RuntimeError(self.fail_reopen)
        self.reopened.append(container_id)
        Path(self.containers[container_id].log_path).touch()


class Wall:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def runtime() -> LogRuntime:
    return LogRuntime()


@pytest.fixture
def wall() -> Wall:
    return Wall()


def manager(runtime: LogRuntime, wall: Wall, max_size: int = 100, max_files: int = 3,
            clock: FakeClock | None = None) -> ContainerLogManager:  # fmt: skip
    return ContainerLogManager(runtime, LogRotatePolicy(max_size, max_files),
                               clock=clock or FakeClock(), now=wall)  # fmt: skip


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# --- policy ------------------------------------------------------------------------------------


def test_parse_policy_as_the_kubelet_does() -> None:
    assert parse_policy("10Mi", 5) == LogRotatePolicy(10 * 1024 * 1024, 5)
    assert parse_policy("1k", 2) == LogRotatePolicy(1000, 2)
    assert parse_policy("-1", 5).max_size == -1
    with pytest.raises(ValueError, match=r"^invalid MaxFiles 1, must be > 1$"):
        parse_policy("10Mi", 1)
    with pytest.raises(ValueError, match='container log max size "lots"'):
        parse_policy("lots", 5)
    with pytest.raises(ValueError, match="invalid max log size"):
        parse_policy("0.5", 5)


def test_rotated_name_is_utc_with_kubes_layout() -> None:
    assert rotated_name("/l/0.log", 0) == "/l/0.log.19700101-000000"
    assert rotated_name("/l/0.log", T0 + 0.9) == "/l/0.log.20231114-221320"


def test_filter_unused() -> None:
    logs = ["a.1", "a.1.gz", "a.2.gz", "a.3", "a.3.tmp", "a.4.gz.tmp"]
    inuse, unused = filter_unused(logs)
    assert inuse == ["a.1.gz", "a.2.gz", "a.3"]
    assert unused == ["a.1", "a.3.tmp", "a.4.gz.tmp"]


def test_excess_keeps_max_files_minus_two_newest() -> None:
    logs = ["l.20240103-000000", "l.20240101-000000.gz", "l.20240102-000000.gz"]
    assert excess(logs, 4) == (["l.20240101-000000.gz"],
                               ["l.20240102-000000.gz", "l.20240103-000000"])  # fmt: skip
    assert excess(logs, 5) == ([], sorted(logs))
    assert excess(logs, 2) == (sorted(logs), [])
    assert to_compress(["x.gz", "y"]) == ["y"]


def test_all_logs_orders_oldest_first_live_last(tmp_path: Path) -> None:
    live = tmp_path / "0.log"
    for name in ("0.log", "0.log.20240102-000000", "0.log.20240101-000000.gz",
                 "0.log.20240101-000000", "0.log.x.tmp", "10.log"):  # fmt: skip
        (tmp_path / name).touch()
    assert all_logs(str(live)) == [str(tmp_path / "0.log.20240101-000000.gz"),
                                   str(tmp_path / "0.log.20240102-000000"), str(live)]  # fmt: skip


# --- rotation ----------------------------------------------------------------------------------


async def test_small_log_is_left_alone(tmp_path: Path, runtime: LogRuntime, wall: Wall) -> None:
    (tmp_path / "0.log").write_bytes(b"x" * 99)
    runtime.add("c1", tmp_path / "0.log")
    await manager(runtime, wall).rotate_logs()
    assert names(tmp_path) == ["0.log"] and runtime.reopened == []


async def test_rotations_compress_older_files_and_keep_max_files(
    tmp_path: Path, runtime: LogRuntime, wall: Wall
) -> None:
    live = tmp_path / "0.log"
    live.touch()
    runtime.add("c1", live)
    m = manager(runtime, wall, max_files=3)
    written = []
    for i in range(4):
        content = f"round {i}\n".encode() * 20
        live.write_bytes(content)
        written.append(content)
        await m.rotate_logs()
        wall.t += 10
    assert runtime.reopened == ["c1"] * 4
    # Three files at most: the live one, the newest rotated one as is, an older one gzipped.
    assert names(tmp_path) == ["0.log", "0.log.20231114-221340.gz", "0.log.20231114-221350"]
    assert live.read_bytes() == b""
    assert (tmp_path / "0.log.20231114-221350").read_bytes() == written[3]
    assert gzip.decompress((tmp_path / "0.log.20231114-221340.gz").read_bytes()) == written[2]


async def test_only_running_containers_are_rotated(tmp_path: Path, runtime: LogRuntime,
                                                   wall: Wall) -> None:  # fmt: skip
    for cid, state in (("run", "running"), ("done", "exited"), ("new", "created")):
        (tmp_path / f"{cid}.log").write_bytes(b"y" * 200)
        runtime.add(cid, tmp_path / f"{cid}.log", state)
    await manager(runtime, wall).rotate_logs()
    assert runtime.reopened == ["run"]
    assert names(tmp_path) == ["done.log", "new.log", "run.log", "run.log.20231114-221320"]


async def test_failed_reopen_puts_the_log_back_and_is_retried(
    tmp_path: Path, runtime: LogRuntime, wall: Wall, caplog: pytest.LogCaptureFixture
) -> None:
    live = tmp_path / "0.log"
    live.write_bytes(b"z" * 150)
    runtime.add("c1", live)
    runtime.fail_reopen = "container is not running"
    m = manager(runtime, wall)
    with caplog.at_level(logging.ERROR, "pocketkube.kubelet.logrotation"):
        await m.rotate_logs()
    assert names(tmp_path) == ["0.log"] and live.read_bytes() == b"z" * 150
    assert "container is not running" in caplog.text
    runtime.fail_reopen = ""
    wall.t += 10
    await m.rotate_logs()
    assert names(tmp_path) == ["0.log", "0.log.20231114-221330"]


async def test_leftovers_of_an_interrupted_rotation_are_removed(
    tmp_path: Path, runtime: LogRuntime, wall: Wall
) -> None:
    live = tmp_path / "0.log"
    live.write_bytes(b"w" * 150)
    runtime.add("c1", live)
    (tmp_path / "0.log.20231114-000000").write_bytes(b"old")
    (tmp_path / "0.log.20231114-000000.gz").write_bytes(gzip.compress(b"old"))
    (tmp_path / "0.log.20231114-000010.tmp").write_bytes(b"half")
    (tmp_path / "0.log.20231114-000010").write_bytes(b"older")
    await manager(runtime, wall, max_files=4).rotate_logs()
    assert names(tmp_path) == ["0.log", "0.log.20231114-000000.gz", "0.log.20231114-000010.gz",
                               "0.log.20231114-221320"]  # fmt: skip
    assert gzip.decompress((tmp_path / "0.log.20231114-000010.gz").read_bytes()) == b"older"


async def test_missing_live_log_is_reopened(tmp_path: Path, runtime: LogRuntime,
                                            wall: Wall) -> None:  # fmt: skip
    runtime.add("c1", tmp_path / "0.log")
    await manager(runtime, wall).rotate_logs()
    assert runtime.reopened == ["c1"] and names(tmp_path) == ["0.log"]


async def test_second_rotation_in_the_same_second_waits(tmp_path: Path, runtime: LogRuntime,
                                                        wall: Wall) -> None:  # fmt: skip
    live = tmp_path / "0.log"
    live.write_bytes(b"a" * 150)
    runtime.add("c1", live)
    m = manager(runtime, wall)
    await m.rotate_logs()
    live.write_bytes(b"b" * 150)
    await m.rotate_logs()
    assert names(tmp_path) == ["0.log", "0.log.20231114-221320.gz"]
    assert live.read_bytes() == b"b" * 150
    wall.t += 1
    await m.rotate_logs()
    assert names(tmp_path) == ["0.log", "0.log.20231114-221320.gz", "0.log.20231114-221321"]


async def test_clean_removes_every_file_of_the_log(tmp_path: Path, runtime: LogRuntime,
                                                   wall: Wall) -> None:  # fmt: skip
    for name in ("0.log", "0.log.20240101-000000.gz", "0.log.20240102-000000", "1.log"):
        (tmp_path / name).touch()
    runtime.add("c1", tmp_path / "0.log")
    await manager(runtime, wall).clean("c1")
    assert names(tmp_path) == ["1.log"]


# --- the periodic loop -------------------------------------------------------------------------


async def test_loop_survives_errors_and_runs_every_period(
    tmp_path: Path, runtime: LogRuntime, wall: Wall, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    live = tmp_path / "0.log"
    live.write_bytes(b"q" * 150)
    runtime.add("c1", live)
    runtime.fail_list = True
    m = manager(runtime, wall, clock=clock)
    task = asyncio.create_task(m.run())
    try:
        with caplog.at_level(logging.ERROR, "pocketkube.kubelet.logrotation"):
            await asyncio.wait_for(runtime.listed.wait(), 5)
            await asyncio.wait_for(_until(lambda: "runtime is down" in caplog.text), 5)
        assert not task.done() and runtime.reopened == []
        runtime.fail_list = False
        runtime.listed.clear()
        await asyncio.wait_for(_until(lambda: bool(clock._sleepers)), 5)
        clock.advance(10)
        await asyncio.wait_for(_until(lambda: runtime.reopened == ["c1"]), 5)
        assert names(tmp_path) == ["0.log", "0.log.20231114-221320"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_negative_max_size_disables_rotation(tmp_path: Path, runtime: LogRuntime,
                                                   wall: Wall) -> None:  # fmt: skip
    (tmp_path / "0.log").write_bytes(b"q" * 150)
    runtime.add("c1", tmp_path / "0.log")
    await asyncio.wait_for(manager(runtime, wall, max_size=-1).run(), 5)
    assert not runtime.listed.is_set() and names(tmp_path) == ["0.log"]


async def _until(condition) -> None:
    """Yield to the loop until `condition()` holds (callers bound it with wait_for)."""
    while not condition():
        await asyncio.sleep(0)
