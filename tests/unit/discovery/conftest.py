"""A stub API server that serves only discovery, OpenAPI and a few canned answers, for driving
the real kubectl against pocketkube's discovery and OpenAPI documents."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from pocketkube.apiserver import discovery, openapi

VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
    "compiler": "gc", "platform": "linux/amd64",
}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    accept: str
    content_type: str
    body: bytes = b""


@dataclass
class Stub:
    url: str
    cache_dir: Path
    home: Path
    requests: list[Seen] = field(default_factory=list)
    # Objects the stub answers GET (and PATCH) for, by request path.
    objects: dict[str, dict] = field(default_factory=dict)

    async def kubectl(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "kubectl", f"--server={self.url}", "--kubeconfig=/dev/null",
            f"--cache-dir={self.cache_dir}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": str(self.home), "KUBECONFIG": "/dev/null"},
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
        return proc.returncode or 0, out.decode(), err.decode()

    def paths(self, method: str = "GET") -> list[str]:
        return [r.path for r in self.requests if r.method == method]


def _json(doc: object, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type=None,
                        headers={"Content-Type": content_type})


def _not_found(what: str) -> web.Response:
    return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": f"{what} not found", "reason": "NotFound", "code": 404}, 404)


def _app(stub: Stub, aggregated: bool) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        body = await request.read()
        stub.requests.append(Seen(request.method, request.path, dict(request.query),
                                  request.headers.get("Accept", ""),
                                  request.headers.get("Content-Type", ""), body))
        return await handler(request)

    async def version(_: web.Request) -> web.Response:
        return _json(VERSION)

    def _discovery_root(core: bool):  # type: ignore[no-untyped-def]
        async def handle(request: web.Request) -> web.Response:
            ctype = discovery.negotiate_aggregated(request.headers.get("Accept", ""))
            if aggregated and ctype:
                version = "v2beta1" if "v=v2beta1" in ctype else "v2"
                return web.Response(body=discovery.encoded("aggregated", core, version),
                                    content_type=None, headers={"Content-Type": ctype})
            if core:
                return _json(discovery.api_versions(request.host))
            return _json(discovery.api_group_list())
        return handle

    async def group_or_list(request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        if parts == ["api", "v1"]:
            return _json(discovery.resource_list("", "v1"))
        if len(parts) == 2:
            doc = discovery.api_group(parts[1])
        else:
            doc = discovery.resource_list(parts[1], parts[2])
        return _json(doc) if doc else _not_found(request.path)

    async def openapi_v3(request: web.Request) -> web.Response:
        tail = request.match_info.get("tail", "")
        if not tail:
            return web.Response(body=openapi.v3_index_bytes(), content_type="application/json")
        gv = openapi.v3_lookup(tail)
        if gv is None:
            return _not_found(request.path)
        return web.Response(body=openapi.v3_document(*gv), content_type="application/json")

    async def not_found(request: web.Request) -> web.Response:
        return _not_found(request.path)

    async def deployment_create(request: web.Request) -> web.Response:
        return _json(orjson.loads(await request.read()), 201)

    async def deployment(request: web.Request) -> web.Response:
        obj = stub.objects.get(request.path)
        return _json(obj) if obj else _not_found(request.path)

    async def collection(request: web.Request) -> web.Response:
        return _json({"kind": "List", "apiVersion": "v1",
                      "metadata": {"resourceVersion": "1"}, "items": []})

    app = web.Application(middlewares=[record])
    app.router.add_get("/version", version)
    app.router.add_get("/api", _discovery_root(True))
    app.router.add_get("/apis", _discovery_root(False))
    app.router.add_get("/openapi/v2", not_found)
    app.router.add_get("/openapi/v3", openapi_v3)
    app.router.add_get("/openapi/v3/{tail:.+}", openapi_v3)
    app.router.add_get("/api/v1", group_or_list)
    app.router.add_get("/apis/{group}", group_or_list)
    app.router.add_get("/apis/{group}/{version}", group_or_list)
    app.router.add_post("/apis/apps/v1/namespaces/{ns}/deployments", deployment_create)
    app.router.add_get("/apis/apps/v1/namespaces/{ns}/deployments/{name}", deployment)
    app.router.add_patch("/apis/apps/v1/namespaces/{ns}/deployments/{name}", deployment)
    app.router.add_get("/api/v1/namespaces/{ns}/{plural}", collection)
    app.router.add_get("/apis/{group}/{version}/namespaces/{ns}/{plural}", collection)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(tmp_path: Path, aggregated: bool) -> AsyncIterator[Stub]:
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    stub = Stub(f"http://127.0.0.1:{port}", tmp_path / "cache", home)
    runner = web.AppRunner(_app(stub, aggregated), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield stub
    finally:
        await runner.cleanup()


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[Stub]:
    """Serves legacy discovery only (kubectl fetches every group-version)."""
    async for s in _serve(tmp_path, aggregated=False):
        yield s


@pytest.fixture
async def aggregated_stub(tmp_path: Path) -> AsyncIterator[Stub]:
    """Answers aggregated discovery when kubectl asks for it."""
    async for s in _serve(tmp_path, aggregated=True):
        yield s
