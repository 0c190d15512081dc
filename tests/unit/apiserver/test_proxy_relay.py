"""The proxy subresources' pure parts and relay: kube's "scheme:name:port" parsing, which
addresses may be proxied to, and a websocket upgrade relayed message by message with the
backend's chosen subprotocol (a real aiohttp backend and front on 127.0.0.1)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from pocketkube.apiserver.handlers import proxy


@pytest.mark.parametrize(("ident", "expected"), [
    ("web", ("", "web", "")),
    ("web:8080", ("", "web", "8080")),
    ("web:http", ("", "web", "http")),
    ("https:web:443", ("https", "web", "443")),
    ("http:web:", ("http", "web", "")),
    ("ftp:web:21", None),
    (":8080", None),
    ("a:b:c:d", None),
])
def test_split_scheme_name_port(ident: str, expected: tuple[str, str, str] | None) -> None:
    assert proxy.split_scheme_name_port(ident) == expected


@pytest.mark.parametrize(("ip", "allowed"), [
    ("10.244.0.5", True), ("192.0.2.1", True), ("", False), ("127.0.0.1", False),
    ("169.254.1.1", False), ("0.0.0.0", False), ("224.0.0.1", False), ("nonsense", False),
])
def test_only_unicast_pod_addresses(ip: str, allowed: bool) -> None:
    assert proxy._global_unicast(ip) is allowed


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def test_websocket_upgrade_is_relayed() -> None:
    async def backend(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=["v2.echo"])
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"{request.path_qs} {msg.data}")
            else:
                await ws.send_bytes(msg.data[::-1])
        return ws

    back = web.Application()
    back.router.add_get("/ws", backend)
    back_runner, back_port = await _start(back)

    async def front(request: web.Request) -> web.StreamResponse:
        scope = SimpleNamespace(request=request)
        async with aiohttp.ClientSession() as session:
            return await proxy._websocket(scope, session,  # type: ignore[arg-type]
                                          f"http://127.0.0.1:{back_port}/ws?x=1",
                                          CIMultiDict(request.headers))

    app = web.Application()
    app.router.add_get("/proxy", front)
    front_runner, front_port = await _start(app)
    try:
        async with aiohttp.ClientSession() as client, client.ws_connect(
                f"http://127.0.0.1:{front_port}/proxy", protocols=["v1.other", "v2.echo"]) as ws:
            assert ws.protocol == "v2.echo"
            await ws.send_str("hello")
            assert (await ws.receive_str(timeout=5)) == "/ws?x=1 hello"
            await ws.send_bytes(b"\x01\x02\x03")
            assert (await ws.receive_bytes(timeout=5)) == b"\x03\x02\x01"
    finally:
        await front_runner.cleanup()
        await back_runner.cleanup()
