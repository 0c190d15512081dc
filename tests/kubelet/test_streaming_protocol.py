"""The remote-command websocket as a client sees it on the wire, through the API server to the
node agent: channel bytes, the exact Status on channel 3, v5's stdin close, the v4 protocol,
pongs, and the agent's refusal arriving as a Status after the upgrade."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.kubelet.test_streaming import NS, FakeAgent, streaming_cluster
from tests.support.cluster import Cluster


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, FakeAgent]]:
    with streaming_cluster(tmp_path_factory.mktemp("streaming-wire")) as pair:
        yield pair


def url(cluster: Cluster, pod: str, verb: str, params: list[tuple[str, str]]) -> str:
    return f"wss://127.0.0.1:{cluster.port}/api/v1/namespaces/{NS}/pods/{pod}/{verb}?" + \
        urlencode(params)


async def session_run(cluster: Cluster, target: str, protocol: str = "v5.channel.k8s.io",
                      send: tuple[bytes, ...] = ()) -> tuple[str, dict[int, bytes]]:
    """Open the websocket, send `send`, collect every channel until the server closes."""
    got: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as s, s.ws_connect(
            target, protocols=(protocol,), ssl=cluster.ssl_context()) as ws:
        for m in send:
            await ws.send_bytes(m)
        async for msg in ws:
            assert msg.type == aiohttp.WSMsgType.BINARY
            got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
        return ws.protocol or "", got


async def test_exit_code_status(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    cmd = [("command", c) for c in ("sh", "-c", "echo out; echo err >&2; exit 3")]
    protocol, got = await session_run(cluster, url(cluster, "p", "exec", [
        *cmd, ("stdout", "true"), ("stderr", "true")]))
    assert protocol == "v5.channel.k8s.io"
    assert got[1] == b"out\n" and got[2] == b"err\n"
    assert json.loads(got[3]) == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c echo out; echo err >&2; exit 3], exit code 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}


async def test_v5_stdin_close_ends_the_input(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    _, got = await session_run(
        cluster, url(cluster, "p", "exec", [("command", "cat"), ("stdin", "true"),
                                            ("stdout", "true")]),
        send=(b"\x00abc", b"\x00def", b"\x04" + b'{"Width":80,"Height":24}', b"\xff\x00"))
    assert got[1] == b"abcdef"
    assert json.loads(got[3]) == {"metadata": {}, "status": "Success"}


async def test_v4_protocol(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    protocol, got = await session_run(
        cluster, url(cluster, "p", "exec", [("command", "head"), ("command", "-c"),
                                            ("command", "5"), ("stdin", "true"),
                                            ("stdout", "true")]),
        protocol="v4.channel.k8s.io", send=(b"\x00hello world",))
    assert protocol == "v4.channel.k8s.io"
    assert got[1] == b"hello"
    assert json.loads(got[3]) == {"metadata": {}, "status": "Success"}


async def test_pings_are_answered(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    target = url(cluster, "p", "exec", [("command", "cat"), ("stdin", "true"),
                                        ("stdout", "true")])
    async with aiohttp.ClientSession() as s, s.ws_connect(
            target, protocols=("v5.channel.k8s.io",), ssl=cluster.ssl_context(),
            autoping=False) as ws:
        await ws.ping(b"are you there")
        msg = await ws.receive(timeout=20)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"are you there")
        await ws.send_bytes(b"\x00x")
        await ws.send_bytes(b"\xff\x00")
        msg = await ws.receive(timeout=20)
        assert msg.data == b"\x01x"


async def test_agent_refusal_after_the_upgrade(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    _, got = await session_run(cluster, url(cluster, "two", "exec", [
        ("container", "b"), ("command", "true"), ("stdout", "true")]))
    status = json.loads(got[3])
    assert (status["reason"], status["code"], status["message"]) == (
        "InternalError", 500,
        'Internal error occurred: unable to upgrade connection: container not found ("b")')


async def test_checks_before_the_upgrade(env: tuple[Cluster, FakeAgent]) -> None:
    cluster, _ = env
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(url(cluster, "unbound", "exec", [("command", "true"),
                                                                ("stdout", "true")]),
                               protocols=("v5.channel.k8s.io",), ssl=cluster.ssl_context())
        assert e.value.status == 400
