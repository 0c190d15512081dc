"""The agent's /logs/ endpoint (the kubelet's view of the node's log directory): listings as
Go's http.FileServer writes them, files as they are, nothing outside the directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pocketkube.kubelet.server import hostlogs


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    logs = tmp_path / "log"
    (logs / "apt").mkdir(parents=True)
    (logs / "syslog").write_text("a line\n")
    (logs / "apt" / "history.log").write_text("installed\n")
    (tmp_path / "secret").write_text("not a log\n")
    (logs / "escape").symlink_to(tmp_path / "secret")
    app = web.Application()
    serve = hostlogs.handler(logs)
    app.router.add_get("/logs/{tail:.*}", serve)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_directory_listing_like_go(client: TestClient) -> None:
    resp = await client.get("/logs/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert await resp.text() == ('<pre>\n<a href="apt/">apt/</a>\n<a href="escape">escape</a>\n'
                                 '<a href="syslog">syslog</a>\n</pre>\n')
    resp = await client.get("/logs/apt", allow_redirects=False)
    assert resp.status == 301 and resp.headers["Location"] == "/logs/apt/"


async def test_files_are_served(client: TestClient) -> None:
    assert await (await client.get("/logs/syslog")).text() == "a line\n"
    assert await (await client.get("/logs/apt/history.log")).text() == "installed\n"
    assert (await client.get("/logs/missing")).status == 404


async def test_nothing_outside_the_directory(client: TestClient) -> None:
    assert (await client.get("/logs/escape")).status == 404  # a symlink out of it
    assert (await client.get("/logs/..%2Fsecret")).status == 404
    assert hostlogs.resolve(Path("/var/log"), "../../etc/passwd") is None
