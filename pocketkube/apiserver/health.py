"""/healthz, /livez, /readyz and /version, and the component health behind componentstatuses.

Each check has a name; `?verbose` lists them the way kube-apiserver does (`[+]etcd ok`), and a
single check is reachable as `/readyz/<name>`. Components started in the same process (scheduler,
controller-manager, node agent) register their own checks here, so `kubectl get cs` and
`pocketkube status` report what is really running. Components in another process serve their
health over HTTP on loopback; `remote_check` probes it, as kube-apiserver probes the scheduler's
and the controller manager's /healthz for componentstatuses.
"""

from __future__ import annotations

import platform
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import orjson
from aiohttp import web

from pocketkube import __version__

Check = Callable[[], Awaitable[tuple[bool, str]]]

KUBE_MINOR = "32"
PROBE_TIMEOUT = 2.0  # seconds; a component that cannot answer in time is unhealthy


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": f"v1.{KUBE_MINOR}.0-pocketkube.{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{_arch()}",
    }


def _arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


class Health:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}  # readiness of this server
        self._components: dict[str, Check] = {}  # componentstatuses entries
        self._version = orjson.dumps(version_info())

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def add_component(self, name: str, check: Check) -> None:
        self._components[name] = check

    def components(self) -> dict[str, Check]:
        return dict(self._components)

    async def run(self, only: str | None = None) -> list[tuple[str, bool, str]]:
        out = [("ping", True, "")]
        for name, check in self.checks.items():
            if only and name != only:
                continue
            try:
                ok, msg = await check()
            except Exception as e:
                ok, msg = False, str(e)
            out.append((name, ok, msg))
        return out

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path == "/version":
            return web.Response(body=self._version, content_type="application/json")
        kind, _, only = path.strip("/").partition("/")
        results = await self.run(only or None)
        if only and len(results) == 1 and only != "ping":
            return web.Response(status=404, text="404 page not found\n")
        ok = all(r[1] for r in results)
        if "verbose" in request.query or not ok:
            lines = [f"[+]{n} ok" if good else f"[-]{n} failed: {msg or 'reason withheld'}"
                     for n, good, msg in results]
            lines.append(f"{kind} check passed" if ok else f"{kind} check failed")
            text = "\n".join(lines) + "\n"
        else:
            text = "ok"
        return web.Response(status=200 if ok else 500, text=text)


async def probe(url: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """GET `url`: healthy on 200, with the body as the message; otherwise unhealthy, with the
    body, or what went wrong on the way, as the reason."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as resp,
        ):
            text = (await resp.text(errors="replace")).strip()
            if resp.status == 200:
                return True, text or "ok"
            return False, text or f"HTTP probe failed with statuscode: {resp.status}"
    except TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (timeout {timeout:g}s)'
    except aiohttp.ClientError as e:
        return False, f'Get "{url}": {e}'


def remote_check(locate: Callable[[], str], timeout: float = PROBE_TIMEOUT) -> Check:
    """A check that probes the URL `locate()` returns at the time of the check (a component
    process may move to another port when it restarts). `locate` raises, with the reason as
    its message, when there is nothing to probe; the check then fails with that reason."""

    async def check() -> tuple[bool, str]:
        try:
            url = locate()
        except Exception as e:
            return False, str(e)
        return await probe(url, timeout)

    return check
