"""ProcessRuntime: containers as host processes (no root needed)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pocketkube.kubelet.runtime.interface import ContainerConfig, Image, SandboxConfig
from pocketkube.kubelet.runtime.process import ContainerError, ProcessRuntime
from pocketkube.kubelet.runtime.process_state import MAX_LOG_LINE, CriLog, alive, proc_start_ticks

RECORD = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([FP]) (.*)$")
IMAGE = Image(id="sha256:" + "0" * 64, repo_tags=[], repo_digests=[], layers=[], config={}, size=0)
PATH_ENV = ("PATH", "/usr/local/bin:/usr/bin:/bin")


@pytest.fixture
async def runtime(tmp_path: Path):
    rt = ProcessRuntime(tmp_path / "rt", images=None)  # type: ignore[arg-type]
    await rt.start()
    yield rt
    for st in await rt.list_containers():
        await rt.remove_container(st.id)
    await rt.close()


async def sandbox(rt: ProcessRuntime) -> tuple[str, SandboxConfig]:
    cfg = SandboxConfig(pod_uid="uid-1", name="pod", namespace="default", hostname="pod")
    return await rt.run_sandbox(cfg), cfg


async def container(rt: ProcessRuntime, tmp_path: Path, script: str, *, name: str = "c",
                    env: list[tuple[str, str]] | None = None, **kw) -> str:  # fmt: skip
    sid, cfg = await sandbox(rt)
    config = ContainerConfig(
        name=name, attempt=0, image=IMAGE, image_ref="busybox", argv=["sh", "-c", script],
        env=env if env is not None else [PATH_ENV], log_path=tmp_path / "logs" / f"{name}.log",
        **kw,
    )  # fmt: skip
    cid = await rt.create_container(sid, config, cfg)
    await rt.start_container(cid)
    return cid


def records(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = RECORD.match(line)
        assert m, line
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


async def read_fifo(path: Path) -> str:
    return await asyncio.wait_for(asyncio.to_thread(path.read_text), 30)


async def test_output_exit_code_and_log_format(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "echo hello; echo oops >&2; printf tail; exit 3")
    assert await runtime.wait_container(cid, 30)
    st = await runtime.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 3, "Error")
    assert st.started_at <= st.finished_at and st.log_path.endswith("c.log")
    recs = records(Path(st.log_path))
    assert ("stdout", "F", "hello") in recs
    assert ("stderr", "F", "oops") in recs
    assert recs[-1] == ("stdout", "F", "tail")


async def test_completed_env_and_working_dir(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "pwd; env | sort", env=[("A", "1"), PATH_ENV],
                          working_dir=str(tmp_path))  # fmt: skip
    assert await runtime.wait_container(cid, 30)
    st = await runtime.container_status(cid)
    assert (st.exit_code, st.reason) == (0, "Completed")
    lines = [r[2] for r in records(Path(st.log_path))]
    assert lines[0] == str(tmp_path)
    env = {line for line in lines[1:] if not line.startswith(("PWD=", "SHLVL=", "_="))}
    assert env == {"A=1", f"PATH={PATH_ENV[1]}"}

    cid2 = await container(runtime, tmp_path, "pwd", name="d", working_dir="/no/such/dir")
    assert await runtime.wait_container(cid2, 30)
    out = records(Path((await runtime.container_status(cid2)).log_path))
    assert out == [("stdout", "F", str(runtime.root / "containers" / cid2 / "work"))]


async def test_missing_command_is_a_start_error(runtime, tmp_path):
    sid, cfg = await sandbox(runtime)
    config = ContainerConfig(name="x", attempt=0, image=IMAGE, image_ref="x",
                             argv=["no-such-command-pk"], env=[PATH_ENV])  # fmt: skip
    cid = await runtime.create_container(sid, config, cfg)
    with pytest.raises(ContainerError, match='exec: "no-such-command-pk": executable file not'):
        await runtime.start_container(cid)
    st = await runtime.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 128, "StartError")


def test_long_lines_are_split_into_partial_records(tmp_path):
    log = CriLog(tmp_path / "x.log")
    log.write("stdout", b"a" * (MAX_LOG_LINE + 10) + b"\nb")
    log.write("stdout", b"c\n")
    log.close()
    recs = records(tmp_path / "x.log")
    assert recs == [("stdout", "P", "a" * MAX_LOG_LINE), ("stdout", "F", "a" * 10),
                    ("stdout", "F", "bc")]  # fmt: skip


async def test_stop_trapped_term_exits_on_its_own(runtime, tmp_path):
    ready = fifo(tmp_path, "ready")
    cid = await container(runtime, tmp_path, f"trap 'echo got-term; exit 7' TERM; "
                          f"echo ready > {ready}; while :; do sleep 1; done")  # fmt: skip
    assert await read_fifo(ready) == "ready\n"
    t0 = time.monotonic()
    await runtime.stop_container(cid, 30)
    assert time.monotonic() - t0 < 10
    st = await runtime.container_status(cid)
    assert (st.state, st.exit_code) == ("exited", 7)
    assert ("stdout", "F", "got-term") in records(Path(st.log_path))


async def test_stop_ignored_term_is_killed_after_the_grace_period(runtime, tmp_path):
    ready = fifo(tmp_path, "ready")
    cid = await container(runtime, tmp_path, f"trap '' TERM; echo ready > {ready}; "
                          "while :; do sleep 1; done")  # fmt: skip
    await read_fifo(ready)
    t0 = time.monotonic()
    await runtime.stop_container(cid, 0.5)
    assert time.monotonic() - t0 >= 0.5
    st = await runtime.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 137, "Error")
    await runtime.stop_container(cid, 5)  # stopping a stopped container is a no-op


async def test_exec_sync(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "exec sleep 1000", env=[("FOO", "bar"), PATH_ENV],
                          working_dir=str(tmp_path))  # fmt: skip
    res = await runtime.exec_sync(cid, ["sh", "-c", "echo $FOO; pwd; echo e >&2; exit 4"], 10)
    assert res.exit_code == 4
    assert res.output == f"bar\n{tmp_path}\ne\n".encode()
    with pytest.raises(TimeoutError):
        await runtime.exec_sync(cid, ["sleep", "30"], 0.2)
    await runtime.stop_container(cid, 5)
    with pytest.raises(ContainerError, match="not running"):
        await runtime.exec_sync(cid, ["true"], 5)


async def test_exec_with_stdin_and_with_tty(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "exec sleep 1000")
    session = await runtime.exec(cid, ["sh", "-c", "cat; exit 2"], stdin=True, tty=False)
    session.stdin.write(b"hello through stdin")
    await session.stdin.drain()
    session.stdin.close()
    assert await asyncio.wait_for(session.stdout.read(), 30) == b"hello through stdin"
    assert await session.wait() == 2
    await session.close()

    session = await runtime.exec(cid, ["sh", "-c", "tty; stty size; exit 3"], stdin=False, tty=True)
    assert session.stderr is None
    out = await asyncio.wait_for(session.stdout.read(), 30)
    assert out.startswith(b"/dev/pts/")
    assert await session.wait() == 3
    await session.close()


async def test_attach_to_stdin_and_output(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "echo waiting; read line; echo got:$line >&2",
                          stdin=True, stdin_once=True)  # fmt: skip
    session = await runtime.attach(cid, stdin=True, tty=False)
    session.stdin.write(b"hi\n")
    await session.stdin.drain()
    assert await asyncio.wait_for(session.stderr.readline(), 30) == b"got:hi\n"
    assert await asyncio.wait_for(session.wait(), 30) is None
    await session.close()
    st = await runtime.container_status(cid)
    assert (st.state, st.exit_code) == ("exited", 0)
    assert records(Path(st.log_path)) == [("stdout", "F", "waiting"), ("stderr", "F", "got:hi")]


async def test_sandbox_lifecycle(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "exec sleep 1000")
    st = await runtime.container_status(cid)
    sb = await runtime.sandbox_status(st.sandbox_id)
    assert (sb.state, sb.ip, sb.namespace, sb.name) == ("ready", "127.0.0.1", "default", "pod")
    assert [s.id for s in await runtime.list_sandboxes()] == [sb.id]
    await runtime.stop_sandbox(sb.id)
    assert (await runtime.sandbox_status(sb.id)).state == "notready"
    assert (await runtime.container_status(cid)).exit_code == 137
    await runtime.remove_sandbox(sb.id)
    assert await runtime.sandbox_status(sb.id) is None
    assert await runtime.list_containers() == []
    assert runtime.name == "process" and runtime.version.startswith("process://")


AGENT = """
import asyncio, sys
from pathlib import Path
from pocketkube.kubelet.runtime.interface import ContainerConfig, Image, SandboxConfig
from pocketkube.kubelet.runtime.process import ProcessRuntime

