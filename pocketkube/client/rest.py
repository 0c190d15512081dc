"""The async Kubernetes API client every pocketkube component uses (scheduler, controllers, node
agent, proxy, DNS): plain REST over one keep-alive aiohttp session, objects as dicts, failures
as the server's Status (pocketkube.api.errors.StatusError).

The official `kubernetes` client is synchronous and its asyncio sibling is generated code with
typed models; components here want dicts, watch streams and very little per-request overhead,
so this is a thin layer of our own over aiohttp.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import yaml

from pocketkube.api import errors
from pocketkube.api.resources import TABLE, Resource

log = logging.getLogger("pocketkube.client")

Obj = dict[str, Any]

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass
class ClientConfig:
    server: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None
    user_agent: str = "pocketkube"

    @classmethod
    def from_data_dir(cls, data_dir: Path, server: str, user_agent: str) -> ClientConfig:
        """An in-process component of the cluster in `data_dir`, as the cluster admin."""
        pki = data_dir / "pki"
        return cls(server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key",
                   user_agent=user_agent)

    @classmethod
    def from_kubeconfig(cls, path: Path, user_agent: str = "pocketkube") -> ClientConfig:
        import base64
        import tempfile

        doc = yaml.safe_load(path.read_text())
        ctx_name = doc.get("current-context")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
        tmp = Path(tempfile.mkdtemp(prefix="pocketkube-client-"))

        def material(d: Obj, key: str, name: str) -> Path | None:
            if d.get(f"{key}-data"):
                p = tmp / name
                p.write_bytes(base64.b64decode(d[f"{key}-data"]))
                p.chmod(0o600)
                return p
            return Path(d[key]) if d.get(key) else None

        return cls(cluster["server"], material(cluster, "certificate-authority", "ca.crt"),
                   material(user, "client-certificate", "client.crt"),
                   material(user, "client-key", "client.key"), user.get("token"), user_agent)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def resource(group: str, plural: str) -> Resource:
    for r in TABLE.resources:
        if r.group == group and r.plural == plural:
            return r
    raise KeyError(f"unknown resource {plural}.{group}")


def _path(r: Resource, namespace: str | None, name: str = "", sub: str = "") -> str:
    base = f"/api/{r.version}" if not r.group else f"/apis/{r.group}/{r.version}"
    if r.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{r.plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


class ApiClient:
    def __init__(self, config: ClientConfig, max_connections: int = 64) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._max = max_connections
        self.requests = 0  # count of API requests made (benchmarks report it per object)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context(), limit=self._max)
            headers = {"User-Agent": self.config.user_agent, "Accept": "application/json"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            self._session = aiohttp.ClientSession(
                self.config.server, connector=connector, headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float = 60.0) -> Obj:
        self.requests += 1
        url = path + ("?" + urlencode(query, doseq=True) if query else "")
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with self.session.request(
                method, url, data=data, headers={"Content-Type": content_type},
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise _status_error(resp.status, raw)
            return orjson.loads(raw) if raw else {}

    # -- verbs ------------------------------------------------------------------------------
    async def get(self, r: Resource, name: str, namespace: str | None = None,
                  subresource: str = "") -> Obj:
        return await self.request("GET", _path(r, namespace, name, subresource))

    async def list(self, r: Resource, namespace: str | None = None, **query: Any) -> Obj:
        return await self.request("GET", _path(r, namespace), _query(query))

    async def create(self, r: Resource, obj: Obj, namespace: str | None = None,
                     subresource: str = "", name: str = "", **query: Any) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self.request("POST", _path(r, ns, name, subresource), _query(query), obj)

    async def update(self, r: Resource, obj: Obj, subresource: str = "", **query: Any) -> Obj:
        meta = obj["metadata"]
        return await self.request(
            "PUT", _path(r, meta.get("namespace"), meta["name"], subresource), _query(query), obj)

    async def patch(self, r: Resource, name: str, patch: Any, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "", **query: Any) -> Obj:
        return await self.request("PATCH", _path(r, namespace, name, subresource),
                                  _query(query), patch, PATCH_TYPES[patch_type])

    async def delete(self, r: Resource, name: str, namespace: str | None = None,
                     **options: Any) -> Obj:
        return await self.request("DELETE", _path(r, namespace, name), None,
                                  options or None)

    async def watch(self, r: Resource, namespace: str | None = None,
                    resource_version: str = "", timeout: int = 300,
                    **query: Any) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) per event until the server ends the stream."""
        q = _query(query)
        q.update(watch="true", resourceVersion=resource_version, timeoutSeconds=timeout,
                 allowWatchBookmarks="true")
        self.requests += 1
        async with self.session.get(_path(r, namespace), params=q,
                                    timeout=aiohttp.ClientTimeout(total=timeout + 30)) as resp:
            if resp.status >= 400:
                raise _status_error(resp.status, await resp.read())
            async for line in resp.content:
                if not line.strip():
                    continue
                ev = orjson.loads(line)
                if ev.get("type") == "ERROR":
                    st = ev.get("object") or {}
                    raise errors.StatusError(st.get("code", 500), st.get("reason", ""),
                                             st.get("message", ""), st.get("details"))
                yield ev["type"], ev["object"]


def _query(query: dict[str, Any]) -> dict[str, Any]:
    names = {"label_selector": "labelSelector", "field_selector": "fieldSelector",
             "resource_version": "resourceVersion", "field_manager": "fieldManager",
             "dry_run": "dryRun", "field_validation": "fieldValidation"}
    out = {}
    for k, v in query.items():
        if v is None or v == "":
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[names.get(k, k)] = v
    return out


def _status_error(code: int, raw: bytes) -> errors.StatusError:
    try:
        st = json.loads(raw)
        return errors.StatusError(st.get("code", code), st.get("reason", ""),
                                  st.get("message", ""), st.get("details"))
    except ValueError:
        return errors.StatusError(code, "Unknown", raw.decode(errors="replace")[:500])
