"""exec and attach on runc containers: exec_sync (output, exit code, timeout), interactive exec
with pipes and with a terminal, attach to a running container's output and stdin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.kubelet.test_runc import Harness, open_harness

pytestmark = pytest.mark.usefixtures("require_root")


@pytest.fixture
async def h(tmp_path):
    async with open_harness(tmp_path) as harness:
        yield harness


async def _running(h: Harness, script: str, **kwargs) -> str:
    sandbox = h.sandbox_config()
    sid = await h.runtime.run_sandbox(sandbox)
    return await h.run(sid, sandbox, "app", script, **kwargs)


async def _read_until(reader: asyncio.StreamReader, text: bytes, timeout: float = 10) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while text not in data:
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
    return data


async def test_exec_sync(h: Harness):
    cid = await _running(h, "sleep 300")
    result = await h.runtime.exec_sync(
        cid, ["sh", "-c", 'echo "$GREETING"; echo oops >&2; exit 4'], 10
    )
    assert result.exit_code == 4
    # runc copies the two streams separately: both arrive, in either order.
    assert sorted(result.output.splitlines()) == [b"hello", b"oops"]
    ok = await h.runtime.exec_sync(cid, ["cat", "/etc/hostname"], 10)
    assert (ok.exit_code, ok.output) == (0, b"pod\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await h.runtime.exec_sync(cid, ["sleep", "30"], 0.5)
    assert loop.time() - started < 5


async def test_exec_with_pipes(h: Harness):
    cid = await _running(h, "sleep 300")
    session = await h.runtime.exec(
        cid, ["sh", "-c", "read line; echo got $line; echo warn >&2; exit 7"], stdin=True, tty=False
    )
    try:
        assert session.stdin is not None and session.stderr is not None
        session.stdin.write(b"ping\n")
        await session.stdin.drain()
        assert await session.stdout.read() == b"got ping\n"
        assert await session.stderr.read() == b"warn\n"
        assert await session.wait() == 7
    finally:
        await session.close()


async def test_exec_with_tty(h: Harness):
    cid = await _running(h, "sleep 300")
    session = await h.runtime.exec(cid, ["sh"], stdin=True, tty=True)
    try:
        assert session.stdin is not None and session.stderr is None
        await session.resize(100, 40)
        session.stdin.write(b"tty -s && echo is-a-tty; stty size; exit 5\n")
        await session.stdin.drain()
        output = await _read_until(session.stdout, b"40 100")
        assert b"is-a-tty" in output and b"40 100" in output
        assert await session.wait() == 5
    finally:
        await session.close()


async def test_exec_tty_close_kills_the_process(h: Harness):
    cid = await _running(h, "sleep 300")
    session = await h.runtime.exec(cid, ["sleep", "300"], stdin=False, tty=True)
    await session.close()
    assert await session.wait() == 137


async def test_attach_reads_output(h: Harness):
    cid = await _running(h, "i=0; while true; do echo tick $i; i=$((i+1)); usleep 50000; done")
    session = await h.runtime.attach(cid, stdin=False, tty=False)
    try:
        assert session.stdin is None
        assert b"tick" in await _read_until(session.stdout, b"\n")
    finally:
        await session.close()


async def test_attach_stdin(h: Harness):
    cid = await _running(
        h,
        "while read line; do echo echo:$line; echo err:$line >&2; done; echo done",
        stdin=True,
        stdin_once=True,
    )
    session = await h.runtime.attach(cid, stdin=True, tty=False)
    try:
        assert session.stdin is not None and session.stderr is not None
        session.stdin.write(b"one\n")
        await session.stdin.drain()
        assert b"echo:one" in await _read_until(session.stdout, b"echo:one")
        assert b"err:one" in await _read_until(session.stderr, b"err:one")
        # stdinOnce: closing our stdin closes the container's, and it finishes.
        session.stdin.close()
        assert b"done" in await _read_until(session.stdout, b"done")
        assert await session.wait() is None
    finally:
        await session.close()
    status = await h.exited(cid)
    assert status.reason == "Completed"


async def test_attach_to_a_tty_container(h: Harness):
    cid = await _running(
        h, "tty -s && echo on-a-tty; read line; echo got:$line", tty=True, stdin=True
    )
    session = await h.runtime.attach(cid, stdin=True, tty=True)
    try:
        assert session.stdin is not None and session.stderr is None
        await session.resize(120, 30)
        session.stdin.write(b"abc\n")
        await session.stdin.drain()
        assert b"got:abc" in await _read_until(session.stdout, b"got:abc")
    finally:
        await session.close()
    status = await h.exited(cid)
    assert status.reason == "Completed"
    assert "on-a-tty" in Path(status.log_path).read_text()
