"""A throwaway API server on loopback that records the request bodies the real kubectl sends.

It serves just enough of the API for `kubectl create <generator>`, `create token`, `autoscale`
and `auth can-i|whoami` to reach their POST: /version (minor 32, so the kubectl dispatcher runs
1.32), legacy discovery, 404 for OpenAPI, a canned object for any GET of a named object, and
201 with a JSON echo for every POST.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from pocketkube.api.protobuf import MEDIA_TYPE, decode

# group/version → [(plural, kind, namespaced)]
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("namespaces", "Namespace", False),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("serviceaccounts/token", "TokenRequest", True),
        ("resourcequotas", "ResourceQuota", True),
        ("pods", "Pod", True),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("deployments/scale", "Scale", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "autoscaling/v1": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True),
        ("clusterroles", "ClusterRole", False),
        ("rolebindings", "RoleBinding", True),
        ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
    "authentication.k8s.io/v1": [("selfsubjectreviews", "SelfSubjectReview", False)],
    "authorization.k8s.io/v1": [("selfsubjectaccessreviews", "SelfSubjectAccessReview", False)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    body: bytes


def _resource_list(gv: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": [
            {
                "name": plural,
                "singularName": "" if "/" in plural else kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": VERBS,
            }
            for plural, kind, namespaced in RESOURCES[gv]
        ],
    }
    for resource in out["resources"]:
        if resource["kind"] == "Scale":
            # `kubectl autoscale` looks for the scale subresource and its autoscaling/v1 kind.
            resource.update(group="autoscaling", version="v1")
    return out


def _groups() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for gv in RESOURCES:
        if "/" in gv:
            group, version = gv.split("/")
            groups.setdefault(group, []).append(version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {
                    "groupVersion": f"{group}/{versions[0]}",
                    "version": versions[0],
                },
            }
            for group, versions in groups.items()
        ],
    }


def _kind_for(gv: str, plural: str) -> str:
    return next(kind for p, kind, _ in RESOURCES.get(gv, []) if p == plural)


def _canned(gv: str, parts: list[str]) -> dict[str, Any]:
    """A plausible stored object for GET …/<plural>/<name>."""
    namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-2] else None
    plural, name = parts[-2], parts[-1]
    meta: dict[str, Any] = {"name": name, "uid": "0b6c7a4e-0000-4000-8000-000000000001"}
    if namespace:
        meta["namespace"] = namespace
    obj: dict[str, Any] = {"apiVersion": gv, "kind": _kind_for(gv, plural), "metadata": meta}
    if plural == "deployments":
        obj["spec"] = {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        }
    return obj


class FakeAPIServer:
    def __init__(self) -> None:
        self.recorded: list[Recorded] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return web.json_response(_groups())
        if path.startswith("/openapi"):
            return web.json_response({}, status=404)
        gv, parts = _split(path)
        if gv and not parts:
            return web.json_response(_resource_list(gv))
        if request.method == "POST":
            body = await request.read()
            content_type = request.headers.get("Content-Type", "")
            self.recorded.append(Recorded("POST", path, content_type, body))
            obj = decode(body) if content_type.startswith(MEDIA_TYPE) else await request.json()
            _fill_status(obj)
            return web.json_response(obj, status=201)
        if request.method == "GET" and gv and len(parts) >= 2:
            return web.json_response(_canned(gv, parts))
        return web.json_response({"kind": "Status", "code": 404}, status=404)

    def kubectl(
        self, tmp: Path, *args: str, binary: str = "kubectl"
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(tmp), "KUBECONFIG": str(tmp / "none")}
        return subprocess.run(
            [
                binary,
                f"--server=http://127.0.0.1:{self.port}",
                f"--cache-dir={tmp / 'cache'}",
                *args,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )


def versioned_kubectl(minor: int) -> str:
    """The versioned kubectl installed beside the dispatcher (e.g. kubectl.1.33)."""
    dispatcher = shutil.which("kubectl")
    assert dispatcher is not None
    return os.path.join(os.path.dirname(os.path.realpath(dispatcher)), f"kubectl.1.{minor}")


def _split(path: str) -> tuple[str, list[str]]:
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 2:
        return parts[1], parts[2:]
    if parts[0] == "apis" and len(parts) >= 3:
        return f"{parts[1]}/{parts[2]}", parts[3:]
    return "", []


def _fill_status(obj: dict[str, Any]) -> None:
    """Give review and token answers the status kubectl reads back."""
    kind = obj.get("kind")
    if kind == "SelfSubjectAccessReview":
        obj["status"] = {"allowed": True}
    elif kind == "TokenRequest":
        obj["status"] = {"token": "t0k3n", "expirationTimestamp": "2030-01-01T00:00:00Z"}
    elif kind == "SelfSubjectReview":
        obj["status"] = {"userInfo": {"username": "admin", "groups": ["system:masters"]}}
