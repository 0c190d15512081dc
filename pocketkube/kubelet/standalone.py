"""The node agent without an API server (kubelet's standalone mode, the seeds' "kubelet
--pod-manifest-path only"): it runs the static pods of its manifest directory and nothing else.

The pod workers are written against the API client; here they get `DetachedClient`, an API
that holds nothing — lists are empty, watches never deliver, writes (status, mirror pods,
events) are accepted and dropped — so the same code runs the pods with no server at all.
Logs stay in the CRI log files under `<data-dir>/agent/logs/pods`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from pocketkube.api.errors import not_found

log = logging.getLogger("pocketkube.kubelet.standalone")
Obj = dict[str, Any]
STANDALONE_POD_CIDR = "10.88.0.0/24"  # podman's default network: no cluster hands one out


class DetachedClient:
    """An API client with no server behind it."""

    async def list(self, r: Any, namespace: str | None = None, **query: Any) -> Obj:
        return {"items": [], "metadata": {"resourceVersion": "1"}}

    async def watch(self, r: Any, namespace: str | None = None, resource_version: str = "",
                    timeout: int = 300, **query: Any) -> Any:
        await asyncio.Event().wait()  # nothing ever changes
        yield "BOOKMARK", {}

    async def get(self, r: Any, name: str, namespace: str | None = None, **query: Any) -> Obj:
        raise not_found(r.plural, name, r.group)

    async def create(self, r: Any, obj: Obj, namespace: str | None = None, **query: Any) -> Obj:
        meta = {**(obj.get("metadata") or {}), "uid": str(uuid.uuid4()),
                "resourceVersion": "1"}
        return {**obj, "metadata": meta}

    async def update(self, r: Any, obj: Obj, subresource: str = "", **query: Any) -> Obj:
        return obj

    async def patch(self, r: Any, name: str, patch: Any, namespace: str | None = None,
                    **query: Any) -> Obj:
        return {"metadata": {"name": name, "namespace": namespace}}

    async def delete(self, r: Any, name: str, namespace: str | None = None,
                     **query: Any) -> Obj:
        return {"kind": "Status", "status": "Success"}

    async def close(self) -> None:
        return None


async def run_standalone(config: Any) -> None:
    """Run the static pods in `config.manifests` until cancelled."""
    from pocketkube.kubelet.agent import Agent

    if config.manifests is None:
        raise ValueError("standalone mode needs a manifest directory")
    config.manifests.mkdir(parents=True, exist_ok=True)
    config.pod_cidr = config.pod_cidr or STANDALONE_POD_CIDR
    log.info("standalone: running the static pods of %s (no API server)", config.manifests)
    await Agent(DetachedClient(), config, standalone=True).run()  # type: ignore[arg-type]