async def main():
    rt = ProcessRuntime(Path(sys.argv[1]), images=None)
    await rt.start()
    cfg = SandboxConfig(pod_uid="u", name="p", namespace="default", hostname="p")
    sid = await rt.run_sandbox(cfg)
    image = Image(id="sha256:1", repo_tags=[], repo_digests=[], layers=[], config={}, size=0)
    config = ContainerConfig(name="c", attempt=0, image=image, image_ref="busybox",
                             argv=["sh", "-c", sys.argv[2]], env=[("PATH", "/usr/bin:/bin")],
                             log_path=Path(sys.argv[3]))
    cid = await rt.create_container(sid, config, cfg)
    await rt.start_container(cid)
    print(cid)

asyncio.run(main())
"""


async def test_a_second_runtime_adopts_containers_of_an_agent_that_exited(tmp_path):
    go = fifo(tmp_path, "go")
    log_path = tmp_path / "adopted.log"
    agent = subprocess.run(
        [sys.executable, "-c", AGENT, str(tmp_path / "rt"), f"echo before; cat {go}; exit 5",
         str(log_path)], capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    cid = agent.stdout.strip()
    rt = ProcessRuntime(tmp_path / "rt", images=None)  # type: ignore[arg-type]
    await rt.start()
    st = await rt.container_status(cid)
    assert st.state == "running" and st.pid > 0
    assert alive(st.pid, proc_start_ticks(st.pid))
    # Output after the first agent is gone still reaches the log, and the exit code is kept.
    await asyncio.wait_for(asyncio.to_thread(go.write_text, "after\n"), 30)
    assert await rt.wait_container(cid, 30)
    st = await rt.container_status(cid)
    assert (st.state, st.exit_code) == ("exited", 5)
    assert [r[2] for r in records(log_path)] == ["before", "after"]
    assert [c.id for c in await rt.list_containers()] == [cid]
    await rt.remove_container(cid)


def test_pid_identity_includes_the_start_time():
    ticks = proc_start_ticks(os.getpid())
    assert ticks is not None
    assert alive(os.getpid(), ticks)
    assert not alive(os.getpid(), ticks + 1)


async def test_attach_with_a_tty_and_resize(runtime, tmp_path):
    cid = await container(runtime, tmp_path, "read line; echo got:$line; stty size",
                          stdin=True, tty=True)  # fmt: skip
    session = await runtime.attach(cid, stdin=True, tty=True)
    assert session.stderr is None
    await session.resize(100, 40)
    session.stdin.write(b"hi\n")
    await session.stdin.drain()
    out = await asyncio.wait_for(session.stdout.read(), 30)
    assert out.replace(b"\r\n", b"\n").endswith(b"got:hi\n40 100\n")
    await session.close()
    assert (await runtime.container_status(cid)).exit_code == 0


async def test_port_forward_reaches_a_host_port(runtime):
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sid, _ = await sandbox(runtime)
    try:
        reader, writer = await runtime.port_forward(sid, port)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 30) == b"ping\n"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
