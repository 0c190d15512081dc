"""The service health server on 127.0.0.1 free ports: 200/503 answers with kube-proxy's
headers and body, listeners following the wanted set, a taken port logged and retried rather
than raised, and the (wanted, counts) derivation from the proxy's snapshot."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from pocketkube.proxy.healthcheck import ServiceHealthServer, body, health_state
from pocketkube.proxy.model import Endpoint, ServicePort

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def get(port: int) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://{HOST}:{port}/anything?x=1") as resp:
        return resp.status, dict(resp.headers), await resp.text()


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) != 0


@pytest.fixture
async def server() -> AsyncIterator[ServiceHealthServer]:
    hcs = ServiceHealthServer("node-a", addresses=[HOST])
    yield hcs
    await hcs.close()


async def test_200_with_local_endpoints_503_without(server: ServiceHealthServer) -> None:
    port = free_port()
    await server.sync({("ns", "web"): port})
    status, headers, text = await get(port)
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(text) == {"service": {"namespace": "ns", "name": "web"},
                                "localEndpoints": 0, "serviceProxyHealthy": True}

    server.set_local_endpoints({("ns", "web"): 2, ("ns", "other"): 5})
    status, _, text = await get(port)
    assert status == 200
    assert text == ('{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n'
                    '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')

    server.set_local_endpoints({})  # a Service left out has no local endpoints
    status, _, text = await get(port)
    assert status == 503 and json.loads(text)["localEndpoints"] == 0


async def test_unhealthy_proxy_answers_503_even_with_endpoints() -> None:
    healthy = {"ok": False}
    hcs = ServiceHealthServer("node-a", addresses=[HOST], proxy_healthy=lambda: healthy["ok"])
    port = free_port()
    try:
        await hcs.sync({("ns", "web"): port})
        hcs.set_local_endpoints({("ns", "web"): 1})
        status, _, text = await get(port)
        assert status == 503
        assert json.loads(text) == {"service": {"namespace": "ns", "name": "web"},
                                    "localEndpoints": 1, "serviceProxyHealthy": False}
        healthy["ok"] = True
        assert (await get(port))[0] == 200
    finally:
        await hcs.close()


async def test_removed_service_closes_its_port_and_port_change_moves_it(
        server: ServiceHealthServer) -> None:
    a, b, c = free_port(), free_port(), free_port()
    await server.sync({("ns", "a"): a, ("ns", "b"): b})
    server.set_local_endpoints({("ns", "a"): 1, ("ns", "b"): 1})
    assert (await get(a))[0] == 200 and (await get(b))[0] == 200

    await server.sync({("ns", "a"): a})
    assert refused(b)
    assert server.ports == {("ns", "a"): a}
    assert (await get(a))[0] == 200  # an unchanged Service keeps its listener and its count

    await server.sync({("ns", "a"): c})
    assert refused(a)
    status, _, text = await get(c)
    # A new listener starts from 0 local endpoints until the next set_local_endpoints.
    assert status == 503 and json.loads(text)["localEndpoints"] == 0

    await server.close()
    assert refused(c) and server.ports == {}


async def test_taken_port_is_logged_not_raised_and_retried(
        server: ServiceHealthServer, caplog: pytest.LogCaptureFixture) -> None:
    blocker = socket.socket()
    blocker.bind((HOST, 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    ok_port = free_port()
    with caplog.at_level(logging.ERROR, logger="pocketkube.proxy.healthcheck"):
        await server.sync({("ns", "busy"): port, ("ns", "fine"): ok_port})
    assert any(f"listen tcp {HOST}:{port}: bind: address already in use" in r.getMessage()
               and "ns/busy" in r.getMessage() for r in caplog.records)
    assert server.ports == {("ns", "fine"): ok_port}
    assert (await get(ok_port))[0] == 503

    blocker.close()
    await server.sync({("ns", "busy"): port, ("ns", "fine"): ok_port})
    assert server.ports == {("ns", "busy"): port, ("ns", "fine"): ok_port}
    server.set_local_endpoints({("ns", "busy"): 1})
    assert (await get(port))[0] == 200


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def record(self, obj: dict, type_: str, reason: str, message: str,
               action: str | None = None) -> None:
        self.events.append((obj["metadata"], type_, reason, message, action))


async def test_taken_port_is_reported_as_a_warning_event() -> None:
    rec = FakeRecorder()
    hcs = ServiceHealthServer("node-a", addresses=[HOST], recorder=rec)  # type: ignore[arg-type]
    with socket.socket() as blocker:
        blocker.bind((HOST, 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        await hcs.sync({("ns", "busy"): port})
    await hcs.close()
    assert rec.events == [(
        {"namespace": "ns", "name": "busy", "uid": "ns/busy"}, "Warning",
        "FailedToStartServiceHealthcheck",
        f'node node-a failed to start healthcheck "ns/busy" on port {port}: '
        f"listen tcp {HOST}:{port}: bind: address already in use", "Listen")]


async def test_a_failing_second_address_releases_the_first() -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.2", port))
        blocker.listen()
        hcs = ServiceHealthServer("node-a", addresses=[HOST, "127.0.0.2"])
        await hcs.sync({("ns", "web"): port})
        assert hcs.ports == {}
        assert refused(port)  # 127.0.0.1 was opened, then closed again
    await hcs.sync({("ns", "web"): port})
    try:
        assert hcs.ports == {("ns", "web"): port}
    finally:
        await hcs.close()


def test_body_quotes_like_go() -> None:
    assert body(("a", 'b"c'), 3, False) == (
        '{\n\t"service": {\n\t\t"namespace": "a",\n\t\t"name": "b\\"c"\n\t},\n'
        '\t"localEndpoints": 3,\n\t"serviceProxyHealthy": false\n}')


def sp(name: str, port_name: str = "", hc: int = 0, local: bool = True,
       protocol: str = "TCP") -> ServicePort:
    return ServicePort(namespace="ns", name=name, port_name=port_name, protocol=protocol,
                       cluster_ip="10.96.0.20", port=80, node_port=30080,
                       health_check_node_port=hc, external_policy_local_requested=local)


def test_health_state_counts_distinct_local_ready_ips() -> None:
    mine = [Endpoint("10.1.0.5", 8080, node_name="node-a"),
            Endpoint("10.1.0.6", 8080, node_name="node-a", ready=False, terminating=True),
            Endpoint("10.1.0.7", 8080, node_name="node-b")]
    services = [
        (sp("web", "http", hc=31001), mine),
        # The same pod behind a second port counts once.
        (sp("web", "https", hc=31001), [Endpoint("10.1.0.5", 8443, node_name="node-a")]),
        (sp("cluster-policy"), [Endpoint("10.1.0.8", 80, node_name="node-a")]),
        (sp("elsewhere", hc=31002), [Endpoint("10.1.0.9", 80, node_name="node-b")]),
        (sp("terminating", hc=31003), [mine[1]]),
        (sp("cluster-etp", hc=31004, local=False), []),
    ]
    wanted, counts = health_state(services, "node-a")
    assert wanted == {("ns", "web"): 31001, ("ns", "elsewhere"): 31002,
                      ("ns", "terminating"): 31003}
    assert counts == {("ns", "web"): 1, ("ns", "cluster-policy"): 1}
