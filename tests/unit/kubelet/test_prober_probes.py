"""The probe mechanisms against real loopback servers: HTTP status classes, redirects, headers,
kube's failure messages; TCP connects; exec through a fake runtime."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from pocketkube.kubelet.prober import probes
from pocketkube.kubelet.runtime.interface import ExecResult


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def server():
    """An HTTP server on 127.0.0.1 whose answers tests steer through `state`."""
    release = asyncio.Event()
    state: dict = {"status": 200, "body": "ok", "requests": []}

    async def handler(request: web.Request) -> web.StreamResponse:
        state["requests"].append(request)
        if request.path.startswith("/hop/"):
            n = int(request.path.rsplit("/", 1)[1])
            raise web.HTTPFound(f"/hop/{n + 1}")
        if request.path == "/away":
            raise web.HTTPFound("http://127.0.0.2:1/elsewhere", text="moved")
        if request.path == "/here":
            raise web.HTTPFound("/healthz")
        if request.path == "/slow":
            await release.wait()
        if request.path == "/big":
            return web.Response(status=200, body=b"x" * 50_000)
        return web.Response(status=state["status"], text=state["body"])

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        release.set()
        await runner.cleanup()


async def test_http_success_and_failure_with_kube_message(server):
    action = {"path": "/healthz", "port": server["port"]}
    assert await probes.http_get(action, {}, "127.0.0.1", 1) == ("success", "ok")
    server["status"] = 500
    server["body"] = "secret detail"
    assert await probes.http_get(action, {}, "127.0.0.1", 1) == \
        ("failure", "HTTP probe failed with statuscode: 500")
    server["status"] = 399
    assert (await probes.http_get(action, {}, "127.0.0.1", 1))[0] == "warning"
    server["status"] = 400
    assert (await probes.http_get(action, {}, "127.0.0.1", 1))[0] == "failure"


async def test_http_request_headers_and_named_port(server):
    container = {"ports": [{"name": "web", "containerPort": server["port"]}]}
    action = {"path": "/x?y=1", "port": "web",
              "httpHeaders": [{"name": "x-custom", "value": "v"},
                              {"name": "Host", "value": "example.test"}]}
    assert (await probes.http_get(action, container, "127.0.0.1", 1))[0] == "success"
    req = server["requests"][-1]
    assert req.headers["User-Agent"] == "kube-probe/1.32"
    assert req.headers["Accept"] == "*/*"
    assert req.headers["X-Custom"] == "v"
    assert req.headers["Host"] == "example.test"
    assert "Accept-Encoding" not in req.headers
    assert req.path_qs == "/x?y=1"
    # An explicit user agent wins; an empty Accept removes the header.
    action = {"port": server["port"], "httpHeaders": [{"name": "User-Agent", "value": "me"},
                                                      {"name": "Accept", "value": ""}]}
    await probes.http_get(action, {}, "127.0.0.1", 1)
    req = server["requests"][-1]
    assert req.headers["User-Agent"] == "me"
    assert "Accept" not in req.headers


async def test_http_connection_refused_message():
    port = closed_port()
    action = {"path": "/healthz", "port": port}
    assert await probes.http_get(action, {}, "127.0.0.1", 1) == (
        "failure", f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: '
                   f'connect: connection refused')


async def test_http_timeout_message(server):
    action = {"path": "/slow", "port": server["port"]}
    result, message = await probes.http_get(action, {}, "127.0.0.1", 0.2)
    assert result == "failure"
    assert message == (f'Get "http://127.0.0.1:{server["port"]}/slow": context deadline '
                       f'exceeded (Client.Timeout exceeded while awaiting headers)')


async def test_http_redirects(server):
    port = server["port"]
    # Same host: followed.
    assert await probes.http_get({"path": "/here", "port": port}, {}, "127.0.0.1", 1) == \
        ("success", "ok")
    # Another host: not followed, a warning that counts as success.
    result, message = await probes.http_get({"path": "/away", "port": port}, {},
                                            "127.0.0.1", 1)
    assert (result, message) == ("warning", "Probe terminated redirects, Response body: moved")
    assert not any(r.path == "/elsewhere" for r in server["requests"])
    # Endless redirects stop after ten.
    result, message = await probes.http_get({"path": "/hop/0", "port": port}, {},
                                            "127.0.0.1", 2)
    assert result == "failure"
    assert message == f'Get "http://127.0.0.1:{port}/hop/10": stopped after 10 redirects'


async def test_http_body_is_read_up_to_10k(server):
    result, body = await probes.http_get({"path": "/big", "port": server["port"]}, {},
                                         "127.0.0.1", 1)
    assert result == "success"
    assert len(body) == 10 * 1024


async def test_port_errors():
    with pytest.raises(probes.ProbeError, match=r'^strconv.Atoi: parsing "http": invalid syntax$'):
        probes.resolve_port("http", {"ports": [{"name": "web", "containerPort": 80}]})
    with pytest.raises(probes.ProbeError, match="^invalid port number: 0$"):
        probes.resolve_port(0, {})
    assert probes.resolve_port("8080", {}) == 8080
    assert probes.resolve_port("web", {"ports": [{"name": "web", "containerPort": 81}]}) == 81


async def test_tcp_probe(server):
    assert await probes.tcp_socket({"port": server["port"]}, {}, "127.0.0.1", 1) == \
        ("success", "")
    port = closed_port()
    assert await probes.tcp_socket({"port": port}, {}, "127.0.0.1", 1) == \
        ("failure", f"dial tcp 127.0.0.1:{port}: connect: connection refused")
    # tcpSocket.host overrides the pod IP.
    assert (await probes.tcp_socket({"port": server["port"], "host": "127.0.0.1"}, {},
                                    "127.0.0.9", 1))[0] == "success"


class FakeRuntime:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], float]] = []
        self.answer: ExecResult | BaseException = ExecResult(0, b"fine")

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float) -> ExecResult:
        self.calls.append((container_id, argv, timeout))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


async def test_exec_probe():
    rt = FakeRuntime()
    container = {"env": [{"name": "FILE", "value": "/tmp/ok"},
                         {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}
    action = {"command": ["cat", "$(FILE)", "$(FROM)", "$$(FILE)"]}
    assert await probes.exec_action(rt, "c1", action, container, 3) == ("success", "fine")
    assert rt.calls[-1] == ("c1", ["cat", "/tmp/ok", "$(FROM)", "$(FILE)"], 3)
    rt.answer = ExecResult(1, b"cat: can't open '/tmp/ok': No such file or directory\n")
    assert await probes.exec_action(rt, "c1", action, container, 3) == \
        ("failure", "cat: can't open '/tmp/ok': No such file or directory\n")
    rt.answer = TimeoutError()
    assert await probes.exec_action(rt, "c1", {"command": ["sleep", "10"]}, {}, 1) == \
        ("failure", 'command "sleep 10" timed out')
    rt.answer = RuntimeError("container not running")
    with pytest.raises(probes.ProbeError, match="container not running"):
        await probes.exec_action(rt, "c1", action, container, 1)
