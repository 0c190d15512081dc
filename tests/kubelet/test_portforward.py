"""The real kubectl 1.32 port-forwards through handle_portforward, over the websocket tunnel (its
default) and over plain SPDY/3.1, to an HTTP server on 127.0.0.1 standing in for the pod.

A tiny API server answers only what `kubectl port-forward pod/p1` asks for (version, discovery,
the pod, its portforward subresource), so nothing else of pocketkube is needed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from pocketkube.kubelet.server.portforward import handle_portforward

POD = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "p1", "namespace": "default", "uid": "3f1b6c1e-0000-4000-8000-000000000001",
                 "resourceVersion": "7", "creationTimestamp": "2025-01-01T00:00:00Z"},
    "spec": {"containers": [{"name": "web", "image": "busybox",
                             "ports": [{"containerPort": 80, "protocol": "TCP"}]}]},
    "status": {"phase": "Running", "podIP": "10.0.0.5"},
}  # fmt: skip
RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": True,
         "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
    ],
}  # fmt: skip
BLOB = hashlib.sha256(b"pocketkube").digest() * (6 * 1024 * 1024 // 32)  # 6 MiB


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    kubeconfig: Path
    home: Path
    upgrades: list[tuple[str, str]] = field(default_factory=list)  # (method, Upgrade header)


def _pod_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.query.get('n', '')}")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=BLOB)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/blob", blob)
    return app


def _api_app(cluster: Cluster, pod_port: int, closed_port: int) -> web.Application:
    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # Port 80 is the pod's web server; any other port has nothing listening.
        return await asyncio.open_connection("127.0.0.1", pod_port if port == 80 else closed_port)

    async def portforward(request: web.Request) -> web.StreamResponse:
        cluster.upgrades.append((request.method, request.headers.get("Upgrade", "")))
        return await handle_portforward(request, connect, pod="p1", netns="/run/netns/test")

    def answer(body: dict) -> web.RequestHandler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(body)

        return handler

    app = web.Application()
    app.router.add_get("/version", answer({"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                                           "platform": "linux/amd64"}))  # fmt: skip
    app.router.add_get("/api", answer({"kind": "APIVersions", "versions": ["v1"]}))
    app.router.add_get("/apis", answer({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
    app.router.add_get("/api/v1", answer(RESOURCES))
    app.router.add_get("/api/v1/namespaces/default/pods/p1", answer(POD))
    app.router.add_route("*", "/api/v1/namespaces/default/pods/p1/portforward", portforward)
    return app


async def _serve(app: web.Application, stack: contextlib.AsyncExitStack) -> int:
    runner = web.AppRunner(app)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return port


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with contextlib.AsyncExitStack() as stack:
        pod_port = await _serve(_pod_app(), stack)
        kubeconfig = tmp_path / "kubeconfig"
        result = Cluster(kubeconfig, tmp_path)
        api_port = await _serve(_api_app(result, pod_port, _free_port()), stack)
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{api_port}'}}}}]\n"
            "users: [{name: u, user: {}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]\n"
            "current-context: x\n"
        )
        yield result


@contextlib.asynccontextmanager
async def port_forward(cluster: Cluster, remote: int, *, websockets: bool
                       ) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, list[bytes]]]:  # fmt: skip
    """kubectl port-forward pod/p1 :<remote>; yields it, the local port and its stderr lines."""
    env = dict(os.environ, HOME=str(cluster.home), KUBECONFIG=str(cluster.kubeconfig))
    env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "true" if websockets else "false"
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--cache-dir", str(cluster.home / "cache"), "port-forward", "pod/p1",
        f":{remote}", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    errors: list[bytes] = []
    tasks: list[asyncio.Future[None]] = []

    async def drain(stream: asyncio.StreamReader, into: list[bytes]) -> None:
        while line := await stream.readline():
            into.append(line)

    try:
        assert proc.stdout is not None and proc.stderr is not None
        tasks.append(asyncio.ensure_future(drain(proc.stderr, errors)))
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"Forwarding from 127.0.0.1:"), (line, errors)
        local = int(line.split(b":")[1].split()[0])
        assert line.strip().endswith(f"-> {remote}".encode())
        tasks.append(asyncio.ensure_future(drain(proc.stdout, [])))
        yield proc, local, errors
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _exercise(local: int) -> None:
    base = f"http://127.0.0.1:{local}"
    # force_close: every request is its own local connection, so its own stream pair.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for n in range(3):
            async with http.get(f"{base}/hello", params={"n": str(n)}) as resp:
                assert resp.status == 200
                assert await resp.text() == f"hello {n}"

        async def hello(n: int) -> str:
            async with http.get(f"{base}/hello", params={"n": str(n)}) as resp:
                return await resp.text()

        assert await asyncio.gather(*(hello(n) for n in range(8))) == [f"hello {n}" for n in range(8)]
        upload = os.urandom(5 * 1024 * 1024 + 17)
        async with http.post(f"{base}/echo", data=upload) as resp:
            assert await resp.read() == upload
        async with http.get(f"{base}/blob") as resp:
            assert await resp.read() == BLOB


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
async def test_kubectl_port_forward_carries_http(cluster: Cluster, websockets: bool) -> None:
    async with port_forward(cluster, 80, websockets=websockets) as (proc, local, errors):
        await _exercise(local)
        assert proc.returncode is None, errors
        assert errors == []  # no stream or copy errors on kubectl's side either
    expected = ("GET", "websocket") if websockets else ("POST", "SPDY/3.1")
    assert cluster.upgrades == [expected]


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
async def test_kubectl_reports_a_refused_port(cluster: Cluster, websockets: bool) -> None:
    async with port_forward(cluster, 81, websockets=websockets) as (proc, local, errors):
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed without an answer
        writer.close()
        # kubectl gives up on the whole forward after an error from the pod's side.
        await asyncio.wait_for(proc.wait(), 30)
    text = b"".join(errors).decode().replace('\\"', '"')  # klog quotes the message
    assert "error: lost connection to pod" in text, text
    assert f"an error occurred forwarding {local} -> 81: error forwarding port 81 to pod p1, uid : " \
        'failed to execute portforward in network namespace "/run/netns/test": failed to connect ' \
        'to localhost:81 inside namespace "p1", IPv4: dial tcp4 127.0.0.1:81: connect: ' \
        "connection refused" in text, text  # fmt: skip
