"""Log rotation of real containers: a runc container under conmon and a process-runtime
container write numbered lines while the log manager rotates their logs past a small max size.
Nothing may be lost across a reopen: the kept files, read oldest first, hold a contiguous run
of lines ending with the newest, and a `kubectl logs -f` reader (stream_log) that started
before the first rotation sees every line once. At most maxFiles files remain, the older
rotated ones gzipped."""

from __future__ import annotations

import asyncio
import gzip
import re
from pathlib import Path

import pytest

from pocketkube.client.workqueue import FakeClock
from pocketkube.kubelet.logrotation import ContainerLogManager, LogRotatePolicy, all_logs
from pocketkube.kubelet.runtime.interface import ContainerConfig, Image, SandboxConfig
from pocketkube.kubelet.runtime.process import ProcessRuntime
from pocketkube.kubelet.server.logs import LogOptions, stream_log
from tests.kubelet.test_runc import open_harness

MAX_SIZE = 4096
MAX_FILES = 3
ROTATIONS = 4
T0 = 1_700_000_000.0
# Lines of ~80 bytes every 10 ms: a few rotations a second at MAX_SIZE.
SCRIPT = 'i=0; while true; do i=$((i+1)); echo "line $i padding-padding-padding"; sleep 0.01; done'
NUMBER = re.compile(rb" stdout F line (\d+) ")
DEADLINE = 30.0


def numbers_in(path: str) -> list[int]:
    data = Path(path).read_bytes()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return [int(m.group(1)) for m in NUMBER.finditer(data)]


class Follower:
    """`kubectl logs -f`: stream_log following the live path until the container stops."""

    def __init__(self, path: Path, running) -> None:
        self.out = bytearray()

        async def write(data: bytes) -> None:
            self.out += data

        self.task = asyncio.create_task(
            stream_log(path, LogOptions(follow=True), write, running=running))

    def numbers(self) -> list[int]:
        return [int(n) for n in re.findall(rb"^line (\d+) ", bytes(self.out), re.M)]


async def poll(condition, what: str) -> None:
    """Wait for `condition()` (it looks at files the container writes), with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def exercise(runtime, cid: str) -> None:
    status = await runtime.container_status(cid)
    log_path = Path(status.log_path)
    await poll(log_path.exists, "the log file")

    async def running() -> bool:
        st = await runtime.container_status(cid)
        return st is not None and st.state == "running"

    follower = Follower(log_path, running)
    wall = [T0]
    manager = ContainerLogManager(runtime, LogRotatePolicy(MAX_SIZE, MAX_FILES),
                                  clock=FakeClock(), now=lambda: wall[0])  # fmt: skip
    try:
        for _ in range(ROTATIONS):
            await poll(lambda: log_path.exists() and log_path.stat().st_size >= MAX_SIZE,
                       "the log to reach the max size")  # fmt: skip
            # The follower has caught up with the live file before it is rotated (a reader
            # more than a rotation behind skips a file, in kube as here).
            last = numbers_in(str(log_path))[-1]
            await poll(lambda n=last: n in follower.numbers(), f"the follower to read {last}")
            await manager.rotate_logs()
            wall[0] += 10
        rotated = all_logs(str(log_path))[:-1]
        newest_rotated = numbers_in(rotated[-1])[-1]
        # The live log receives lines again after the reopen.
        await poll(lambda: any(n > newest_rotated for n in numbers_in(str(log_path))),
                   "new lines in the live log")  # fmt: skip
        # Stop once the follower reads the live file too: a reader still at the end of the
        # rotated file when the container stops ends there, in kube as here.
        await poll(lambda: any(n > newest_rotated for n in follower.numbers()),
                   "the follower to reach the live log")  # fmt: skip
        await runtime.stop_container(cid, 0)
        await asyncio.wait_for(follower.task, DEADLINE)
    finally:
        follower.task.cancel()

    with pytest.raises(Exception, match="^container is not running$"):
        await runtime.reopen_container_log(cid)
    files = sorted(p.name for p in log_path.parent.iterdir())
    assert len(files) == MAX_FILES, files
    kept = all_logs(str(log_path))
    assert [Path(p).name for p in kept] == [
        f"{log_path.name}.20231114-221340.gz", f"{log_path.name}.20231114-221350", log_path.name]
    lines = [n for p in kept for n in numbers_in(p)]
    assert lines == list(range(lines[0], lines[0] + len(lines))), "lines lost or repeated"
    assert lines[0] > 1  # the oldest files were removed
    # The follower saw every line once, across every rotation.
    assert follower.numbers() == list(range(1, lines[-1] + 1))
    # A plain read (kubectl logs) serves the live file.
    out = bytearray()

    async def collect(data: bytes) -> None:
        out.extend(data)

    await stream_log(log_path, LogOptions(), collect)
    assert [int(n) for n in re.findall(rb"^line (\d+) ", bytes(out), re.M)] == \
        numbers_in(str(log_path))


@pytest.mark.usefixtures("require_root")
async def test_runc_container_log_rotates(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        sandbox = h.sandbox_config("chatty")
        sid = await h.runtime.run_sandbox(sandbox)
        cid = await h.run(sid, sandbox, "app", SCRIPT)
        await exercise(h.runtime, cid)


async def test_process_container_log_rotates(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "rt", images=None)  # type: ignore[arg-type]
    await rt.start()
    try:
        sandbox = SandboxConfig(pod_uid="uid-1", name="chatty", namespace="default",
                                hostname="chatty")  # fmt: skip
        sid = await rt.run_sandbox(sandbox)
        image = Image(id="sha256:" + "0" * 64, repo_tags=[], repo_digests=[], layers=[],
                      config={}, size=0)  # fmt: skip
        config = ContainerConfig(
            name="app", attempt=0, image=image, image_ref="busybox", argv=["sh", "-c", SCRIPT],
            env=[("PATH", "/usr/local/bin:/usr/bin:/bin")],
            log_path=tmp_path / "logs" / "app" / "0.log")  # fmt: skip
        cid = await rt.create_container(sid, config, sandbox)
        await rt.start_container(cid)
        await exercise(rt, cid)
    finally:
        for st in await rt.list_containers():
            await rt.remove_container(st.id)
        await rt.close()
